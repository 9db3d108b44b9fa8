"""bot/sla.py: the seed's --SLA string and the manifest mapping parse to one Sla."""

from __future__ import annotations

import pytest

from bot.sla import (
    METRICS,
    PER_CLASS_METRICS,
    Sla,
    SlaSyntaxError,
    SlaTerm,
    parse_sla,
    sla_from_mapping,
)


def test_seed_example() -> None:
    sla = parse_sla("accuracy>=0.9,latency_p95_ms<=50")
    assert sla.terms == (
        SlaTerm("accuracy", ">=", 0.9),
        SlaTerm("latency_p95_ms", "<=", 50.0),
    )
    assert str(sla) == "accuracy>=0.9,latency_p95_ms<=50"


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("accuracy >= 0.9", SlaTerm("accuracy", ">=", 0.9)),
        ("  pass_rate>0.95 ", SlaTerm("pass_rate", ">", 0.95)),
        ("size_mb<2e2", SlaTerm("size_mb", "<", 200.0)),
        ("throughput_rps>=1E3", SlaTerm("throughput_rps", ">=", 1000.0)),
        ("latency_p99_ms<=+12.5", SlaTerm("latency_p99_ms", "<=", 12.5)),
        ("accuracy==1", SlaTerm("accuracy", "==", 1.0)),
        ("batch_latency_p95_ms<=.5", SlaTerm("batch_latency_p95_ms", "<=", 0.5)),
    ],
)
def test_good_terms(text: str, term: SlaTerm) -> None:
    assert parse_sla(text).terms == (term,)


def test_every_metric_parses() -> None:
    text = ",".join(f"{name}>=0" for name in METRICS)
    assert [t.metric for t in parse_sla(text).terms] == list(METRICS)


def test_classifier_and_regressor_metrics_are_known() -> None:
    wanted = {"precision_macro", "recall_macro", "f1_macro", "roc_auc", "mae", "rmse", "r2"}
    assert wanted <= set(METRICS)
    assert set(PER_CLASS_METRICS) == {"precision", "recall", "f1"}


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("precision[fraud]>=0.9", SlaTerm("precision[fraud]", ">=", 0.9)),
        ("recall[1] >= 0.8", SlaTerm("recall[1]", ">=", 0.8)),
        ("f1[not-fraud]>0.5", SlaTerm("f1[not-fraud]", ">", 0.5)),
        ("f1[-1]>0.5", SlaTerm("f1[-1]", ">", 0.5)),
        ("recall[2.5]>=0.1", SlaTerm("recall[2.5]", ">=", 0.1)),
        ("f1_macro>=0.8", SlaTerm("f1_macro", ">=", 0.8)),
        ("rmse<=0.25", SlaTerm("rmse", "<=", 0.25)),
        ("r2>=0.9", SlaTerm("r2", ">=", 0.9)),
    ],
)
def test_per_class_and_new_metrics(text: str, term: SlaTerm) -> None:
    sla = parse_sla(text)
    assert sla.terms == (term,)
    assert parse_sla(str(sla)) == sla
    assert sla_from_mapping(sla.as_mapping()) == sla


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("precison[fraud]>=0.9", r"unknown SLA metric 'precison\[fraud\]' \(did you mean precision\[fraud\]\?\)"),
        ("f1macro>=0.9", r"\(did you mean f1_macro\?\)"),
        ("rsme<=1", r"\(did you mean rmse\?\)"),
        ("precision>=0.9", r"write precision_macro for the mean over the classes, or precision\[CLASS\]"),
        ("accuracy[fraud]>=0.9", r"unknown SLA metric 'accuracy\[fraud\]'"),
        ("recall[]>=0.9", "is not of the form"),
        ("recall[a,b]>=0.9", "is not of the form"),
        ("recall[a b]>=0.9", "is not of the form"),
    ],
)
def test_bad_new_metrics(text: str, match: str) -> None:
    with pytest.raises(SlaSyntaxError, match=match) as info:
        parse_sla(text)
    assert "known metrics:" in str(info.value) or "not of the form" in str(info.value)


def test_known_metrics_list_names_the_per_class_spelling() -> None:
    with pytest.raises(SlaSyntaxError, match=r"f1\[CLASS\]"):
        parse_sla("colour>=1")


def test_mapping_with_a_per_class_key() -> None:
    sla = sla_from_mapping({"precision[fraud]": ">=0.9", "f1_macro": ">=0.8"})
    assert sla == parse_sla("precision[fraud]>=0.9,f1_macro>=0.8")
    with pytest.raises(SlaSyntaxError, match=r"did you mean recall\[fraud\]"):
        sla_from_mapping({"recal[fraud]": ">=0.9"})


def test_a_range_on_one_metric() -> None:
    sla = parse_sla("accuracy>=0.9,accuracy<=1")
    assert len(sla.terms) == 2


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_an_empty_sla(text: str) -> None:
    sla = parse_sla(text)
    assert sla == Sla()
    assert not sla


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("acuracy>=0.9", r"unknown SLA metric 'acuracy' \(did you mean accuracy\?\)"),
        ("colour>=1", r"unknown SLA metric 'colour'; known metrics: accuracy"),
        ("accuracy=>0.9", "is not of the form metric>=number"),
        ("accuracy 0.9", "is not of the form"),
        ("accuracy>=", "is not of the form"),
        ("accuracy>=high", "is not of the form"),
        ("accuracy>=nan", "is not of the form"),
        ("accuracy>=0.9.1", "is not a number"),
        ("accuracy>=1e999", "must be a finite number"),
        ("accuracy>=0.9,,size_mb<=2", "empty term"),
        ("accuracy>=0.9,", "empty term"),
        ("accuracy>=0.9,accuracy>=0.8", "names accuracy>= twice"),
        ("accuracy!=0.9", "is not of the form"),
    ],
)
def test_bad_expressions(text: str, match: str) -> None:
    with pytest.raises(SlaSyntaxError, match=match):
        parse_sla(text)


def test_syntax_error_is_a_value_error() -> None:
    assert issubclass(SlaSyntaxError, ValueError)


def test_mapping_form_equals_the_string_form() -> None:
    mapping = sla_from_mapping({"accuracy": ">=0.9", "latency_p95_ms": " <= 50 "})
    assert mapping == parse_sla("accuracy>=0.9,latency_p95_ms<=50")
    assert mapping.as_mapping() == {"accuracy": ">=0.9", "latency_p95_ms": "<=50"}
    assert sla_from_mapping(mapping.as_mapping()) == mapping


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"accuracy": 0.9}, "bare number has no direction"),
        ({"accuracy": True}, "expected a string"),
        ({"accuracy": None}, "expected a string"),
        ({"accuracy": "0.9"}, "is not of the form '>=number'"),
        ({"accuracy": ">=lots"}, "is not of the form"),
        ({"accuracy": ">=1e999"}, "finite"),
        ({"speed": ">=1"}, "unknown SLA metric 'speed'"),
    ],
)
def test_bad_mappings(data: dict[str, object], match: str) -> None:
    with pytest.raises(SlaSyntaxError, match=match):
        sla_from_mapping(data)


@pytest.mark.parametrize(
    ("op", "value", "measured", "holds"),
    [
        (">=", 0.9, 0.9, True),
        (">=", 0.9, 0.89, False),
        (">", 0.9, 0.9, False),
        (">", 0.9, 0.91, True),
        ("<=", 50, 50, True),
        ("<=", 50, 50.01, False),
        ("<", 50, 50, False),
        ("<", 50, 49.9, True),
        ("==", 0.3, 0.1 + 0.2, True),
        ("==", 1, 0.99, False),
    ],
)
def test_term_holds(op: str, value: float, measured: float, holds: bool) -> None:
    assert SlaTerm("accuracy", op, value).holds(measured) is holds


def test_the_manifest_schema_accepts_every_metric_the_parser_does() -> None:
    import json

    import jsonschema

    from bot.init_repo import TEMPLATE

    schema = json.loads((TEMPLATE / "schemas" / "aimodel.schema.json").read_text())
    sla_schema = schema["properties"]["spec"]["properties"]["sla"]
    every = {name: ">=0" for name in METRICS}
    every.update({"precision[fraud]": ">=0.9", "recall[1]": "<=1", "f1[not-fraud]": ">0"})
    jsonschema.validate(every, sla_schema)
    assert sla_from_mapping(every).as_mapping() == every
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"accuracy[fraud]": ">=0.9"}, sla_schema)

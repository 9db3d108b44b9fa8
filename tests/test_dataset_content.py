"""A data set's content is never quoted: not in errors, check summaries or CLI output.

A data set URI may point at any file the worker can read (an environment dump, a key). The
files here hold secret-looking text where a header, a cell or a label should be; whatever
goes wrong, the validator names lines, rows and columns, and the secret stays in the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bot.checks.measure import MeasureError, measure_model
from tests import model_samples as samples
from tests.conftest import ModelFiles, Run

TOKEN = "xoxb-1111-2222-SeCrEtToKeN"
SECRETS = (TOKEN, "SLACK_BOT_TOKEN", "hunter2", "AKIAEXAMPLEKEY")
ENVIRON = (
    f"SLACK_BOT_TOKEN={TOKEN}\nSLACK_SIGNING_SECRET=hunter2\n"
    "AWS_ACCESS_KEY_ID=AKIAEXAMPLEKEY\nHOME=/root\n"
)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked in:\n{text}"


@pytest.fixture(params=["pyarrow", "numpy"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both fast CSV readers: pyarrow's (when installed) and numpy's (without pyarrow); each
    hands a file it cannot read over to the csv module, which names the line."""
    if request.param == "numpy":
        monkeypatch.setitem(sys.modules, "pyarrow.csv", None)
    else:
        pytest.importorskip("pyarrow.csv", reason="the fast CSV reader needs pyarrow")
    return str(request.param)


def _error(model: Path, data: Path, label: str = "label") -> str:
    with pytest.raises(MeasureError) as info:
        measure_model(model, data, label)
    message = str(info.value)
    assert_no_secret(message)
    return message


@pytest.mark.usefixtures("reader")
@pytest.mark.parametrize(
    "content",
    [
        ENVIRON,
        ENVIRON.replace("\n", "\0"),  # /proc/self/environ separates with NUL
        f"f0,f1,{TOKEN},f3,label\n1,2,3,4,0\n",
    ],
)
def test_a_header_without_the_label_column_is_counted_not_quoted(
    tmp_path: Path, content: str
) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "environ"
    data.write_text(content)
    message = _error(model, data, "nope")
    assert "no label column 'nope' in the header; the header has" in message
    assert "names not shown" in message


def test_short_identifier_names_are_listed(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "ok.csv"
    data.write_text("f0,f1,f 2,f.3,target\n1,2,3,4,0\n")
    assert "the header has 5 columns: f0, f1, f 2, f.3, target" in _error(model, data)


def test_a_wide_header_is_counted(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "wide.csv"
    data.write_text(",".join(f"c{i}" for i in range(80)) + "\n" + ",".join("1" * 80) + "\n")
    assert "the header has 80 columns (too many to list)" in _error(model, data)


@pytest.mark.usefixtures("reader")
@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (f"1,2,0,{TOKEN},4", ":3: column 'f2': not a number"),
        ("1,hunter2,0,3,4", ":3: column 'f1': not a number"),
        (f"1,2,{TOKEN},3,4", ": line 3: the label is not a number"),
        (f"1,2,0,3,4,{TOKEN}", ":3: 6 cells, but the header has 5 columns"),
        (f'1,2,0,3,"{TOKEN}\n', ":4: column 'f3': not a number"),  # a quote open to the end
    ],
)
def test_a_bad_row_names_its_line_and_column_only(
    tmp_path: Path, row: str, expected: str
) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "rows.csv"
    data.write_text(f"f0,f1,label,f2,f3\n0,3,0,0,0\n{row}\n")
    assert f"{data}{expected}" in _error(model, data)


def test_a_secret_column_name_is_numbered(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "col.csv"
    data.write_text(f"f0,{TOKEN}=x,label,f2,f3\n0,3,0,0,0\n1,oops,0,3,4\n")
    assert f"{data}:3: column 2: not a number" in _error(model, data)


def test_parquet_names_and_cells_are_not_quoted(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet data sets need pyarrow")
    import pyarrow.parquet as pq

    model = samples.linear_classifier(tmp_path / "model.onnx")
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({f"{TOKEN}=": [1.0], "f1": ["x"], "f2": [1.0], "label": [TOKEN]}), data)
    assert "names not shown" in _error(model, data, "nope")
    assert "column 'f1' is string, not a number" in _error(model, data)
    text = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"f0": [0.0], "f1": [3.0], "f2": [0.0], "f3": [0.0], "label": [TOKEN]}), text
    )
    assert f"{text}: row 1: the label is not a number" in _error(model, text)


# --- through the CLI and the pull request's checks -------------------------------------------


def test_a_data_set_of_secrets_never_reaches_the_cli_or_the_check(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path
) -> None:
    environ = tmp_path / "environ"
    environ.write_text(ENVIRON)
    created = aimodel(
        "create", "fraud", "--app", "payments", "--dataset", "env", "--artifact",
        str(model_files.onnx), "--dataset-uri", str(environ), "--label-column", "nope",
        "--SLA", "accuracy>=0.9", "--as", "ada", expect=None,
    )
    assert_no_secret(created.text)
    shown = aimodel("pr", "show", "1", expect=None)
    assert_no_secret(shown.text)
    pr = aimodel("pr", "show", "1", "--json").json
    validate = pr["checks"]["validate"]
    assert validate["state"] == "failure"
    assert "no label column 'nope' in the header; the header has 1 column (names not shown" in validate["summary"]
    assert_no_secret(json.dumps(pr))


def test_a_secret_cell_never_reaches_the_cli_or_the_check(
    aimodel: Run, home: Path, model_files: ModelFiles, tmp_path: Path
) -> None:
    data = tmp_path / "cells.csv"
    data.write_text(f"f0,f1,label,f2,f3\n0,3,0,0,0\n0,{TOKEN},1,0,0\n")
    created = aimodel(
        "create", "fraud", "--app", "payments", "--dataset", "cells", "--artifact",
        str(model_files.onnx), "--dataset-uri", str(data), "--label-column", "label",
        "--SLA", "accuracy>=0.9", "--as", "ada", expect=None,
    )
    assert_no_secret(created.text)
    pr = aimodel("pr", "show", "1", "--json").json
    validate = pr["checks"]["validate"]
    assert validate["state"] == "failure"
    assert ":3: column 'f1': not a number" in validate["summary"]
    assert_no_secret(json.dumps(pr))
    assert_no_secret(aimodel("pr", "show", "1", expect=None).text)


def test_a_secret_class_label_is_counted_but_never_named(tmp_path: Path) -> None:
    model = samples.linear_classifier(tmp_path / "names.onnx", output="names")
    data = tmp_path / "names.csv"
    samples.write_csv(data, rows=30, right=30, class_names=samples.CLASS_NAMES)
    lines = data.read_text().splitlines()
    lines[5] = lines[5].replace("cat", TOKEN).replace("dog", TOKEN).replace("bird", TOKEN)
    data.write_text("\n".join(lines) + "\n")
    m = measure_model(model, data, "label")
    assert m.metrics["accuracy"] == 29 / 30
    assert {"precision[cat]", "recall[dog]"} <= set(m.metrics)
    assert_no_secret(json.dumps(m.metrics))

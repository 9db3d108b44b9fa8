"""scan / validate / sign / verify of models by name (or the seed's --appName), on the
default branch, outside any pull request: what a person runs to see where a model stands."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import commands as c
from bot import messages
from bot.catalog import Catalog
from bot.checks.fetch import ArtifactError, dataset_file, materialize, stored_name
from bot.checks.pipeline import accepts_declared, attestation_path, signature_path, trusted_keys
from bot.gitops import Refusal
from bot.manifests import AIModel
from bot.policy import authorize
from bot.redact import redact

if TYPE_CHECKING:
    from bot.app import Context


Out = Callable[[str], None]


def _print(text: str) -> None:
    sys.stdout.write(redact(text.rstrip("\n")) + "\n")


def resolve_models(catalog: Catalog, target: str, face: str = "cli") -> list[AIModel]:
    """A model name, or an application name (all the models it uses): the seed's --appName."""
    if target in catalog.models:
        return [catalog.models[target]]
    if target in catalog.apps:
        models = [catalog.models[m] for m in sorted(catalog.apps[target].models) if m in catalog.models]
        if models:
            return models
        raise Refusal(messages.app_uses_no_model(target))
    raise Refusal(messages.no_such_model_or_app(target, face))


def run(ctx: Context, cmd: c.Scan | c.Validate | c.Sign | c.Verify, common: c.Common, who: str, out: Out = _print, face: str = "cli") -> int:
    """Run one verb on models by name; the report goes to `out` (the terminal, or a Slack reply)."""
    catalog = ctx.gitops.catalog()
    if who:
        decision = authorize(catalog.config, catalog.config.people.get(who), cmd.verb, who)
        if not decision.allowed:
            raise Refusal(messages.refused(decision.reason))
    if isinstance(cmd, c.Scan):
        names = [*cmd.targets, *([cmd.app_name] if cmd.app_name else [])]
        models = [m for name in names for m in resolve_models(catalog, name, face)]
        return _scan(ctx, catalog, models, common.json, cmd.sarif, out)
    models = resolve_models(catalog, cmd.target if not isinstance(cmd, c.Validate) else cmd.name, face)
    if isinstance(cmd, c.Validate):
        return _validate(ctx, catalog, models, cmd, common.json, out)
    if isinstance(cmd, c.Sign):
        return _sign(ctx, catalog, models, cmd, common.json, out)
    return _verify(ctx, catalog, models, common.json, out)


def _local(ctx: Context, m: AIModel, catalog: Catalog) -> Path:
    try:  # the default branch's URIs, re-checked against its sources
        return materialize(
            m.artifact.uri, m.artifact.sha256, ctx.cache_dir, ctx.guard.for_main(catalog.config.sources),
            store=ctx.store, name=stored_name(m.artifact.uri, m.artifact.source), layout=m.artifact.layout,
        )
    except ArtifactError as exc:
        raise Refusal(messages.model_problem(m.name, str(exc))) from None


def _scan(ctx: Context, catalog: Catalog, models: list[AIModel], as_json: bool, sarif: bool, out: Out) -> int:
    from bot.checks.scan import scan_paths
    from bot.checks.scan_report import render_table

    reports = []
    ok = True
    for m in models:
        report = scan_paths([str(_local(ctx, m, catalog))], allow=catalog.config.scan_allow)  # _local checked the digest
        reports.append((m, report))
        ok = ok and report.ok
    if sarif:
        out(json.dumps(next(r.to_sarif() for _, r in reports) if len(reports) == 1 else [r.to_sarif() for _, r in reports], indent=2))
    elif as_json:
        out(json.dumps({m.name: r.to_json() for m, r in reports}, indent=2))
    else:
        for m, r in reports:
            out(f"{m.name} {m.version} ({m.artifact.uri})")
            out(render_table(r))
    return 0 if ok else 1


def _validate(ctx: Context, catalog: Catalog, models: list[AIModel], cmd: c.Validate, as_json: bool, out_: Out) -> int:
    from bot.checks.measure import MeasureError, measure_model
    from bot.checks.sla_report import evaluate_sla

    out: dict[str, Any] = {}
    ok = True
    errors = [e for e in catalog.all_errors() if any(e.file == m.path or m.name in e.file for m in models)]
    for e in errors:
        ok = False
        out.setdefault("manifest", []).append(str(e))
    for m in models:
        sla = cmd.sla if cmd.sla is not None else m.sla
        dataset = catalog.datasets.get(m.dataset)
        if dataset is None:
            out[m.name] = {"passed": False, "error": messages.dataset_not_there(m.dataset)}
            ok = False
            continue
        try:
            data = dataset_file(
                dataset.uri, dataset.sha256, ctx.cache_dir, ctx.guard.for_main(catalog.config.sources),
                store=ctx.store, name=stored_name(dataset.uri, dataset.source, f"data.{dataset.format}"),
            )
            measurement = measure_model(_local(ctx, m, catalog), data, dataset.label_column, model_format=m.artifact.format)
        except (MeasureError, ArtifactError, OSError) as exc:
            out[m.name] = {"passed": False, "error": messages.cannot_measure(str(exc))}
            ok = False
            continue
        report = evaluate_sla(sla, measurement, declared=m.metrics, accept_declared=accepts_declared(catalog.config, m, catalog))
        out[m.name] = {**report.to_dict(), "text": report.to_text(), "summary": report.summary()}
        ok = ok and report.passed
    if as_json:
        out_(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "text"} if isinstance(v, dict) else v for k, v in out.items()}, indent=2, default=str))
    else:
        for line in out.get("manifest", []):
            out_(f"manifest: {line}")
        for name, result in out.items():
            if name == "manifest":
                continue
            out_(f"{name}: {result.get('summary') or result.get('error')}")
            if result.get("text"):
                out_(result["text"])
    return 0 if ok else 1


def _sign(ctx: Context, catalog: Catalog, models: list[AIModel], cmd: c.Sign, as_json: bool, out_: Out) -> int:
    from bot.checks.sign import sign_model

    key = ctx.signing_key()
    written = {}
    for m in models:
        out = Path(cmd.bundle) if cmd.bundle and len(models) == 1 else Path(f"{m.name}-{m.version}.sig")
        sign_model(_local(ctx, m, catalog), key, bundle_path=out, serialization=catalog.config.sign_serialization)
        written[m.name] = str(out)
    if as_json:
        out_(json.dumps(written, indent=2))
    else:
        for name, path in written.items():
            out_(messages.signed_locally(name, path))
    return 0


def _verify(ctx: Context, catalog: Catalog, models: list[AIModel], as_json: bool, out: Out) -> int:
    from bot.checks.sign_store import NotVerified, verify_kept

    keys = trusted_keys(ctx, catalog)
    results: dict[str, dict[str, Any]] = {}

    def legacy(path: str) -> bytes | None:
        blob = catalog.files.get(path)  # a repository from before the store kept signatures
        return ctx.workspace.read_blob(blob) if blob is not None else None

    for m in models:
        with tempfile.TemporaryDirectory() as tmp:
            try:  # the bundle and the attestation, from the artifact store by digest
                key, _ = verify_kept(
                    ctx.store, _local(ctx, m, catalog), m.artifact.sha256, m.name, m.version, keys,
                    bundle_at=Path(tmp) / "model.sig", legacy=(legacy(signature_path(m.name)), legacy(attestation_path(m.name))),
                )
                results[m.name] = {"verified": True, "key": key, "sha256": m.artifact.sha256}
            except NotVerified as exc:
                results[m.name] = {"verified": False, "reason": str(exc)}
    if as_json:
        out(json.dumps(results, indent=2))
    else:
        for name, r in results.items():
            out(messages.verified(name, r["key"]) if r["verified"] else messages.not_verified(name, r["reason"]))
    return 0 if all(r["verified"] for r in results.values()) else 1

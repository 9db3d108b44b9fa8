"""The checks on a pull request: manifest, scan, validate (SLA, measured), sign.

Each check reports through the Forge as it finishes. Trust (the scan allow-list, the
keys) comes from the base branch, never from the pull request itself, so a pull request
cannot vouch for its own bytes. Signing runs only when the other three are green; the
signature bundles and the signed attestation of the results go to the artifact store, beside
the bytes they cover (bot.checks.sign_store). The bot never commits to the pull request's
branch for them: its head stays the person's commit, and the checks stay on it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import lifecycle, metrics
from bot.catalog import Catalog
from bot.checks.fetch import ArtifactError, dataset_file, materialize, stored_name
from bot.checks.sign_store import CHECKS_PREDICATE, attestation_path, signature_path
from bot.checks.source_check import source_errors
from bot.checks.versions_check import version_errors
from bot.forges.base import CheckResult, PullRequest
from bot.manifests import CONFIG_PATH, AIModel, RepoConfig, Sources
from bot.redact import redact, redact_value
from bot.sources import vetted_key

if TYPE_CHECKING:
    from bot.app import Context

__all__ = ["CHECKS_PREDICATE", "Pipeline", "attestation_path", "changed_models", "signature_path", "trusted_keys"]


@dataclass
class ModelChecks:
    model: AIModel
    local: Path | None = None
    scan_ok: bool = False
    scan_summary: str = ""
    scan_report: dict[str, Any] | None = None
    validate_ok: bool = False
    validate_summary: str = ""
    validate_report: dict[str, Any] | None = None


def changed_models(base: Catalog, head: Catalog) -> list[AIModel]:
    """Models added or changed by the pull request (their manifest differs from the base)."""
    out = []
    for name, model in sorted(head.models.items()):
        before = base.models.get(name)
        if before is None or head.files.get(model.path) != base.files.get(before.path):
            out.append(model)
    return out


def accepts_declared(config: RepoConfig, model: AIModel, head: Catalog | None = None) -> bool:
    """Declared metrics stand in for measured ones only where every environment that would
    run this version says so (a version no release pins yet: the first environment's rule)."""
    pinned = {e for a in head.apps.values() for e, pins in a.environments.items() if pins.get(model.name) == model.version} if head else set()
    first = config.promotion_order()[:1] or ("dev",)
    envs = tuple(sorted(pinned)) or first
    return all(
        config.environments[e].accept_declared_metrics for e in envs if e in config.environments
    ) and any(e in config.environments for e in envs)


def trusted_keys(ctx: Context, catalog: Catalog) -> list[Any]:
    from bot.checks.sign import SignatureError, load_public_key

    keys = []
    for path in catalog.config.trusted_keys:
        blob = catalog.files.get(path)
        if blob is None:
            continue
        try:
            keys.append(load_public_key(ctx.workspace.read_blob(blob)))
        except (SignatureError, ValueError):
            continue  # a broken key file trusts nobody; the manifest check reports it
    return keys

log = logging.getLogger("aimodel.checks")


class Pipeline:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._access = ctx.guard.for_pr(Sources())  # the strictest, until run() reads the base config
        self.head = ""
        self._last = time.monotonic()  # when the previous check finished (metrics: each check's time)

    def _report(
        self,
        pr: PullRequest,
        name: str,
        state: str,
        summary: str,
        details: str = "",
        annotations: Sequence[Mapping[str, Any]] = (),
    ) -> CheckResult:
        check = CheckResult(name, state, redact(summary), redact(details), pr.head, tuple(redact_value(dict(a)) for a in annotations))
        self.ctx.forge.set_check(pr.number, check)
        if state != "pending":  # the checks run one after another: each took the time since the last
            now = time.monotonic()
            metrics.check(name, state, now - self._last)
            log.info("check %s of #%s: %s", name, pr.number, state)
            self._last = now
        else:
            self._last = time.monotonic()
        pr.checks[name] = check
        return check

    def run(self, pr: PullRequest) -> None:
        """Check `pr` at its head (bot.lifecycle.checks decides that it needs checking)."""
        ctx = self.ctx
        self.head = pr.head  # the head this run ends on (a CODEOWNERS commit starts a new run)
        for name in ("manifest", "scan", "validate", "sign"):
            self._report(pr, name, "pending", "waiting")
        base, catalog = ctx.gitops.pr_catalogs(pr)
        # Sources come from the base branch, like every other trust decision.
        on_base = [vetted_key("artifact", v.artifact.uri) for m in base.models.values() for v in m.versions]
        on_base += [vetted_key("dataset", d.uri) for d in base.datasets.values()]
        self._access = ctx.guard.for_pr(base.config.sources, pr.meta.vetted_sources, on_base)
        errors = [*catalog.all_errors(), *version_errors(base, catalog), *source_errors(base, catalog, self._access)]
        if errors:
            lines = [str(e) for e in errors]
            self._report(
                pr,
                "manifest",
                "failure",
                f"{len(errors)} problem(s): {lines[0]}",
                "\n".join(f"- `{line}`" for line in lines),
                [
                    {"path": e.file, "line": e.line or 1, "message": e.message, "level": "failure"}
                    for e in errors
                ],
            )
            for name in ("scan", "validate", "sign"):
                self._report(pr, name, "skipped", "manifest check failed")
            lifecycle.checks_finished(ctx, pr.number, self.head)
            return
        if self._codeowners_out_of_step(pr, base, catalog):
            return  # the bot's CODEOWNERS commit starts a new run
        models = changed_models(base, catalog)
        self._report(
            pr,
            "manifest",
            "success",
            f"{len(catalog.models)} model(s), {len(catalog.apps)} application(s): schema and references valid",
        )
        if not models:
            for name in ("scan", "validate", "sign"):
                self._report(pr, name, "skipped", "no model artifact changes")
            lifecycle.checks_finished(ctx, pr.number, self.head)
            return
        results = [ModelChecks(m) for m in models]
        self._scan(pr, base.config, results)
        self._validate(pr, catalog, results)
        if all(r.scan_ok and r.validate_ok for r in results):
            self._sign(pr, results, base.config.sign_serialization)
        else:
            self._report(pr, "sign", "skipped", "not signed: scan or validate failed")
        lifecycle.checks_finished(ctx, pr.number, self.head)

    def _codeowners_out_of_step(self, pr: PullRequest, base: Catalog, catalog: Catalog) -> bool:
        """A PR that changes the config gets CODEOWNERS rewritten to match it, on its branch."""
        from bot.codeowners import PATH, render

        if base.files.get(CONFIG_PATH) == catalog.files.get(CONFIG_PATH):
            return False
        wanted = render(catalog.config).encode()
        blob = catalog.files.get(PATH)
        if blob is not None and self.ctx.workspace.read_blob(blob) == wanted:
            return False
        head = self.ctx.workspace.commit_change(pr.head, {PATH: wanted}, "Keep CODEOWNERS in step with .aimodel/config.yaml")
        self.ctx.workspace.push(head, pr.branch, expect=pr.head)
        self.ctx.forge.update_head(pr.number, head)
        return True

    # ------------------------------------------------------------------ scan

    def _scan(self, pr: PullRequest, config: RepoConfig, results: list[ModelChecks]) -> None:
        from bot.checks.scan import scan_paths

        lines, all_ok = [], True
        for r in results:
            art = r.model.artifact
            try:
                r.local = materialize(
                    art.uri, art.sha256, self.ctx.cache_dir, self._access, store=self.ctx.store,
                    name=stored_name(art.uri, art.source), layout=art.layout,
                )
            except (ArtifactError, OSError) as exc:
                r.scan_summary = str(exc)
                lines.append(f"- **{r.model.name}**: blocked: {exc}")
                all_ok = False
                continue
            # materialize has just checked the digest; hashing the file again would double the I/O.
            # A folder is scanned file by file: every file in it, whatever its name.
            report = scan_paths([str(r.local)], allow=config.scan_allow)
            r.scan_report = report.to_json()
            r.scan_ok = report.ok
            findings = [f for fr in report.files for f in fr.findings]
            blocked = [fr for fr in report.files if fr.status == "blocked"]
            if report.ok:
                what = report.files[0].format if art.layout == "file" else f"folder of {len(report.files)} files"
                r.scan_summary = f"{r.model.name}: clean ({what})"
                lines.append(f"- **{r.model.name}** ({what}): clean")
            else:
                all_ok = False
                parts = [f"{f.severity} `{f.name}` at byte {f.offset}" for f in findings[:5]]
                parts += [f"blocked: {fr.error}" for fr in blocked[:3]]
                r.scan_summary = f"{r.model.name}: " + "; ".join(parts)
                lines.append(f"- **{r.model.name}**: " + "; ".join(parts))
        summary = (
            "all clean" if all_ok else "; ".join(r.scan_summary for r in results if not r.scan_ok)
        )
        self._report(pr, "scan", "success" if all_ok else "failure", summary, "\n".join(lines))

    # ------------------------------------------------------------------ validate

    def _validate(self, pr: PullRequest, catalog: Catalog, results: list[ModelChecks]) -> None:
        from bot.checks.measure import MeasureError, measure_model
        from bot.checks.sla_report import evaluate_sla

        details, all_ok = [], True
        for r in results:
            m = r.model
            if r.local is None:
                r.validate_summary = f"{m.name}: artifact unavailable"
                all_ok = False
                continue
            if not m.sla:
                r.validate_ok = True
                r.validate_summary = f"{m.name}: no SLA declared"
                details.append(f"### {m.name}\nNo SLA declared.")
                continue
            dataset = catalog.datasets[m.dataset]
            try:
                data = dataset_file(
                    dataset.uri, dataset.sha256, self.ctx.cache_dir, self._access,
                    store=self.ctx.store, name=stored_name(dataset.uri, dataset.source, f"data.{dataset.format}"),
                )
                measurement = measure_model(
                    r.local, data, dataset.label_column, model_format=m.artifact.format
                )
            except (MeasureError, ArtifactError, OSError) as exc:
                r.validate_summary = f"{m.name}: cannot measure: {exc}"
                details.append(f"### {m.name}\nCannot measure: {exc}")
                all_ok = False
                continue
            report = evaluate_sla(
                m.sla,
                measurement,
                declared=m.metrics,
                accept_declared=accepts_declared(catalog.config, m, catalog),
            )
            r.validate_ok = report.passed
            r.validate_report = report.to_dict()
            r.validate_summary = f"{m.name}: {report.summary()}"
            details.append(f"### {m.name}\n{report.to_markdown()}")
            all_ok = all_ok and report.passed
        summary = "; ".join(r.validate_summary for r in results)
        self._report(
            pr, "validate", "success" if all_ok else "failure", summary, "\n\n".join(details)
        )

    # ------------------------------------------------------------------ sign

    def _sign(self, pr: PullRequest, results: list[ModelChecks], serialization: str) -> None:
        from bot.checks.sign import SignatureError
        from bot.checks.sign_store import keep

        ctx = self.ctx
        try:
            key = ctx.signing_key()
        except (OSError, SignatureError, ValueError) as exc:
            self._report(pr, "sign", "error", f"cannot load the signing key: {exc}")
            return
        lines: list[str] = []
        short: list[str] = []
        for r in results:
            assert r.local is not None
            art = r.model.artifact
            # Always sign anew: the attestation must carry this run's results.
            facts = {"artifact": art.uri, "checked_commit": pr.head, "scan": r.scan_report, "validate": r.validate_report}
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    kept = keep(
                        ctx.store, r.local, art.sha256, r.model.name, r.model.version, key, facts,
                        work=Path(tmp), serialization=serialization,
                    )
            except (OSError, SignatureError) as exc:
                self._report(pr, "sign", "error", f"cannot keep the signature of {r.model.name}: {exc}")
                return
            short.append(f"{r.model.name} {r.model.version}: signed (sha256 {art.sha256[:12]}; bundle and attestation in the artifact store)")
            lines.append(f"- **{r.model.name}** {r.model.version}: signed; bundle `{kept.signature}`, attestation `{kept.attestation}` in the artifact store")
        self._report(pr, "sign", "success", "; ".join(short), "\n".join(lines))

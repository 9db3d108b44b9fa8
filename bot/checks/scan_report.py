"""Result types of the model-file scanner and their renderings.

The scanner (``bot.checks.scan``) produces a :class:`ScanReport`; this module turns it into
a human table, a JSON document, or a SARIF 2.1.0 log. It imports nothing heavy, so the
``aimodel scan`` start-up stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEVERITIES = ("critical", "high", "medium", "low")

_TOOL_NAME = "aimodel-scan"
_TOOL_VERSION = "0.1.0"
_SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.0", "low": "2.0"}


@dataclass(frozen=True)
class Finding:
    """One suspicious construct inside a model file."""

    path: str
    offset: int | None
    format: str
    name: str
    severity: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "offset": self.offset,
            "format": self.format,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
        }


@dataclass(frozen=True)
class FileReport:
    """The verdict on one file: ``clean``, ``findings`` or ``blocked`` (cannot verify)."""

    path: str
    format: str
    status: str
    findings: tuple[Finding, ...]
    error: str | None
    size: int

    @property
    def ok(self) -> bool:
        return self.status == "clean"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "status": self.status,
            "size": self.size,
            "error": self.error,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True)
class ScanReport:
    """The verdict on every scanned file, in path order."""

    files: tuple[FileReport, ...]

    @property
    def ok(self) -> bool:
        return all(f.status == "clean" for f in self.files)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(x for f in self.files for x in f.findings)

    def to_json(self) -> dict[str, Any]:
        counts = {"clean": 0, "findings": 0, "blocked": 0}
        for f in self.files:
            counts[f.status] = counts.get(f.status, 0) + 1
        return {
            "ok": self.ok,
            "summary": {"files": len(self.files), **counts},
            "files": [f.to_json() for f in self.files],
        }

    def to_sarif(self) -> dict[str, Any]:
        return render_sarif(self)


def _location(path: str, offset: int | None) -> dict[str, Any]:
    """A SARIF location; inside an archive ("file!member") the offset is the member's, so the
    region is left out and the member named in a logical location instead."""
    outer, sep, member = path.partition("!")
    physical: dict[str, Any] = {"artifactLocation": {"uri": _sarif_uri(outer)}}
    loc: dict[str, Any] = {"physicalLocation": physical}
    if sep:
        where = member if offset is None else f"{member}@{offset}"
        loc["logicalLocations"] = [{"name": member, "fullyQualifiedName": where,
                                    "kind": "member"}]  # fmt: skip
    elif offset is not None:
        physical["region"] = {"byteOffset": offset, "byteLength": 1}
    return loc


def _sarif_uri(path: str) -> str:
    if "://" in path:
        return path
    return path.replace("\\", "/")


def _rule_id(name: str) -> str:
    return "AIMODEL-" + name.upper().replace(" ", "-")


def render_sarif(report: ScanReport) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one rule per kind of finding, one result per finding/blocked file."""
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []

    def rule(rule_id: str, short: str, severity: str) -> None:
        if rule_id not in rules:
            rules[rule_id] = {
                "id": rule_id,
                "name": rule_id.title().replace("-", ""),
                "shortDescription": {"text": short},
                "defaultConfiguration": {"level": _SARIF_LEVEL[severity]},
                "properties": {"security-severity": _SECURITY_SEVERITY[severity]},
            }

    for fr in report.files:
        for f in fr.findings:
            kind = "unsafe-import" if "." in f.name or f.name.startswith("GLOBAL") else f.name
            rid = _rule_id(kind if kind == "unsafe-import" else "finding-" + kind.split()[0])
            rule(rid, "Model file references code that is not on the allow-list", f.severity)
            results.append(
                {
                    "ruleId": rid,
                    "level": _SARIF_LEVEL[f.severity],
                    "message": {"text": f"{f.name}: {f.message}"},
                    "locations": [_location(f.path, f.offset)],
                    "properties": {"format": f.format, "severity": f.severity, "name": f.name},
                }
            )
        if fr.status == "blocked":
            rid = _rule_id("cannot-verify")
            rule(rid, "Model file could not be verified (unknown or unparsable)", "high")
            results.append(
                {
                    "ruleId": rid,
                    "level": "error",
                    "message": {"text": fr.error or "cannot verify"},
                    "locations": [_location(fr.path, None)],
                    "properties": {"format": fr.format, "severity": "high"},
                }
            )
    return {
        "$schema": _SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": _TOOL_NAME,
                        "version": _TOOL_VERSION,
                        "informationUri": "https://github.com/aimodel-gitops/aimodel-gitops",
                        "rules": list(rules.values()),
                    }
                },
                "artifacts": [
                    {"location": {"uri": _sarif_uri(fr.path)}, "length": fr.size}
                    for fr in report.files
                ],
                "results": results,
            }
        ],
    }


def render_table(report: ScanReport) -> str:
    """A plain-text table: path, format, status, findings; then one line per finding."""
    rows = [("PATH", "FORMAT", "STATUS", "FINDINGS")]
    for fr in report.files:
        rows.append((fr.path, fr.format, fr.status, str(len(fr.findings))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    details: list[str] = []
    for fr in report.files:
        for f in fr.findings:
            where = f"{f.path}@{f.offset}" if f.offset is not None else f.path
            details.append(f"  [{f.severity}] {where}: {f.name} - {f.message}")
        if fr.status == "blocked":
            details.append(f"  [blocked] {fr.path}: {fr.error}")
    n_bad = sum(1 for f in report.files if f.status != "clean")
    summary = (
        f"{len(report.files)} file(s) scanned, {n_bad} not clean, "
        f"{sum(len(f.findings) for f in report.files)} finding(s)"
    )
    out = lines
    if details:
        out = [*out, "", *details]
    return "\n".join([*out, "", summary])

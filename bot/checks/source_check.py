"""The manifest check's view of sources: every artifact or data set URI a pull request adds
or changes must be one its reader may use (a hand-edited manifest gets no way around
`sources`). Only admission is checked here; the scan and validate checks read the bytes."""

from __future__ import annotations

from bot.catalog import Catalog
from bot.manifests import ManifestError
from bot.sources import Access, SourceRefused
from bot.store import is_store_uri


def _problem(access: Access, uri: str, kind: str) -> str | None:
    if is_store_uri(uri):
        return None  # bytes the store keeps, read by digest and verified (the manifest check validated the URI)
    try:
        access.admit(uri, kind)
    except SourceRefused as exc:
        return str(exc)
    return None


def source_errors(base: Catalog, head: Catalog, access: Access) -> list[ManifestError]:
    """One error per URI in head that is new or changed against base and may not be read."""
    errors = []
    for name, model in sorted(head.models.items()):
        before = base.models.get(name)
        known = {v.artifact.uri for v in before.versions} if before is not None else set()
        for i, version in enumerate(model.versions):
            if version.artifact.uri in known:
                continue
            problem = _problem(access, version.artifact.uri, "artifact")
            if problem:
                errors.append(ManifestError(model.path, None, f"spec.versions[{i}].artifact.uri", problem))
    for name, dataset in sorted(head.datasets.items()):
        old = base.datasets.get(name)
        if old is not None and old.uri == dataset.uri:
            continue
        problem = _problem(access, dataset.uri, "dataset")
        if problem:
            errors.append(ManifestError(dataset.path, None, "spec.uri", problem))
    return errors

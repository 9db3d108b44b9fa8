"""A registered version never changes: what the base branch holds of a model's versions the
pull request must keep, byte for byte (artifact, digest, format). New versions come after
the registered ones. A removed model (destroy) takes its versions with it."""

from __future__ import annotations

from bot.catalog import Catalog
from bot.manifests import ManifestError


def version_errors(base: Catalog, head: Catalog) -> list[ManifestError]:
    errors: list[ManifestError] = []
    for name, before in base.models.items():
        after = head.models.get(name)
        if after is None:
            continue
        found = len(errors)
        for old in before.versions:
            now = after.get(old.version)
            if now is None:
                errors.append(ManifestError(after.path, None, "spec.versions", f"version {old.version} is registered and cannot be removed"))
            elif now.artifact != old.artifact:
                errors.append(ManifestError(after.path, None, "spec.versions", f"version {old.version} is registered: its artifact cannot change (register a new version)"))
        registered = [v.version for v in before.versions]
        if len(errors) == found and [v.version for v in after.versions][: len(registered)] != registered:
            # the newest entry is what the checks look at: a new version slipped in before it would go unchecked
            errors.append(ManifestError(after.path, None, "spec.versions", "registered versions moved: new versions go after them, oldest first"))
    return errors

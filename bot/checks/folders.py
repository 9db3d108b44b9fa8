"""A model that is a folder (the Hugging Face layout: config.json, tokenizer files, safetensors
shards): kept in the store file by file, plus a file list.

The file list is canonical JSON naming each file by its path relative to the folder, its sha256
and its size; it is stored by digest like any object, and the manifest's uri and sha256 name it
(`layout: folder`). Copying a folder out reads the list (verified by its digest), then each file
(verified as it is copied) into a fresh folder that is renamed into place: a folder handed to the
scan, the signer or a target holds exactly the files the list names, nothing left over.

The list's paths are checked before any is used: a list is bytes someone registered, and a path
that climbs out (`..`, absolute, a drive, a backslash) must never reach the file system.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bot.checks.model_manifest import DEFAULT_IGNORED
from bot.messages import store as msg

KIND = "aimodel-gitops/file-list/v1"
MAX_FILES = 10_000
MAX_LIST_BYTES = 16 << 20
# What model_signing leaves out of a folder, and the download cache `huggingface-cli download
# --local-dir` writes inside it: none of it is the model.
SKIPPED = frozenset((*DEFAULT_IGNORED, ".cache"))
_HEX = re.compile(r"[0-9a-f]{64}")
# the format a folder is, by the files that hold its weights (first match wins)
_WEIGHTS = ((".safetensors", "safetensors"), (".onnx", "onnx"), (".gguf", "gguf"), (".pt", "pytorch"), (".bin", "pytorch"), (".h5", "keras"), (".keras", "keras"))


class FolderError(ValueError):
    """A folder cannot be kept or its file list is not one; the message is safe to show."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative, POSIX
    sha256: str
    size: int


def safe_relative(path: str) -> bool:
    """A plain relative path that stays inside the folder it is joined to."""
    if not path or "\\" in path or "\x00" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return False
    parts = PurePosixPath(path).parts
    return bool(parts) and "/".join(parts) == path and not any(p in (".", "..") for p in parts)


def walk(root: Path) -> list[tuple[str, Path]]:
    """(relative path, path) of every file in the folder, sorted; links to files are listed
    (the caller admits where each leads), a link to a folder is refused (it could lead anywhere
    and loop)."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        top = rel_dir == "."
        for d in list(dirnames):
            if top and d in SKIPPED:
                dirnames.remove(d)
            elif (here / d).is_symlink():
                raise FolderError(msg.folder_link((here / d).relative_to(root).as_posix()))
        for f in filenames:
            if top and f in SKIPPED:
                continue
            rel = f if top else f"{rel_dir}/{f}"
            if not safe_relative(rel):
                raise FolderError(msg.folder_bad_name(rel))
            out.append((rel, here / f))
            if len(out) > MAX_FILES:
                raise FolderError(msg.folder_too_many(MAX_FILES))
    if not out:
        raise FolderError(msg.folder_empty())
    return sorted(out)


def file_list(entries: Iterable[Entry]) -> bytes:
    """The canonical bytes of a file list: the same folder always gives the same digest."""
    files = [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in sorted(entries, key=lambda e: e.path)]
    return (json.dumps({"kind": KIND, "files": files}, sort_keys=True, separators=(",", ":")) + "\n").encode()


def parse_file_list(data: bytes) -> list[Entry]:
    """The entries of a stored file list; FolderError for anything else."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise FolderError(msg.not_a_file_list("not JSON")) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND or not isinstance(doc.get("files"), list):
        raise FolderError(msg.not_a_file_list(f"not a {KIND} document"))
    raw: list[object] = doc["files"]
    if not raw or len(raw) > MAX_FILES:
        raise FolderError(msg.not_a_file_list(f"it names {len(raw)} files"))
    entries: list[Entry] = []
    seen: set[str] = set()
    folders: set[str] = set()
    for item in raw:
        if not isinstance(item, dict):
            raise FolderError(msg.not_a_file_list("an entry is not an object"))
        path, digest, size = item.get("path"), item.get("sha256"), item.get("size")
        if not isinstance(path, str) or not safe_relative(path):
            raise FolderError(msg.not_a_file_list(f"the path {str(path)[:80]!r} leaves the folder"))
        if not isinstance(digest, str) or not _HEX.fullmatch(digest):
            raise FolderError(msg.not_a_file_list(f"{path} has no sha256"))
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise FolderError(msg.not_a_file_list(f"{path} has no size"))
        if path in seen:
            raise FolderError(msg.not_a_file_list(f"{path} is named twice"))
        seen.add(path)
        parts = path.split("/")
        folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
        entries.append(Entry(path, digest, size))
    clash = sorted(seen & folders)  # a file and a folder of the same name cannot both be written
    if clash:
        raise FolderError(msg.not_a_file_list(f"{clash[0]} is named twice"))
    return entries


def format_of(paths: Sequence[str], declared: str) -> str:
    if declared:
        return declared
    for suffix, name in _WEIGHTS:
        if any(p.endswith(suffix) for p in paths):
            return name
    return "other"

"""What a model signature covers, in model_signing's two serializations.

A model is its files (names relative to the model root, POSIX form, ``"."`` for a model
that is one file), hashed with sha256 either

* by file (``"method": "files"``): one resource per file, named by the file, algorithm
  ``sha256``; or
* by shard (``"method": "shards"``, with ``"shard_size": N``): every file cut into
  N-byte pieces from offset 0 (a shorter last one; an empty file has none, so it is not
  covered), one resource per piece named ``"<file>:<start>:<end>"``, algorithm
  ``sha256-sharded-<N>``.

Resources are sorted as model_signing sorts its manifest keys (the file's path component
by component, then start, then end), and the statement's subject digest is sha256 over
their raw digests in that order. These are model_signing 1.x's rules
(``model_signing/_serialization/file_shard.py``, ``manifest.py``), so either kind of
bundle verifies with its library and its bundles verify here.

Shards let one large file use every core; by file is kept where it is as fast (no file
much larger than its share of the work, a single core), where shards would leave a file
unsigned (an empty one), and where model_signing could not read the shard names back (a
``:`` in a file name). ``choose_method`` decides from plain data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from bot.checks.hashing import HashingError, sha256_files, sha256_shards, shard_bounds
from bot.checks.sign_errors import SignatureError

__all__ = [
    "AUTO",
    "DEFAULT_IGNORED",
    "DEFAULT_SHARD_SIZE",
    "FILES",
    "SHARDS",
    "ModelFile",
    "SignedManifest",
    "check_files",
    "choose_method",
    "files_of",
    "hash_resources",
    "list_files",
    "model_name",
    "normalize_ignore",
    "parse_statement",
    "root_digest",
    "serialization_of",
]

FILES = "files"
SHARDS = "shards"
AUTO = "auto"

# 64 MiB: a 1 GiB file is 16 shards, so two cores finish within a shard of each other even
# when one of them is busy with something else for a while, and a 100 GB model still
# needs only ~1,500 resources (~0.25 MB of bundle). benchmarks/SIGN.md has the
# measurements behind the choice.
DEFAULT_SHARD_SIZE = 64 << 20

# model_signing ignores these at the model root unless told otherwise (hashing.Config).
DEFAULT_IGNORED: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")

MODEL_SIGNING_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# model_signing 0.2 wrote this predicate (one subject per file, no root digest); it still
# verifies those, so we do too.
MODEL_SIGNING_PREDICATE_TYPE_COMPAT = "https://model_signing/Digests/v0.1"

# Shards are worth it when the largest file is this much more than an even share of all
# the bytes: below that, hashing whole files (largest first) keeps every core busy to
# within about that margin, and a by-file bundle is smaller and verifies with every
# model_signing front end (its 1.1 command line verifies by file only).
_SHARD_GAIN = 1.1


@dataclasses.dataclass(frozen=True)
class ModelFile:
    name: str  # relative to the model root, POSIX; "." when the model is one file
    path: str  # where to read it
    size: int
    mtime_ns: int


@dataclasses.dataclass(frozen=True)
class SignedManifest:
    """The signed statement, read back: what verification must find on disk."""

    method: str  # FILES or SHARDS
    shard_size: int | None  # SHARDS only
    model_name: str
    root_digest: str
    resources: dict[str, str]  # resource name -> sha256 hex, in signed order
    ignore_paths: list[str]


# --------------------------------------------------------------------------------------
# the files of a model


def normalize_ignore(root: Path, ignore: Iterable[str | os.PathLike[str]]) -> set[str]:
    """Ignore entries as POSIX paths relative to the model root ('.git/' -> '.git')."""
    out: set[str] = set()
    root_abs: Path | None = None
    for item in ignore:
        p = Path(item)
        if p.is_absolute():
            if root_abs is None:
                root_abs = root.resolve()
            try:
                p = p.resolve().relative_to(root_abs)
            except ValueError:
                continue  # outside the model: nothing to ignore
        parts = [part for part in p.parts if part not in ("", ".")]
        if not parts or ".." in parts:
            continue
        out.add("/".join(parts))
    return out


def _name_key(name: str) -> tuple[str, ...]:
    # PurePosixPath ordering, which model_signing uses to sort its manifest.
    return PurePosixPath(name).parts


def list_files(root: Path, ignored: set[str]) -> list[ModelFile]:
    """Every file of the model, in manifest order."""
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        raise SignatureError(f"{root} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise SignatureError(f"{root} is a symbolic link; sign the real file or folder")
    if stat.S_ISREG(st.st_mode):
        return [ModelFile(".", str(root), st.st_size, st.st_mtime_ns)]
    if not stat.S_ISDIR(st.st_mode):
        raise SignatureError(f"{root} is neither a file nor a folder")
    found: list[ModelFile] = []
    stack: list[tuple[str, str]] = [("", str(root))]
    while stack:
        prefix, folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                name = prefix + entry.name
                if name in ignored:
                    continue
                if entry.is_symlink():
                    raise SignatureError(
                        f"{name} is a symbolic link; symbolic links are not signed (model_signing "
                        "refuses them too): replace it with the file or remove it"
                    )
                if entry.is_dir(follow_symlinks=False):
                    stack.append((name + "/", entry.path))
                elif entry.is_file(follow_symlinks=False):
                    est = entry.stat(follow_symlinks=False)
                    found.append(ModelFile(name, entry.path, est.st_size, est.st_mtime_ns))
                else:
                    raise SignatureError(f"{name} is not a regular file or folder")
    found.sort(key=lambda f: _name_key(f.name))
    return found


def model_name(root: Path) -> str:
    name = root.name
    if not name or name == "..":
        name = os.path.basename(root.resolve())
    return name


def root_digest(hex_digests: Iterable[str]) -> str:
    h = hashlib.sha256()
    for d in hex_digests:
        h.update(bytes.fromhex(d))
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# signing: choose, hash, describe


def choose_method(files: Sequence[ModelFile], workers: int, shard_size: int) -> str:
    """FILES or SHARDS for these files on WORKERS cores: shards only where they are faster."""
    if workers <= 1 or not files:
        return FILES
    largest = max(f.size for f in files)
    if largest <= shard_size:
        return FILES  # no file would be cut
    if any(f.size == 0 for f in files):
        return FILES  # shards would leave the empty file unsigned
    if any(":" in f.name for f in files):
        return FILES  # model_signing splits shard names on ":"
    total = sum(f.size for f in files)
    return SHARDS if largest * workers > total * _SHARD_GAIN else FILES


def _shards_of(files: Sequence[ModelFile], shard_size: int) -> list[tuple[ModelFile, int, int]]:
    return [(f, start, end) for f in files for start, end in shard_bounds(f.size, shard_size)]


def _changed(f: ModelFile) -> bool:
    try:
        st = os.stat(f.path)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns)


def hash_resources(
    files: Sequence[ModelFile], method: str, shard_size: int, max_workers: int | None = None
) -> list[dict[str, str]]:
    """The statement's resources for FILES, hashed on every core."""
    if method == FILES:
        digests = sha256_files([f.path for f in files], max_workers, [f.size for f in files])
        return [
            {"name": f.name, "algorithm": "sha256", "digest": d.hex()}
            for f, d in zip(files, digests, strict=True)
        ]
    if any(":" in f.name for f in files):
        bad = next(f.name for f in files if ":" in f.name)
        raise SignatureError(
            f"{bad} has ':' in its name, which model_signing's shard names cannot carry: "
            "rename it or sign by file"
        )
    shards = _shards_of(files, shard_size)
    try:
        digests = sha256_shards([(f.path, s, e) for f, s, e in shards], max_workers)
    except HashingError as err:
        name = next((f.name for f in files if f.path == err.path), err.path)
        raise SignatureError(f"{name} changed while it was being signed; sign again") from None
    # A file that grew (or was rewritten) after its size was taken would be signed in
    # part: refuse rather than sign bytes that are no longer there.
    for f in files:
        if _changed(f):
            raise SignatureError(f"{f.name} changed while it was being signed; sign again")
    algorithm = f"sha256-sharded-{shard_size}"
    return [
        {"name": f"{f.name}:{s}:{e}", "algorithm": algorithm, "digest": d.hex()}
        for (f, s, e), d in zip(shards, digests, strict=True)
    ]


def serialization_of(method: str, shard_size: int, ignored: Iterable[str]) -> dict[str, Any]:
    """The statement's ``predicate.serialization``, keys in model_signing's order."""
    out: dict[str, Any] = {"method": method, "hash_type": "sha256"}
    if method == SHARDS:
        # an integer: model_signing's verifier passes it to range() as it reads it
        out["shard_size"] = shard_size
    out["allow_symlinks"] = False
    out["ignore_paths"] = sorted(ignored)
    return out


# --------------------------------------------------------------------------------------
# verification: read the statement, compare with the disk


def _shard_size(value: object) -> int:
    # model_signing writes the statement through a protobuf Struct, whose numbers are
    # doubles: its own bundles say 1000000000.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SignatureError("malformed signature: shard_size is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise SignatureError(f"malformed signature: shard_size {value} is not a whole number")
    size = int(value)
    if size <= 0:
        raise SignatureError(f"malformed signature: shard_size {size} is not positive")
    return size


def _compat_manifest(subjects: list[Any]) -> SignedManifest:
    files: dict[str, str] = {}
    for s in subjects:
        try:
            files[str(s["name"])] = str(s["digest"]["sha256"]).lower()
        except (KeyError, TypeError):
            raise SignatureError("malformed signature: a subject has no sha256 digest") from None
    ordered = {n: files[n] for n in sorted(files, key=_name_key)}
    root = root_digest(ordered.values())
    return SignedManifest(FILES, None, "compat-undefined-not-present", root, ordered, [])


def parse_statement(statement: Mapping[str, Any]) -> SignedManifest:
    """The manifest a model_signing statement (either serialization) describes."""
    predicate_type = statement.get("predicateType")
    subjects = statement.get("subject")
    predicate = statement.get("predicate")
    if not isinstance(subjects, list) or not subjects:
        raise SignatureError("malformed signature: no subject")
    if predicate_type == MODEL_SIGNING_PREDICATE_TYPE_COMPAT:
        return _compat_manifest(subjects)
    if predicate_type != MODEL_SIGNING_PREDICATE_TYPE:
        raise SignatureError(
            f"not a model signature: predicate type {predicate_type!r}, expected "
            f"{MODEL_SIGNING_PREDICATE_TYPE}"
        )
    if len(subjects) != 1 or not isinstance(subjects[0], Mapping):
        raise SignatureError(f"malformed signature: expected one subject, got {len(subjects)}")
    name = str(subjects[0].get("name", ""))
    digest = subjects[0].get("digest")
    root = str(digest.get("sha256", "")).lower() if isinstance(digest, Mapping) else ""
    if not isinstance(predicate, Mapping):
        raise SignatureError("malformed signature: no predicate")
    ser = predicate.get("serialization")
    if not isinstance(ser, Mapping):
        raise SignatureError("malformed signature: no serialization parameters")
    method = ser.get("method")
    if method not in (FILES, SHARDS) or ser.get("hash_type") != "sha256":
        raise SignatureError(
            f"unsupported serialization {method!r}/{ser.get('hash_type')!r}: only sha256 "
            "by file or by shard (model_signing's files and shards methods) is supported"
        )
    shard_size = _shard_size(ser.get("shard_size")) if method == SHARDS else None
    algorithm = "sha256" if shard_size is None else f"sha256-sharded-{shard_size}"
    if ser.get("allow_symlinks") not in (False, None):
        raise SignatureError("unsupported signature: it was made following symbolic links")
    ignore_paths = ser.get("ignore_paths") or []
    if not isinstance(ignore_paths, list) or not all(isinstance(p, str) for p in ignore_paths):
        raise SignatureError("malformed signature: ignore_paths is not a list of paths")
    resources = predicate.get("resources")
    if not isinstance(resources, list):
        raise SignatureError("malformed signature: no resources list")
    files: dict[str, str] = {}
    h = hashlib.sha256()
    for r in resources:
        try:
            rname, algo, value = str(r["name"]), r["algorithm"], str(r["digest"]).lower()
            raw = bytes.fromhex(value)
        except (KeyError, TypeError, ValueError):
            raise SignatureError(
                "malformed signature: a resource lacks name/algorithm/digest"
            ) from None
        if algo != algorithm or len(raw) != 32:
            raise SignatureError(
                f"unsupported digest algorithm {algo!r} for {rname} (expected {algorithm})"
            )
        if shard_size is not None:
            _shard_key(rname, shard_size)  # refuse a name that is not FILE:START:END
        if rname in files:
            raise SignatureError(f"malformed signature: {rname} is listed twice")
        files[rname] = value
        h.update(raw)
    if h.hexdigest() != root:
        raise SignatureError(
            "malformed signature: the resources do not add up to the signed root digest"
        )
    return SignedManifest(str(method), shard_size, name, root, files, list(ignore_paths))


def _shard_key(resource: str, shard_size: int) -> tuple[str, int, int]:
    parts = resource.rsplit(":", 2)
    try:
        if len(parts) != 3:
            raise ValueError
        path, s, e = parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        raise SignatureError(
            f"malformed signature: shard {resource!r} is not FILE:START:END"
        ) from None
    if not path or s < 0 or e <= s or e - s > shard_size:
        raise SignatureError(f"malformed signature: shard {resource!r} has impossible bounds")
    return path, s, e


def files_of(signed: SignedManifest) -> list[str]:
    """The file names the manifest covers, in its order."""
    if signed.shard_size is None:
        return list(signed.resources)
    names = (_shard_key(r, signed.shard_size)[0] for r in signed.resources)
    return list(dict.fromkeys(names))


def _shown(name: str, root_name: str) -> str:
    return root_name if name == "." else name  # a single-file model's only name is "."


def check_files(
    files: Sequence[ModelFile],
    signed: SignedManifest,
    root_name: str,
    max_workers: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(problems, {resource name: sha256 hex found}) for the files on disk against SIGNED."""
    if signed.shard_size is None:
        return _check_by_file(files, signed, root_name, max_workers)
    return _check_by_shard(files, signed, signed.shard_size, root_name, max_workers)


def _check_by_file(
    files: Sequence[ModelFile], signed: SignedManifest, root_name: str, max_workers: int | None
) -> tuple[list[str], dict[str, str]]:
    expected = signed.resources
    present = {f.name for f in files}
    problems = [
        f"file {_shown(n, root_name)} is missing"
        for n in sorted(expected.keys() - present, key=_name_key)
    ]
    problems += [
        f"extra file {_shown(n, root_name)} not covered by the signature"
        for n in sorted(present - expected.keys(), key=_name_key)
    ]
    common = [f for f in files if f.name in expected]
    digests = sha256_files([f.path for f in common], max_workers, [f.size for f in common])
    actual = {f.name: d.hex() for f, d in zip(common, digests, strict=True)}
    problems += [
        f"file {_shown(n, root_name)} differs from the signed digest"
        for n, d in actual.items()
        if d != expected[n]
    ]
    return problems, actual


def _check_by_shard(
    files: Sequence[ModelFile],
    signed: SignedManifest,
    shard_size: int,
    root_name: str,
    max_workers: int | None,
) -> tuple[list[str], dict[str, str]]:
    by_file: dict[str, dict[tuple[int, int], str]] = {}
    for resource, digest in signed.resources.items():
        path, start, end = _shard_key(resource, shard_size)
        by_file.setdefault(path, {})[(start, end)] = digest
    present = {f.name: f for f in files}
    problems = [
        f"file {_shown(n, root_name)} is missing"
        for n in sorted(by_file.keys() - present.keys(), key=_name_key)
    ]
    # An empty file has no shards, so the signature cannot speak for it either way
    # (model_signing's rule too): only a non-empty file is "extra".
    problems += [
        f"extra file {_shown(n, root_name)} not covered by the signature"
        for n in sorted(present.keys() - by_file.keys(), key=_name_key)
        if present[n].size > 0
    ]
    differs: set[str] = set()
    todo: list[tuple[ModelFile, int, int]] = []
    for f in files:
        signed_shards = by_file.get(f.name)
        if signed_shards is None:
            continue
        bounds = shard_bounds(f.size, shard_size)
        if set(bounds) != signed_shards.keys():
            differs.add(f.name)  # another length than the one signed
            continue
        todo += [(f, s, e) for s, e in bounds]
    try:
        digests = sha256_shards([(f.path, s, e) for f, s, e in todo], max_workers)
    except HashingError as err:
        raise SignatureError(f"{err.path} changed while it was being verified") from None
    actual: dict[str, str] = {}
    for (f, s, e), d in zip(todo, digests, strict=True):
        actual[f"{f.name}:{s}:{e}"] = d.hex()
        if d.hex() != by_file[f.name][(s, e)]:
            differs.add(f.name)
    problems += [
        f"file {_shown(n, root_name)} differs from the signed digest"
        for n in sorted(differs, key=_name_key)
    ]
    return problems, actual

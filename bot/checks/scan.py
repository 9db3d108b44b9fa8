"""The model-file malware scanner: ``aimodel scan PATH...``.

It decides each file's format from its bytes (never its name), parses it without loading it
(no unpickling, no framework import, no model code) and reports every imported global that is
not on the allow-list, every code-carrying construct (Keras Lambda, TorchScript code, ONNX data
outside the model folder, ...). A file it cannot parse fully is *blocked*, never clean.

A file is judged as every format a loader would take it for, not only what its first bytes
say: a tar header at offset 0 (torch.load's legacy path), a zip end record in the last 64 KiB
(Python's zipfile accepts a prefix), an HDF5 superblock at 512, 1024, ... (a user block). Each
such view is scanned; a file with more than one is a ``critical`` "polyglot" finding. Every
member of every archive is scanned by its own bytes. A pickle on its own is read both as
joblib.load reads it (array records skipped exactly as joblib skips them) and as pickle.load
reads it; side files an old joblib pickle names are followed.

Formats: pickle (protocols 0-5, concatenated), joblib (inline array data skipped), PyTorch zip
checkpoints, the legacy torch formats (pickles and tar), NumPy .npy/.npz (object arrays'
pickles scanned), safetensors, ONNX, Keras .keras and .h5 (config read with h5py, decoded as
JSON), GGUF, and gzip/bz2/xz/lzma/zlib-compressed pickles.

Decision: the built-in allow-list (``scanners/policy.py``: numpy, torch tensors and storages,
collections, plain data types, joblib's array wrappers, and ``scanners/allowlist.txt``: exact
class names generated from scikit-learn's, torch.nn's, scipy.sparse's, xgboost's and
lightgbm's own registries) plus the caller's ``allow`` entries, each ``"module.name"`` or
``"module.*"``. Anything else imported is a finding: ``critical`` for the standard library and
the ML/data frameworks (they can run code, touch files or the network), ``high`` for an unknown
package; BUILD on anything the file did not create is ``critical``. Findings carry the byte
offset of the import opcode (inside an archive, of the member: the path is then
``archive!member``). No message quotes the file's bytes.

Layout: ``scanners/source.py`` (buffered forward reader that skips by seeking),
``scanners/pickle_vm.py`` (the opcode walker), ``scanners/formats.py`` (detection and the other
formats), ``scanners/policy.py`` + ``allowlist.txt`` (allow-list; ``allowlist_build.py``
regenerates the data), ``scanners/messages.py`` (sentences about a file),
``scan_report.py`` (result types, table, JSON, SARIF 2.1.0). Run as ``aimodel scan`` or
``python -m bot.checks.scan [--json|--sarif] [--allow MODULE.NAME]... PATH...``; exit 0 clean,
1 any finding or blocked file, 2 a missing path.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any

from . import artifacts
from .scan_report import FileReport, Finding, ScanReport, render_table
from .scanners import formats, messages
from .scanners import source as source_mod
from .scanners.pickle_vm import PickleContext
from .scanners.policy import AllowList
from .scanners.source import CannotVerify, Malformed, Source

__all__ = [
    "FileReport",
    "Finding",
    "ScanReport",
    "main",
    "run_scan_command",
    "scan_file",
    "scan_paths",
]

MAX_ARCHIVE_DEPTH = 4
_ALLOW_CACHE: dict[tuple[str, ...], AllowList] = {}


def _allow_list(allow: Iterable[str]) -> AllowList:
    key = tuple(sorted(set(allow)))
    al = _ALLOW_CACHE.get(key)
    if al is None:
        al = _ALLOW_CACHE[key] = AllowList(key)
    return al


def _member_scanner(depth: int) -> Any:
    def member(mf: IO[bytes], msize: int, mpath: str, parent: PickleContext, in_archive: str,
               data: bool = False) -> str:  # fmt: skip
        child = PickleContext(mpath, in_archive, parent.allow, parent.findings, parent.refs)
        if not data:
            return _scan_stream(mf, msize, child, depth + 1, in_archive)
        # a data member (tensor storage, an asset): bytes of a known format are scanned as
        # that format; bytes of none are data no loader interprets
        head = mf.read(16)
        kind = formats.sniff(head)
        if kind in ("unknown", "onnx?", "pickle0?"):
            return "data"
        mf.seek(0)
        n_before = len(parent.findings)
        try:
            return _scan_stream(mf, msize, child, depth + 1, in_archive)
        except CannotVerify:
            # np.load(archive)[name] unpickles an object .npy wherever it sits: never data
            if kind == "npy" or len(parent.findings) > n_before:
                raise
            return "data"

    return member


def _views(f: IO[bytes], src: Source, size: int, kind: str) -> tuple[list[str], bool]:
    """Other formats a loader would take this file for, besides what its first bytes say:
    a tar archive (tar header at offset 0: torch.load's legacy path), a zip archive (an end
    record near the end: Python's zipfile accepts any prefix), HDF5 (a superblock at 512,
    1024, ...: h5py skips a user block)."""
    views: list[str] = []
    moved = False
    src.fill(min(size, formats.ZIP_TAIL))
    buf = src.buf if src.pos == 0 else src.peek(min(size, formats.ZIP_TAIL))  # no copy
    if len(buf) >= size:  # small files: every test below runs on the buffer
        tail = buf if size <= formats.ZIP_TAIL else buf[-formats.ZIP_TAIL :]
    else:
        f.seek(size - formats.ZIP_TAIL)
        tail = f.read(formats.ZIP_TAIL)
        moved = True
    if kind != "zip" and tail.rfind(formats.EOCD) >= 0:  # rfind: twice as fast as "in" here
        import zipfile

        moved = True
        try:
            f.seek(0)
            zipfile.ZipFile(f).close()
            views.append("zip")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, IndexError):
            pass
    if formats.tar_at_start(buf[:512]):
        views.append("tar")
    if kind != "hdf5":
        for off in formats.HDF5_OFFSETS:
            if off + 8 > size:
                break
            if off + 8 <= len(buf):
                sig = buf[off : off + 8]
            else:
                f.seek(off)
                sig = f.read(8)
                moved = True
            if sig == formats.HDF5_MAGIC:
                views.append("hdf5")
                break
    return views, moved


def _scan_view(view: str, f: IO[bytes], size: int, ctx: PickleContext, depth: int) -> str:
    if view == "zip":
        return formats.scan_zip(f, ctx, _member_scanner(depth), None)
    if view == "tar":
        return formats.scan_tar(f, ctx, _member_scanner(depth), size)
    return formats.scan_hdf5(f, ctx)


def _scan_stream(
    f: IO[bytes], size: int | None, ctx: PickleContext, depth: int = 0, in_archive: str = ""
) -> str:
    """Scan one byte stream as every format a loader would take it for."""
    src = Source(f, size=size)
    head = src.peek(16)
    kind = formats.sniff(head)
    views: list[str] = []
    if depth == 0 and size is not None and src.seekable:
        views, moved = _views(f, src, size, kind)
        if moved:
            f.seek(src.start + len(src.buf))  # back under the Source's buffer
    if not views:
        return _scan_one(f, src, kind, size, ctx, depth, in_archive)
    errors: list[CannotVerify] = []
    found: list[str] = []
    try:
        found.append(_scan_one(f, src, kind, size, ctx, depth, in_archive))
    except CannotVerify as exc:
        if kind not in ("unknown", "pickle0?", "onnx?"):  # a guess that did not hold is no view
            errors.append(exc)
            found.append(kind)
    for view in views:
        vctx = PickleContext(ctx.path, view, ctx.allow, ctx.findings, ctx.refs)
        try:
            found.append(_scan_view(view, f, size or 0, vctx, depth))
        except CannotVerify as exc:
            errors.append(exc)
            found.append(view)
    if len(found) > 1:
        ctx.findings.append(Finding(ctx.path, 0, "polyglot", "polyglot", "critical",
                                    messages.polyglot(found)))  # fmt: skip
    ctx.fmt = "+".join(found)
    if errors:
        raise errors[0]
    return ctx.fmt


def _scan_one(
    f: IO[bytes], src: Source, kind: str, size: int | None, ctx: PickleContext, depth: int,
    in_archive: str,
) -> str:  # fmt: skip
    """Scan one byte stream as the format its first bytes announce."""
    head = src.peek(16)
    if kind == "pickle":
        ctx.fmt = "torch" if in_archive == "torch" else "pickle"
        ctx.plain = bool(in_archive)  # only a file on its own is read by joblib.load too
        fmt = formats.scan_pickle_stream(src, ctx)
        if ctx.joblib_arrays and depth == 0:  # (a compressed stream's caller does this)
            if not src.seekable:
                raise CannotVerify("joblib file on a stream that cannot be read twice")
            _plain_view(lambda: _rewound(f), size, ctx, depth, in_archive)
        return fmt
    if kind == "npy":
        return formats.scan_npy(src, ctx)
    if kind == "safetensors":
        return formats.scan_safetensors(src, ctx)
    if kind == "zip":
        if depth >= MAX_ARCHIVE_DEPTH:
            raise CannotVerify("archives nested too deeply")
        if not src.seekable:
            raise CannotVerify("zip archive on a stream that cannot seek")
        f.seek(0)
        return formats.scan_zip(f, ctx, _member_scanner(depth), size)
    if kind == "gguf":
        return formats.scan_gguf(src, ctx)
    if kind == "hdf5":
        if not src.seekable:
            raise CannotVerify("HDF5 on a stream that cannot seek")
        return formats.scan_hdf5(f, ctx)
    if kind in ("gzip", "bz2", "xz", "lzma", "zlib"):
        if depth >= MAX_ARCHIVE_DEPTH:
            raise CannotVerify("compressed streams nested too deeply")
        if src.seekable:
            f.seek(0)
        else:
            raise CannotVerify("compressed stream that cannot seek")

        def opened() -> IO[bytes]:
            f.seek(0)
            return formats.open_decompressed(kind, f)

        try:
            sub = _scan_stream(opened(), None, ctx, depth + 1, in_archive)
            if ctx.joblib_arrays:
                _plain_view(opened, None, ctx, depth + 1, in_archive)
        except (OSError, EOFError, ValueError) as exc:
            if isinstance(exc, CannotVerify):
                raise
            raise CannotVerify(f"{kind} stream unreadable ({type(exc).__name__})") from exc
        ctx.fmt = f"{sub}+{kind}"
        return ctx.fmt
    if kind == "onnx?" and size is not None:
        try:
            return formats.scan_onnx(src, ctx)
        except CannotVerify as exc:
            ctx.fmt = "unknown"
            raise CannotVerify(messages.unknown_type(formats.guess_type(head))) from exc
    if kind == "pickle0?":
        n_before = len(ctx.findings)
        try:
            ctx.fmt = "pickle"
            ctx.plain = bool(in_archive)
            return formats.scan_pickle_stream(src, ctx)
        except CannotVerify as exc:
            if len(ctx.findings) == n_before:
                ctx.fmt = "unknown"
                raise CannotVerify(messages.unknown_type(formats.guess_type(head))) from exc
            raise
    if kind == "unknown" and depth == 0 and not in_archive and src.seekable:
        text = _text_data(f, size, ctx.path)
        if text:
            ctx.fmt = text
            return text
    ctx.fmt = "unknown"
    raise CannotVerify(messages.unknown_type(formats.guess_type(head)))


TEXT_SUFFIXES = (".json", ".txt", ".md")
MAX_TEXT = 256 << 20


def _text_data(f: IO[bytes], size: int | None, path: str) -> str:
    """"json" or "text" for the configuration, vocabulary and notes of a model folder
    (config.json, tokenizer.json, vocab.txt, merges.txt, README.md), else "".

    Only by those names (a loader picks files by name: `modeling_*.py` is code transformers
    runs, and stays blocked), only UTF-8 without NUL, a .json file only if it parses. Its
    first byte starts no pickle (sniff said "unknown", not "pickle0?"), so no pickle-family
    loader reads it as one; other formats a loader could take it for are the views the
    caller checks, and a text file that is also one is a polyglot."""
    if size is None or size > MAX_TEXT or not path.lower().endswith(TEXT_SUFFIXES):
        return ""
    f.seek(0)
    data = f.read(size + 1)
    if len(data) != size or b"\x00" in data:
        return ""
    try:
        text = data.decode("utf-8")
        if path.lower().endswith(".json"):
            import json  # here: `aimodel scan` starts without it

            json.loads(text)
            return "json"
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are both
        return ""
    return "text"


def _rewound(f: IO[bytes]) -> IO[bytes]:
    f.seek(0)
    return f


def _plain_view(
    reopen: Any, size: int | None, ctx: PickleContext, depth: int, in_archive: str
) -> None:
    """The same pickle as ``pickle.load`` reads it: joblib's array bytes are opcodes there.
    Loading fails where the bytes stop being a pickle (Malformed); anything imported before
    that point is a finding, and a scanner limit reached there is "cannot verify"."""
    seen = {(x.offset, x.name) for x in ctx.findings}
    extra: list[Finding] = []
    pctx = PickleContext(ctx.path, ctx.fmt, ctx.allow, extra, [])
    pctx.plain = True
    try:
        src = Source(reopen(), size=size)
        formats.scan_pickle_stream(src, pctx)
    except Malformed:
        pass
    ctx.findings.extend(x for x in extra if (x.offset, x.name) not in seen)


def scan_file(
    uri: str, *, allow: Iterable[str] = (), expected_sha256: str | None = None
) -> FileReport:
    """Scan one file. Never raises for a bad file: the verdict is in the report."""
    ctx = PickleContext(uri, "unknown", _allow_list(allow))
    size = 0
    error: str | None = None
    try:
        with artifacts.open_stream(uri) as f:
            try:
                size = os.fstat(f.fileno()).st_size
            except (AttributeError, OSError, ValueError):
                size = artifacts.size_of(uri)  # fsspec files have no descriptor
            if size == 0:
                raise CannotVerify("empty file")
            _scan_stream(f, size, ctx)
        _follow_refs(ctx)
        if expected_sha256 is not None:
            artifacts.verify_digest(uri, expected_sha256)
    except artifacts.DigestMismatch as exc:
        error = f"cannot verify: {exc}"
    except CannotVerify as exc:
        error = f"cannot verify: {exc}"
    except MemoryError:
        error = "cannot verify: out of memory while parsing"
    except RecursionError:
        error = "cannot verify: nesting too deep"
    except Exception as exc:  # one bad file never aborts the others
        error = f"cannot verify: {type(exc).__name__}"  # its text may quote the file's bytes
    findings = tuple(ctx.findings)
    if error is not None:
        status = "blocked"
    elif findings:
        status = "findings"
    else:
        status = "clean"
    return FileReport(uri, ctx.fmt, status, findings, error, size)


MAX_REFS = 1024


def _ref_escapes(referrer: str, name: str) -> str | None:
    """Why a side file named inside a model is not part of the artifact, or None."""
    if "!" in referrer:
        return "is named from inside an archive, where no folder holds it"
    norm = name.replace("\\", "/")
    if not name or "\x00" in name:
        return "is not a file name"
    if norm.startswith(("/", "~")) or "://" in norm or (len(norm) > 1 and norm[1] == ":"):
        return "is outside the model's folder (an absolute path or URL)"
    if ".." in norm.split("/"):
        return "is outside the model's folder ('..')"
    folder = artifacts.local_path(referrer)
    if folder is not None:
        here = os.path.realpath(os.path.dirname(folder) or ".")
        there = os.path.realpath(os.path.join(here, norm))
        if os.path.commonpath([here, there]) != here:
            return "is outside the model's folder (through a link)"
    return None


def _follow_refs(ctx: PickleContext) -> None:
    """Scan every file the model makes its loader read (old joblib side files, which joblib
    opens with np.load(allow_pickle=True)); a reference that leaves the artifact is a finding."""
    done: set[str] = set()
    i = 0
    while i < len(ctx.refs):
        referrer, name, offset = ctx.refs[i]
        i += 1
        if type(name) is not str:
            raise CannotVerify("an old joblib array wrapper names a side file the scanner cannot read")
        why = _ref_escapes(referrer, name)
        if why is not None:
            ctx.findings.append(Finding(referrer, offset, ctx.fmt, "joblib.NDArrayWrapper.filename",
                                        "critical", messages.sidecar_escapes(name, why)))  # fmt: skip
            continue
        target = referrer.rpartition("/")[0] + "/" + name if "/" in referrer else name
        if target in done:
            continue
        done.add(target)
        if len(done) > MAX_REFS:
            raise CannotVerify("the model names too many side files")
        if not _exists(target):
            raise CannotVerify(messages.sidecar_missing(name))
        child = PickleContext(target, "unknown", ctx.allow, ctx.findings, ctx.refs)
        with artifacts.open_stream(target) as f:
            _scan_stream(f, artifacts.size_of(target), child)


def _scan_many(args: tuple[tuple[str, ...], tuple[str, ...], str | None]) -> list[FileReport]:
    uris, allow, expected = args
    return [scan_file(u, allow=allow, expected_sha256=expected) for u in uris]


class _Progress:
    """A one-line progress bar on stderr: only on a terminal, only once work passes a second.

    A ticker thread redraws it, so one big file shows progress (bytes parsed) too.
    """

    DELAY = 1.0

    def __init__(self, total: int, enabled: bool, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        self.enabled = enabled and total > 0 and tty
        self.done = 0
        self.t0 = time.monotonic()
        self.shown = False
        self._stop: Any = None
        self._thread: Any = None

    def start(self) -> _Progress:
        if self.enabled and self._thread is None:
            import threading

            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="scan-progress", daemon=True)
            self._thread.start()
        return self

    def update(self, done: int) -> None:
        self.done = done

    def _run(self) -> None:
        if self._stop.wait(self.DELAY):
            return
        while True:
            self.draw()
            if self._stop.wait(0.2):
                return

    def draw(self) -> None:
        width = 30
        filled = width * self.done // self.total
        read = source_mod.bytes_seen()
        extra = f", {read / (1 << 20):.0f} MiB parsed" if read else ""
        self.stream.write(
            f"\rscanning [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} files"
            f", {time.monotonic() - self.t0:.0f} s{extra}   "
        )
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.shown:
            self.stream.write("\r" + " " * 79 + "\r")
            self.stream.flush()


def _default_jobs(files: Sequence[str]) -> int:
    return max(1, min(os.cpu_count() or 1, len(files)))


def scan_paths(
    uris: Sequence[str],
    *,
    allow: Iterable[str] = (),
    expected_sha256: str | None = None,
    jobs: int | None = None,
    progress: bool = False,
) -> ScanReport:
    """Scan files and folders (every file inside, recursively), in parallel across cores."""
    allow_t = tuple(sorted(set(allow)))
    files: list[str] = []
    missing: list[FileReport] = []
    for uri in uris:
        try:
            files.extend(artifacts.walk_files(uri))
        except Exception as exc:
            missing.append(
                FileReport(uri, "unknown", "blocked", (), f"cannot verify: cannot list: {exc}", 0)
            )
    n_jobs = jobs if jobs is not None else _default_jobs(files)
    bar = _Progress(len(files), progress)
    reports: list[FileReport] = []
    mode = _parallel_mode(files, n_jobs)
    if mode == "serial":
        bar.start()
        for i, uri in enumerate(files):
            reports.append(scan_file(uri, allow=allow_t, expected_sha256=expected_sha256))
            bar.update(i + 1)
    elif mode == "thread":
        from concurrent.futures import ThreadPoolExecutor

        bar.start()
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            for i, fr in enumerate(
                pool.map(
                    lambda u: scan_file(u, allow=allow_t, expected_sha256=expected_sha256), files
                )
            ):
                reports.append(fr)
                bar.update(i + 1)
    elif mode == "fork":
        reports = _scan_forked(files, allow_t, expected_sha256, n_jobs, bar)
    else:
        bar.start()
        reports = _scan_pool(files, allow_t, expected_sha256, n_jobs, bar, mode)
    bar.close()
    reports.extend(missing)
    reports.sort(key=lambda r: r.path)
    return ScanReport(tuple(reports))


def _parallel_mode(files: Sequence[str], n_jobs: int) -> str:
    """How to spread the files over cores (measured in benchmarks/SCAN.md).

    Parsing is CPU-bound Python: threads share one core (the GIL), so only processes help.
    Plain ``os.fork`` workers cost ~1 ms each and are used from a single-threaded program
    (the CLI). Inside a multi-threaded process (the web or worker process) forking is unsafe,
    so a ``spawn`` pool is used there, and only when the work is large enough to repay its
    start-up. AIMODEL_SCAN_PARALLEL=fork|process|spawn|thread|serial forces one (for benchmarks).
    """
    from bot.config import scan_parallel

    forced = scan_parallel()  # checked when the process started; read here so a test may set it
    if n_jobs <= 1 or len(files) < 2:
        return "serial"
    if forced in ("fork", "process", "spawn", "thread", "serial"):
        return forced if forced != "fork" or hasattr(os, "fork") else "process"
    import threading

    if (
        hasattr(os, "fork")
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
    ):
        return "fork" if len(files) >= 16 else "serial"
    return "spawn" if len(files) >= 256 else "serial"


def _balanced(files: Sequence[str], n: int) -> list[list[str]]:
    """Split files into n groups of about equal bytes (biggest first, onto the lightest)."""
    sizes: dict[str, int] = {}
    for u in files:
        try:
            sizes[u] = artifacts.size_of(u)
        except Exception:
            sizes[u] = 0
    groups: list[list[str]] = [[] for _ in range(n)]
    loads = [0] * n
    for u in sorted(files, key=lambda u: -sizes[u]):
        i = loads.index(min(loads))
        groups[i].append(u)
        loads[i] += sizes[u] + 16384  # a file's fixed cost, in bytes of parsing
    return groups


def _scan_forked(
    files: list[str], allow: tuple[str, ...], expected: str | None, n_jobs: int, bar: _Progress
) -> list[FileReport]:
    """Fork n_jobs - 1 children; each scans its share and pipes back its reports."""
    import pickle

    groups = [g for g in _balanced(files, n_jobs) if g]
    children: list[tuple[int, int, list[str]]] = []
    for group in groups[1:]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: scan, send, and leave without running the parent's exit code
            code = 0
            try:
                os.close(r)
                data = pickle.dumps(_scan_many((tuple(group), allow, expected)), protocol=5)
                with os.fdopen(w, "wb") as out:
                    out.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        children.append((pid, r, group))
    bar.start()
    reports: list[FileReport] = []
    for i, uri in enumerate(groups[0]):
        reports.append(scan_file(uri, allow=allow, expected_sha256=expected))
        bar.update(min(len(files), (i + 1) * len(groups)))
    for pid, r, group in children:
        with os.fdopen(r, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and data:
            # our own child's reports (FileReport values), not model content
            reports.extend(pickle.loads(data))
        else:  # the child died: scan its share here, so no file goes unscanned
            reports.extend(_scan_many((tuple(group), allow, expected)))
        bar.update(len(reports))
    return reports


def _scan_pool(
    files: list[str],
    allow: tuple[str, ...],
    expected: str | None,
    n_jobs: int,
    bar: _Progress,
    method: str,
) -> list[FileReport]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    if method == "process":
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    batches = [b for b in _balanced(files, min(len(files), n_jobs * 8)) if b]
    out: list[FileReport] = []
    mp_ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp_ctx) as pool:
        futures = [pool.submit(_scan_many, (tuple(b), allow, expected)) for b in batches]
        for fut in as_completed(futures):
            out.extend(fut.result())
            bar.update(len(out))
    return out


def _exists(uri: str) -> bool:
    try:
        return artifacts.exists(uri)
    except Exception:  # e.g. no fsspec backend for the protocol: the scan reports it, blocked
        return True


def run_scan_command(
    uris: Sequence[str], *, as_json: bool, sarif: bool, allow: Sequence[str] = ()
) -> int:
    """Scan and print the report to stdout. Exit code: 0 clean, 1 findings/blocked, 2 missing."""
    from bot.config import ConfigError, scan_parallel

    try:
        scan_parallel()
    except ConfigError as exc:
        from bot import messages

        print(messages.configuration(str(exc)), file=sys.stderr)
        return 2
    missing = [u for u in uris if not _exists(u)]
    if missing:
        for u in missing:
            print(f"aimodel scan: {u}: no such file or directory", file=sys.stderr)
        return 2
    report = scan_paths(uris, allow=allow, progress=True)
    if sarif or as_json:
        import json

        doc: dict[str, Any] = report.to_sarif() if sarif else report.to_json()
        text = json.dumps(doc, indent=2)
    else:
        text = render_table(report)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `aimodel scan ... | head`: the verdict still sets the exit code
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="aimodel scan", description="Scan model files for code that runs on load."
    )
    parser.add_argument("paths", nargs="+", help="files, folders or URIs (s3://, gs://, https://)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--sarif", action="store_true", help="print the report as SARIF 2.1.0")
    parser.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="MODULE.NAME",
        help="also allow this global (or module.*); repeatable",
    )
    args = parser.parse_args(argv)
    return run_scan_command(args.paths, as_json=args.json, sarif=args.sarif, allow=args.allow)


if __name__ == "__main__":
    sys.exit(main())

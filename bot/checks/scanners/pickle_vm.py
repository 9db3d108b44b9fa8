"""A pickle opcode walker that never unpickles.

It reads the opcodes of protocols 0-5 from a :class:`Source`, keeps a small model of the
unpickler's stack and memo (enough to resolve ``STACK_GLOBAL`` operands, joblib's array
wrappers and torch's legacy storage records) and reports every imported global that is not on
the allow-list. Large payloads (bytes, long strings) are skipped, never read; long runs of plain
numbers inside a list/tuple/dict batch are matched by one regular expression.
"""

from __future__ import annotations

import codecs
import struct
from typing import Any

from ..scan_report import Finding
from .policy import AllowList, severity_of
from .source import CannotVerify, LazyRe, Malformed, Source, Truncated


class Global:
    __slots__ = ("full", "module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self.full = f"{module}.{name}"


class Obj:
    """The result of REDUCE / NEWOBJ / OBJ / INST: a call we never make."""

    __slots__ = ("args", "cls", "state")

    def __init__(self, cls: object, args: object) -> None:
        self.cls = cls
        self.args = args
        self.state: object = None


class DictV:
    """A dict the pickle builds; ``lossy`` once an item was not recorded (too many, or a key
    the model does not keep), so a reader that needs every key knows it cannot trust it."""

    __slots__ = ("d", "lossy")

    def __init__(self) -> None:
        self.d: dict[object, object] = {}
        self.lossy = False


class _Sentinel:
    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __repr__(self) -> str:
        return self.label


OPAQUE = _Sentinel("OPAQUE")
FLOAT = _Sentinel("FLOAT")
BYTES = _Sentinel("BYTES")
LIST = _Sentinel("LIST")
SET = _Sentinel("SET")
RUN = _Sentinel("RUN")  # many plain numbers pushed in one batch, consumed by a pop-to-mark op

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
MAX_KEPT_STR = 128  # longer strings are not kept (no module or class name is that long)
MAX_STACK = 2_000_000
# Past this many remembered values the memo stops growing (memory stays bounded): a later
# GET of a value it did not keep yields OPAQUE, and an import that needs one is blocked.
MAX_MEMO = 300_000
MAX_DICT = 256
MAX_TUPLE = 64
MAX_NESTING = 16

# Classes named by their full dotted name: a pickle may split "module.name" anywhere
# (STACK_GLOBAL "joblib" + "numpy_pickle.NumpyArrayWrapper" imports the same class).
_JOBLIB_WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)

# joblib < 0.10 kept arrays in side files named in the wrapper's state, loaded with
# np.load(allow_pickle=True) from the pickle's folder.
_JOBLIB_SIDECARS = frozenset(
    {
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.ZNDArrayWrapper",
    }
)
_ANY_WRAPPER = _JOBLIB_WRAPPERS | _JOBLIB_SIDECARS

# Allowed callables that return an instance of their first argument (copyreg's protocol 0-1
# object construction): what they build is an instance of that class, not of themselves.
_RECONSTRUCTORS = frozenset({"copyreg._reconstructor", "copy_reg._reconstructor"})
_NUMPY_DTYPES = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype",
                           "numpy._core.multiarray.dtype"})  # fmt: skip

# One run of >= 64 plain-number pushes (FRAME headers may sit between them) directly
# followed by an op that pops to the mark.
_RUN_RE = LazyRe(
    rb"(?:G[\x00-\xff]{8}|J[\x00-\xff]{4}|K[\x00-\xff]|M[\x00-\xff]{2}|N|\x88|\x89"
    rb"|\x95[\x00-\xff]{8}){64,}+"
    rb"(?=[eutld1\x90\x91])"
)

_unpack_i = struct.Struct("<i").unpack_from
_unpack_I = struct.Struct("<I").unpack_from
_unpack_H = struct.Struct("<H").unpack_from
_unpack_Q = struct.Struct("<Q").unpack_from

_COMPAT: dict[str, str] | None = None
_COMPAT_NAMES: dict[tuple[str, str], tuple[str, str]] | None = None


def _py2_fix(module: str, name: str) -> tuple[str, str]:
    """Map Python 2 names the way the unpickler does for protocols < 3."""
    global _COMPAT, _COMPAT_NAMES
    if _COMPAT is None or _COMPAT_NAMES is None:
        import _compat_pickle

        _COMPAT = dict(_compat_pickle.IMPORT_MAPPING)
        _COMPAT_NAMES = dict(_compat_pickle.NAME_MAPPING)
    if (module, name) in _COMPAT_NAMES:
        return _COMPAT_NAMES[(module, name)]
    return _COMPAT.get(module, module), name


class PickleContext:
    """Where findings go while one file (or archive member) is scanned."""

    __slots__ = ("allow", "depth", "findings", "fmt", "joblib_arrays", "path", "persids",
                 "plain", "refs", "saw_wrapper")  # fmt: skip

    def __init__(
        self,
        path: str,
        fmt: str,
        allow: AllowList,
        findings: list[Finding] | None = None,
        refs: list[tuple[str, object, int]] | None = None,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.allow = allow
        self.findings: list[Finding] = [] if findings is None else findings
        self.persids: dict[str, tuple[object, object]] | None = None
        self.joblib_arrays = 0
        self.depth = 0
        # True: read as pickle.load does (no joblib array records), False: as joblib.load does
        self.plain = False
        self.saw_wrapper = False  # a joblib wrapper class was imported in this pickle
        # files the model names (old joblib side files): (referring path, name, offset)
        self.refs: list[tuple[str, object, int]] = [] if refs is None else refs

    def check_global(self, module: str, name: str, offset: int, via: str) -> None:
        if module in ("__builtin__", "copy_reg", "exceptions") or module.startswith(
            ("cPickle", "UserDict", "urllib2", "commands")
        ):
            module, name = _py2_fix(module, name)
        if self.allow.allowed(module, name):
            return
        if not _dotted(module) or not _dotted(name):
            # not a name Python can import; and the text may be anything (a config line,
            # a secret), so it is not quoted
            self.findings.append(
                Finding(
                    path=self.path,
                    offset=offset,
                    format=self.fmt,
                    name="GLOBAL",
                    severity="high",
                    message=f"{via} names something that is not a Python identifier "
                    "(not quoted here)",
                )
            )
            return
        full = f"{module}.{name}"
        sev = severity_of(module, name)
        self.findings.append(
            Finding(
                path=self.path,
                offset=offset,
                format=self.fmt,
                name=full,
                severity=sev,
                message=f"{via} imports {full}, which is not on the allow-list"
                + (" (known to run code or touch the system)" if sev == "critical" else ""),
            )
        )


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _line_str(raw: bytes) -> str:
    return raw[:-1].decode("utf-8", "surrogateescape")


def _decode_string_op(raw: bytes) -> str:
    """STRING opcode argument: a quoted Python 2 repr."""
    body = raw.rstrip(b"\r\n")
    if len(body) < 2 or body[0] != body[-1] or body[:1] not in (b"'", b'"'):
        raise Malformed("malformed STRING argument")
    inner = body[1:-1]
    if b"\\" in inner:
        inner = codecs.escape_decode(inner)[0]
    return inner.decode("latin-1")


def _keep_str(s: str) -> object:
    return s if len(s) <= MAX_KEPT_STR else OPAQUE


_WORTHY = frozenset({str, int, bytes, Global, Obj, DictV})


def _memo_worthy(v: object) -> bool:
    """Worth remembering in the memo: what can later name a global or size an array."""
    t = type(v)
    if t in _WORTHY:
        return True
    if t is tuple:
        for x in v:  # type: ignore[attr-defined]
            if _memo_worthy(x):
                return True
    return False


def _pop_mark(stack: list[object], marks: list[int]) -> list[object]:
    if not marks:
        raise Malformed("pop-to-mark without a MARK")
    mk = marks.pop()
    items = stack[mk:]
    del stack[mk:]
    return items


def walk_pickle(src: Source, ctx: PickleContext) -> object:
    """Walk one pickle (through its STOP). Returns the model of the value it would produce."""
    try:
        return _walk(src, ctx)
    except (IndexError, struct.error) as exc:
        # the messages name the error only: they may quote the file's bytes
        raise Truncated(
            f"truncated or malformed pickle near offset {src.tell()} ({type(exc).__name__})"
        ) from exc
    except (UnicodeDecodeError, ValueError, OverflowError) as exc:
        if isinstance(exc, CannotVerify):
            raise
        raise Malformed(
            f"malformed pickle near offset {src.tell()} ({type(exc).__name__})"
        ) from exc
    except RecursionError as exc:
        raise CannotVerify(f"pickle nested too deeply near offset {src.tell()}") from exc


def _state(src: Source) -> tuple[bytes, int, int, int]:
    """buf, pos, len(buf), and the position past which the main loop must refill."""
    buf = src.buf
    blen = len(buf)
    return buf, src.pos, blen, blen if src.eof else blen - 64


def _walk(src: Source, ctx: PickleContext) -> object:
    stack: list[object] = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    memo_next = 0
    styles = 0  # 1: PUT-style memo keys, 2: MEMOIZE
    proto = 0
    append = stack.append
    run_match = _RUN_RE.match
    buf, pos, blen, limit = _state(src)
    while True:
        if pos >= limit:  # fewer than 64 bytes buffered: refill (or end of data)
            if not src.eof:
                # each op pushes at most one item, so checking here bounds the stack
                if len(stack) > MAX_STACK:
                    raise CannotVerify("pickle stack deeper than the scanner's limit")
                src.pos = pos
                src.fill(1 << 16)
                buf, pos, blen, limit = _state(src)
            if pos >= blen:
                src.pos = pos
                raise Truncated(f"pickle truncated at offset {src.tell()} (no STOP)")
        op = buf[pos]
        pos += 1
        # --- the frequent ones first
        if op == 0x94:  # MEMOIZE
            if styles & 1:
                raise CannotVerify("pickle mixes MEMOIZE and PUT memo keys")
            styles = 2
            v = stack[-1]
            if (type(v) in _WORTHY or _memo_worthy(v)) and len(memo) < MAX_MEMO:
                memo[memo_next] = v
            memo_next += 1
        elif op == 0x71 or op == 0x72 or op == 0x70:  # BINPUT, LONG_BINPUT, PUT
            if styles & 2:
                raise CannotVerify("pickle mixes MEMOIZE and PUT memo keys")
            styles = 1
            if op == 0x71:
                key = buf[pos]
                pos += 1
            elif op == 0x72:
                key = _unpack_I(buf, pos)[0]
                pos += 4
            else:
                src.pos = pos
                key = int(src.readline(64))
                buf, pos, blen, limit = _state(src)
            v = stack[-1]
            if (type(v) in _WORTHY or _memo_worthy(v)) and (len(memo) < MAX_MEMO or key in memo):
                memo[key] = v
            else:
                memo.pop(key, None)
        elif op == 0x68:  # BINGET
            append(memo.get(buf[pos], OPAQUE))
            pos += 1
        elif op == 0x6A:  # LONG_BINGET
            append(memo.get(_unpack_I(buf, pos)[0], OPAQUE))
            pos += 4
        elif op == 0x8C or op == 0x58 or op == 0x8D:  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
            if op == 0x8C:
                n = buf[pos]
                pos += 1
            elif op == 0x58:
                n = _unpack_I(buf, pos)[0]
                pos += 4
            else:
                n = _unpack_Q(buf, pos)[0]
                pos += 8
            if n > MAX_KEPT_STR:
                src.pos = pos
                src.skip(n)
                buf, pos, blen, limit = _state(src)
                append(OPAQUE)
            else:
                if pos + n > blen:
                    src.pos = pos
                    if not src.fill(n):
                        raise Truncated(f"string runs past the end at offset {src.tell()}")
                    buf, pos, blen, limit = _state(src)
                v = buf[pos : pos + n].decode("utf-8", "surrogatepass")
                append(v)
                pos += n
                # fused: a string is nearly always memoized right away (saves a loop turn)
                if pos < limit:
                    nxt = buf[pos]
                    if nxt == 0x94 and not styles & 1:
                        styles = 2
                        if len(memo) < MAX_MEMO:
                            memo[memo_next] = v
                        memo_next += 1
                        pos += 1
                    elif nxt == 0x71 and not styles & 2:
                        styles = 1
                        key = buf[pos + 1]
                        if len(memo) < MAX_MEMO or key in memo:
                            memo[key] = v
                        pos += 2
        elif op == 0x47:  # BINFLOAT
            if pos + 8 > blen:
                raise Truncated("BINFLOAT truncated")
            append(FLOAT)
            pos += 8
        elif op == 0x4B:  # BININT1
            append(buf[pos])
            pos += 1
        elif op == 0x4A:  # BININT
            append(_unpack_i(buf, pos)[0])
            pos += 4
        elif op == 0x4D:  # BININT2
            append(_unpack_H(buf, pos)[0])
            pos += 2
        elif op == 0x63 or op == 0x69:  # GLOBAL, INST
            off = src.start + pos - 1
            i = buf.find(b"\n", pos, pos + 4096)
            j = buf.find(b"\n", i + 1, i + 4097) if i >= 0 else -1
            if j >= 0:
                module = buf[pos:i].decode("utf-8", "surrogateescape")
                name = buf[i + 1 : j].decode("utf-8", "surrogateescape")
                pos = j + 1
            else:
                src.pos = pos
                module = _line_str(src.readline(4096))
                name = _line_str(src.readline(4096))
                buf, pos, blen, limit = _state(src)
            ctx.check_global(module, name, off, "GLOBAL" if op == 0x63 else "INST")
            g = Global(module, name)
            if g.full in _ANY_WRAPPER:
                ctx.saw_wrapper = True
            if op == 0x63:
                append(g)
            else:
                items = _pop_mark(stack, marks)
                append(Obj(g, tuple(items)))
        elif op == 0x51:  # BINPERSID
            pid = stack.pop()
            if (
                ctx.persids is not None
                and type(pid) is tuple
                and len(pid) >= 5
                and pid[0] == "storage"
                and type(pid[2]) is str
            ):
                ctx.persids[pid[2]] = (pid[1], pid[4])
            append(OPAQUE)
        elif op == 0x28:  # MARK
            marks.append(len(stack))
            if blen - pos < 1 << 16 and not src.eof:
                src.pos = pos
                src.fill(1 << 16)
                buf, pos, blen, limit = _state(src)
            m = run_match(buf, pos)
            if m is not None:
                append(RUN)
                pos = m.end()
        elif op == 0x65:  # APPENDS
            _pop_mark(stack, marks)
            if not stack:
                raise Malformed("APPENDS on an empty stack")
        elif op == 0x75:  # SETITEMS
            items = _pop_mark(stack, marks)
            target = stack[-1]
            if type(target) is DictV:
                if len(target.d) < MAX_DICT and RUN not in items:
                    for i in range(0, len(items) - 1, 2):
                        k = items[i]
                        if type(k) is str or type(k) is int:
                            target.d[k] = items[i + 1]
                        else:
                            target.lossy = True
                else:
                    target.lossy = True
        elif op == 0x61:  # APPEND
            stack.pop()
            if not stack:
                raise Malformed("APPEND on an empty stack")
        elif op == 0x73:  # SETITEM
            v = stack.pop()
            k = stack.pop()
            target = stack[-1]
            if type(target) is DictV:
                if len(target.d) < MAX_DICT and type(k) in (str, int):
                    target.d[k] = v
                else:
                    target.lossy = True
        elif op == 0x85:  # TUPLE1
            stack[-1] = (stack[-1],)
        elif op == 0x86:  # TUPLE2
            b = stack.pop()
            stack[-1] = (stack[-1], b)
        elif op == 0x87:  # TUPLE3
            c = stack.pop()
            b = stack.pop()
            stack[-1] = (stack[-1], b, c)
        elif op == 0x74:  # TUPLE
            items = _pop_mark(stack, marks)
            append(tuple(items) if len(items) <= MAX_TUPLE and RUN not in items else OPAQUE)
        elif op == 0x29:  # EMPTY_TUPLE
            append(())
        elif op == 0x5D:  # EMPTY_LIST
            append(LIST)
        elif op == 0x7D:  # EMPTY_DICT
            append(DictV())
        elif op == 0x4E:  # NONE
            append(None)
        elif op == 0x88:  # NEWTRUE
            append(True)
        elif op == 0x89:  # NEWFALSE
            append(False)
        elif op == 0x52:  # REDUCE
            args = stack.pop()
            stack[-1] = Obj(stack[-1], args)
        elif op == 0x62:  # BUILD
            state = stack.pop()
            target = stack[-1]
            off = src.start + pos - 1
            if type(target) is not Obj:
                _build_on_foreign(ctx, target, off)
            else:
                target.state = _merged_state(target.state, state)
                if ctx.saw_wrapper and not ctx.plain:
                    # joblib's unpickler checks isinstance after every BUILD: mirror it
                    kind = _instance_of(target)
                    if kind is OPAQUE:
                        raise CannotVerify(
                            f"BUILD at offset {off}: cannot tell whether joblib reads an array "
                            "record here (the object's class is not known)"
                        )
                    if kind in _JOBLIB_WRAPPERS:
                        src.pos = pos
                        _skip_joblib_array(src, ctx, target.state)
                        buf, pos, blen, limit = _state(src)
                        stack[-1] = OPAQUE
                    elif kind in _JOBLIB_SIDECARS:
                        ctx.refs.append((ctx.path, _sidecar_name(target.state), off))
                        stack[-1] = OPAQUE
        elif op == 0x81:  # NEWOBJ
            args = stack.pop()
            stack[-1] = Obj(stack[-1], args)
        elif op == 0x93:  # STACK_GLOBAL
            top = stack.pop()
            below = stack.pop()
            if type(top) is not str or type(below) is not str:
                raise CannotVerify(
                    f"STACK_GLOBAL at offset {src.start + pos - 1} takes a module/name the "
                    "scanner cannot resolve"
                )
            ctx.check_global(below, top, src.start + pos - 1, "STACK_GLOBAL")
            g = Global(below, top)
            if g.full in _ANY_WRAPPER:
                ctx.saw_wrapper = True
            append(g)
        elif op == 0x43 or op == 0x42 or op == 0x8E or op == 0x96:  # bytes payloads
            if op == 0x43:
                n = buf[pos]
                pos += 1
            elif op == 0x42:
                n = _unpack_I(buf, pos)[0]
                pos += 4
            else:
                n = _unpack_Q(buf, pos)[0]
                pos += 8
            if pos + n <= blen:
                # short ones are kept: a datetime dtype's unit (b"ns") is part of its state
                append(buf[pos : pos + n] if n <= MAX_KEPT_STR else BYTES)
                pos += n
            else:
                src.pos = pos
                src.skip(n)
                buf, pos, blen, limit = _state(src)
                append(BYTES)
        elif op == 0x55 or op == 0x54:  # SHORT_BINSTRING, BINSTRING (py2 str)
            if op == 0x55:
                n = buf[pos]
                pos += 1
            else:
                n = _unpack_i(buf, pos)[0]
                pos += 4
                if n < 0:
                    raise Malformed("negative BINSTRING length")
            if n > MAX_KEPT_STR:
                src.pos = pos
                src.skip(n)
                buf, pos, blen, limit = _state(src)
                append(OPAQUE)
            else:
                if pos + n > blen:
                    src.pos = pos
                    if not src.fill(n):
                        raise Truncated("string runs past the end")
                    buf, pos, blen, limit = _state(src)
                append(buf[pos : pos + n].decode("latin-1"))
                pos += n
        elif op == 0x95:  # FRAME
            if pos + 8 > blen:
                raise Truncated("FRAME truncated")
            pos += 8
        elif op == 0x80:  # PROTO
            proto = buf[pos]
            pos += 1
            if proto > 5:
                raise Malformed(f"unsupported pickle protocol {proto}")
        elif op == 0x2E:  # STOP
            src.pos = pos
            if not stack:
                raise Malformed("STOP with an empty stack")
            return stack[-1]
        elif op == 0x6F:  # OBJ
            items = _pop_mark(stack, marks)
            if not items:
                raise Malformed("OBJ without a class")
            append(Obj(items[0], tuple(items[1:])))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = stack.pop()
            args = stack.pop()
            stack[-1] = Obj(stack[-1], (args, kwargs))
        elif op == 0x8F:  # EMPTY_SET
            append(SET)
        elif op == 0x90:  # ADDITEMS
            _pop_mark(stack, marks)
            if not stack:
                raise Malformed("ADDITEMS on an empty stack")
        elif op == 0x91:  # FROZENSET
            _pop_mark(stack, marks)
            append(SET)
        elif op == 0x6C:  # LIST
            _pop_mark(stack, marks)
            append(LIST)
        elif op == 0x64:  # DICT
            items = _pop_mark(stack, marks)
            d = DictV()
            if RUN not in items and len(items) <= 2 * MAX_DICT:
                for i in range(0, len(items) - 1, 2):
                    k = items[i]
                    if type(k) is str or type(k) is int:
                        d.d[k] = items[i + 1]
                    else:
                        d.lossy = True
            else:
                d.lossy = True
            append(d)
        elif op == 0x30:  # POP
            if stack and (not marks or marks[-1] < len(stack)):
                stack.pop()
            elif marks:
                marks.pop()
            else:
                raise Malformed("POP on an empty stack")
        elif op == 0x31:  # POP_MARK
            _pop_mark(stack, marks)
        elif op == 0x32:  # DUP
            append(stack[-1])
        elif op == 0x8A or op == 0x8B:  # LONG1, LONG4
            if op == 0x8A:
                n = buf[pos]
                pos += 1
            else:
                n = _unpack_i(buf, pos)[0]
                pos += 4
                if n < 0:
                    raise Malformed("negative LONG4 length")
            if n <= 16:
                if pos + n > blen:
                    raise Truncated("LONG truncated")
                append(int.from_bytes(buf[pos : pos + n], "little", signed=True))
                pos += n
            else:
                src.pos = pos
                src.skip(n)
                buf, pos, blen, limit = _state(src)
                append(OPAQUE)
        elif op in (0x49, 0x4C, 0x46, 0x67, 0x53, 0x56, 0x50):  # text-line ops
            src.pos = pos
            line = src.readline(1 << 16)
            buf, pos, blen, limit = _state(src)
            if op == 0x49:  # INT (or I00/I01 bools)
                t = line.strip()
                if t == b"00":
                    append(False)
                elif t == b"01":
                    append(True)
                else:
                    append(int(t) if len(t) <= 40 else OPAQUE)
            elif op == 0x4C:  # LONG
                t = line.strip().rstrip(b"L")
                append(int(t) if len(t) <= 40 else OPAQUE)
            elif op == 0x46:  # FLOAT
                float(line)
                append(FLOAT)
            elif op == 0x67:  # GET
                append(memo.get(int(line), OPAQUE))
            elif op == 0x53:  # STRING
                append(_keep_str(_decode_string_op(line)))
            elif op == 0x56:  # UNICODE
                append(_keep_str(line[:-1].decode("raw-unicode-escape")))
            else:  # PERSID
                append(OPAQUE)
        elif op == 0x82 or op == 0x83 or op == 0x84:  # EXT1, EXT2, EXT4
            off = src.start + pos - 1
            if op == 0x82:
                code = buf[pos]
                pos += 1
            elif op == 0x83:
                code = _unpack_H(buf, pos)[0]
                pos += 2
            else:
                code = _unpack_i(buf, pos)[0]
                pos += 4
            ctx.findings.append(
                Finding(
                    path=ctx.path,
                    offset=off,
                    format=ctx.fmt,
                    name=f"EXT {code}",
                    severity="high",
                    message="extension-registry import: resolves to a global by code, "
                    "which the scanner cannot check",
                )
            )
            append(OPAQUE)
        elif op == 0x97:  # NEXT_BUFFER
            append(BYTES)
        elif op == 0x98:  # READONLY_BUFFER
            if not stack:
                raise Malformed("READONLY_BUFFER on an empty stack")
        else:
            raise Malformed(f"unknown pickle opcode 0x{op:02x} at offset {src.start + pos - 1}")


def _instance_of(obj: Obj) -> object:
    """The full name of the class ``obj`` is an instance of, or OPAQUE when the scanner cannot
    tell. REDUCE/NEWOBJ/OBJ/INST on a class build an instance of it; copyreg's reconstructor
    builds an instance of its first argument (the protocol 0-1 spelling of ``object.__new__``)."""
    cls = obj.cls
    if type(cls) is not Global:
        return OPAQUE
    if cls.full in _RECONSTRUCTORS or cls.name == "newObj":  # Cython's newObj(cls): cls.__new__
        args = obj.args
        if type(args) is tuple and args and type(args[0]) is Global:
            return args[0].full
        return OPAQUE
    return cls.full


def _merged_state(old: object, new: object) -> object:
    """BUILD updates the instance's ``__dict__``: a second BUILD adds to the first one's keys."""
    if type(old) is DictV and type(new) is DictV:
        merged = DictV()
        merged.d.update(old.d)
        merged.d.update(new.d)
        merged.lossy = old.lossy or new.lossy
        return merged
    return new


def _build_on_foreign(ctx: PickleContext, target: object, offset: int) -> None:
    """BUILD sets attributes on its target: on anything the pickle did not create itself (a
    module, a class, a shared object) that changes the running process, not a new object."""
    if target is OPAQUE:
        raise CannotVerify(f"BUILD at offset {offset} on a value the scanner cannot follow")
    what = f"the imported {target.full}" if type(target) is Global else "a value"
    ctx.findings.append(
        Finding(
            path=ctx.path,
            offset=offset,
            format=ctx.fmt,
            name="BUILD",
            severity="critical" if type(target) is Global else "high",
            message=f"BUILD sets attributes on {what}, which is not an object this file "
            "created: loading it would change code shared by the whole process",
        )
    )


def _sidecar_name(state: object) -> object:
    name = state.d.get("filename") if type(state) is DictV else None
    return name if type(name) is str else OPAQUE


_DTYPE_SPEC = LazyRe(r"^[<>|=]?[a-zA-Z?][0-9]{0,9}(\[[A-Za-z0-9]{1,8}\])?$")


def _dtype_info(dt: object) -> tuple[int, bool]:
    """(itemsize, hasobject) of a pickled numpy dtype, by numpy's own rules: ``numpy.dtype
    (spec)`` gives the base (so ``U5`` is 20 bytes); the pickled state then sets the item size
    of a flexible type (S, U, V) and the flags, where ``hasobject`` lives. The state is never
    handed to numpy: its ``__setstate__`` crashes the process on some crafted states."""
    if type(dt) is not Obj or type(dt.cls) is not Global or dt.cls.full not in _NUMPY_DTYPES:
        raise CannotVerify("joblib array dtype is not a numpy dtype")
    args = dt.args
    if type(args) is not tuple or not args or type(args[0]) is not str:
        raise CannotVerify("numpy dtype built from values the scanner does not keep")
    if not _DTYPE_SPEC.match(args[0]):
        raise CannotVerify("numpy dtype spelling not understood")
    import numpy as np

    try:
        base: Any = np.dtype(args[0])
    except Exception as exc:  # numpy refuses it, so joblib fails to load it too
        raise CannotVerify(f"numpy refuses the pickled dtype ({type(exc).__name__})") from exc
    itemsize, hasobject = int(base.itemsize), bool(base.hasobject)
    state = dt.state
    if state is not None:
        if type(state) is not tuple or len(state) not in (8, 9):
            raise CannotVerify("numpy dtype state not understood")
        elsize, flags = state[5], state[7]
        if type(elsize) is not int or type(flags) is not int:
            raise CannotVerify("numpy dtype state not understood")
        if base.kind in "SUV":
            if elsize < 0 or (base.kind == "U" and elsize % 4):
                raise CannotVerify("numpy dtype state with an impossible item size")
            itemsize = elsize
        hasobject = bool(flags & 1)  # numpy takes the flags from the state, for every kind
    return itemsize, hasobject


def _skip_joblib_array(src: Source, ctx: PickleContext, state: object) -> None:
    """Skip the raw array bytes joblib writes right after a NumpyArrayWrapper's BUILD."""
    if type(state) is not DictV or state.lossy:
        raise CannotVerify("joblib NumpyArrayWrapper without a readable state")
    d = state.d
    shape = d.get("shape")
    if type(shape) is not tuple or not all(type(x) is int and x >= 0 for x in shape):
        raise CannotVerify("joblib NumpyArrayWrapper with an unreadable shape")
    itemsize, hasobject = _dtype_info(d.get("dtype"))
    ctx.joblib_arrays += 1
    if ctx.fmt == "pickle":
        ctx.fmt = "joblib"
    if hasobject:
        # the array is a nested, complete pickle (joblib writes pickle.dump(array, fh)) that
        # joblib reads with a plain unpickler: no array records inside it
        if ctx.depth >= MAX_NESTING:
            raise CannotVerify("joblib arrays nested too deeply")
        ctx.depth += 1
        plain, saw = ctx.plain, ctx.saw_wrapper
        ctx.plain = True
        try:
            walk_pickle(src, ctx)
        finally:
            ctx.depth -= 1
            ctx.plain, ctx.saw_wrapper = plain, saw
        return
    count = 1
    for x in shape:
        count *= x
    if d.get("numpy_array_alignment_bytes") is not None:
        pad = src.read(1)[0]  # joblib reads the padding length and skips it, up to 255
        src.skip(pad)
    if count and itemsize == 0:
        raise CannotVerify("joblib array of zero-sized items")  # joblib divides by it and fails
    src.skip(count * itemsize)


def torch_storage_bytes(persids: dict[str, tuple[object, object]]) -> int | None:
    """Bytes the legacy torch format stores after its pickles, or None if not computable."""
    total = 0
    for storage_type, numel in persids.values():
        if type(storage_type) is not Global or type(numel) is not int:
            return None
        size = _STORAGE_SIZES.get(storage_type.name)
        if size is None:
            return None
        total += 8 + numel * size
    return total


_STORAGE_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
    "QInt8Storage": 1, "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1,
    "QUInt2x4Storage": 1, "UntypedStorage": 1,
}  # fmt: skip

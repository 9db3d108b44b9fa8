"""A pickle opcode walker that never unpickles.

It reads the opcodes of protocols 0-5 from a :class:`Source`, keeps a small model of the
unpickler's stack and memo (enough to resolve ``STACK_GLOBAL`` operands, joblib's array
wrappers and torch's legacy storage records) and reports every imported global that is not on
the allow-list. Large payloads (bytes, long strings) are skipped, never read; long runs of plain
numbers inside a list/tuple/dict batch are matched by one regular expression.
"""

from __future__ import annotations

import codecs
import re
import struct

from ..scan_report import Finding
from .policy import AllowList, severity_of
from .source import CannotVerify, LazyRe, Source, Truncated


class Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name


class Obj:
    """The result of REDUCE / NEWOBJ / OBJ / INST: a call we never make."""

    __slots__ = ("args", "cls", "state")

    def __init__(self, cls: object, args: object) -> None:
        self.cls = cls
        self.args = args
        self.state: object = None


class DictV:
    __slots__ = ("d",)

    def __init__(self) -> None:
        self.d: dict[object, object] = {}


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

_JOBLIB_WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)

# joblib < 0.10 kept arrays in side files named in the wrapper's state, loaded with
# np.load(allow_pickle=True) from the pickle's folder.
_JOBLIB_SIDECARS = frozenset(
    {
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NDArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "ZNDArrayWrapper"),
    }
)

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

    __slots__ = ("allow", "depth", "findings", "fmt", "joblib_arrays", "path", "persids")

    def __init__(
        self, path: str, fmt: str, allow: AllowList, findings: list[Finding] | None = None
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.allow = allow
        self.findings: list[Finding] = [] if findings is None else findings
        self.persids: dict[str, tuple[object, object]] | None = None
        self.joblib_arrays = 0
        self.depth = 0

    def check_global(self, module: str, name: str, offset: int, via: str) -> None:
        if module in ("__builtin__", "copy_reg", "exceptions") or module.startswith(
            ("cPickle", "UserDict", "urllib2", "commands")
        ):
            module, name = _py2_fix(module, name)
        if self.allow.allowed(module, name):
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


def _line_str(raw: bytes) -> str:
    return raw[:-1].decode("utf-8", "surrogateescape")


def _decode_string_op(raw: bytes) -> str:
    """STRING opcode argument: a quoted Python 2 repr."""
    body = raw.rstrip(b"\r\n")
    if len(body) < 2 or body[0] != body[-1] or body[:1] not in (b"'", b'"'):
        raise CannotVerify("malformed STRING argument")
    inner = body[1:-1]
    if b"\\" in inner:
        inner = codecs.escape_decode(inner)[0]
    return inner.decode("latin-1")


def _keep_str(s: str) -> object:
    return s if len(s) <= MAX_KEPT_STR else OPAQUE


_WORTHY = frozenset({str, int, Global, Obj, DictV})


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
        raise CannotVerify("pop-to-mark without a MARK")
    mk = marks.pop()
    items = stack[mk:]
    del stack[mk:]
    return items


def walk_pickle(src: Source, ctx: PickleContext) -> object:
    """Walk one pickle (through its STOP). Returns the model of the value it would produce."""
    try:
        return _walk(src, ctx)
    except (IndexError, struct.error) as exc:
        raise Truncated(f"truncated or malformed pickle near offset {src.tell()}: {exc}") from exc
    except (UnicodeDecodeError, ValueError, OverflowError, RecursionError) as exc:
        if isinstance(exc, CannotVerify):
            raise
        raise CannotVerify(f"malformed pickle near offset {src.tell()}: {exc}") from exc


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
                raise CannotVerify("APPENDS on an empty stack")
        elif op == 0x75:  # SETITEMS
            items = _pop_mark(stack, marks)
            target = stack[-1]
            if type(target) is DictV and len(target.d) < MAX_DICT and RUN not in items:
                for i in range(0, len(items) - 1, 2):
                    k = items[i]
                    if type(k) is str or type(k) is int:
                        target.d[k] = items[i + 1]
        elif op == 0x61:  # APPEND
            stack.pop()
            if not stack:
                raise CannotVerify("APPEND on an empty stack")
        elif op == 0x73:  # SETITEM
            v = stack.pop()
            k = stack.pop()
            target = stack[-1]
            if type(target) is DictV and len(target.d) < MAX_DICT and type(k) in (str, int):
                target.d[k] = v
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
            if type(target) is Obj:
                target.state = state
                cls = target.cls
                if type(cls) is Global and (cls.module, cls.name) in _JOBLIB_WRAPPERS:
                    src.pos = pos
                    _skip_joblib_array(src, ctx, state)
                    buf, pos, blen, limit = _state(src)
                    stack[-1] = OPAQUE
                elif type(cls) is Global and (cls.module, cls.name) in _JOBLIB_SIDECARS:
                    _check_sidecar(ctx, state, src.start + pos - 1)
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
            append(Global(below, top))
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
                    raise CannotVerify("negative BINSTRING length")
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
                raise CannotVerify(f"unsupported pickle protocol {proto}")
        elif op == 0x2E:  # STOP
            src.pos = pos
            if not stack:
                raise CannotVerify("STOP with an empty stack")
            return stack[-1]
        elif op == 0x6F:  # OBJ
            items = _pop_mark(stack, marks)
            if not items:
                raise CannotVerify("OBJ without a class")
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
                raise CannotVerify("ADDITEMS on an empty stack")
        elif op == 0x91:  # FROZENSET
            _pop_mark(stack, marks)
            append(SET)
        elif op == 0x6C:  # LIST
            _pop_mark(stack, marks)
            append(LIST)
        elif op == 0x64:  # DICT
            items = _pop_mark(stack, marks)
            d = DictV()
            if RUN not in items:
                for i in range(0, min(len(items) - 1, 2 * MAX_DICT), 2):
                    k = items[i]
                    if type(k) is str or type(k) is int:
                        d.d[k] = items[i + 1]
            append(d)
        elif op == 0x30:  # POP
            if stack and (not marks or marks[-1] < len(stack)):
                stack.pop()
            elif marks:
                marks.pop()
            else:
                raise CannotVerify("POP on an empty stack")
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
                    raise CannotVerify("negative LONG4 length")
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
                raise CannotVerify("READONLY_BUFFER on an empty stack")
        else:
            raise CannotVerify(f"unknown pickle opcode 0x{op:02x} at offset {src.start + pos - 1}")


def _dtype_info(dt: object) -> tuple[int, bool] | None:
    """(itemsize, hasobject) of a pickled numpy dtype model, or None if not understood."""
    if type(dt) is not Obj or type(dt.cls) is not Global:
        return None
    if dt.cls.name != "dtype" or not dt.cls.module.startswith("numpy"):
        return None
    args = dt.args
    if type(args) is not tuple or not args or type(args[0]) is not str:
        return None
    spec = args[0]
    m = re.fullmatch(r"([a-zA-Z?])(\d*)", spec)
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    state = dt.state
    elsize = -1
    flags = 0
    if type(state) is tuple and len(state) >= 8:
        if type(state[5]) is int:
            elsize = state[5]
        if type(state[7]) is int:
            flags = state[7]
    hasobject = kind == "O" or bool(flags & 1)
    if elsize > 0:
        return elsize, hasobject
    if digits:
        return int(digits), hasobject
    return None


def _check_sidecar(ctx: PickleContext, state: object, offset: int) -> None:
    """An old joblib wrapper's side file must be a plain name in the same folder."""
    name = state.d.get("filename") if type(state) is DictV else None
    if type(name) is str and name and "/" not in name and "\\" not in name and name != "..":
        return
    ctx.findings.append(
        Finding(
            path=ctx.path,
            offset=offset,
            format=ctx.fmt,
            name="joblib.NDArrayWrapper.filename",
            severity="critical",
            message=f"old joblib array wrapper loads {name!r}, which is not a file beside the "
            "model (np.load with pickles allowed)",
        )
    )


def _skip_joblib_array(src: Source, ctx: PickleContext, state: object) -> None:
    """Skip the raw array bytes joblib writes right after a NumpyArrayWrapper's BUILD."""
    if type(state) is not DictV:
        raise CannotVerify("joblib NumpyArrayWrapper without a readable state")
    d = state.d
    shape = d.get("shape")
    info = _dtype_info(d.get("dtype"))
    if type(shape) is not tuple or not all(type(x) is int and x >= 0 for x in shape):
        raise CannotVerify("joblib NumpyArrayWrapper with an unreadable shape")
    if info is None:
        raise CannotVerify("joblib NumpyArrayWrapper with an unreadable dtype")
    itemsize, hasobject = info
    ctx.joblib_arrays += 1
    if ctx.fmt == "pickle":
        ctx.fmt = "joblib"
    if hasobject:
        # the array is a nested, complete pickle (joblib writes pickle.dump(array, fh))
        if ctx.depth >= MAX_NESTING:
            raise CannotVerify("joblib arrays nested too deeply")
        ctx.depth += 1
        try:
            walk_pickle(src, ctx)
        finally:
            ctx.depth -= 1
        return
    count = 1
    for x in shape:
        count *= x
    if d.get("numpy_array_alignment_bytes") is not None:
        pad = src.read(1)[0]
        if pad > 64:
            raise CannotVerify("joblib array padding out of range")
        src.skip(pad)
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

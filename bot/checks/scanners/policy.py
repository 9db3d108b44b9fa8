"""The allow-list: which imported globals a model file may reference.

Decision by allow-list, not deny-list: a global that is not allowed here (or by the team's
``allow`` entries) is a finding. Allowed means an exact ``module.name``: the entries below and
the generated class list in ``allowlist.txt``; never a pattern over module paths, which admits
whatever a module re-exports. The severity rules only rank findings; they never make anything
allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from .source import LazyRe

# Exact "module.name" entries.
_EXACT = frozenset(
    {
        # builtins that build plain data (py3 and py2 spellings)
        *(
            f"{mod}.{name}"
            for mod in ("builtins", "__builtin__")
            for name in (
                "set",
                "frozenset",
                "slice",
                "complex",
                "bytearray",
                "bytes",
                "int",
                "float",
                "str",
                "list",
                "dict",
                "tuple",
                "bool",
                "range",
                "object",
                "unicode",
                "long",
                "xrange",
                "NotImplemented",
                "Ellipsis",
            )
        ),
        "copyreg._reconstructor",
        "copy_reg._reconstructor",
        "_codecs.encode",
        # collections and plain data types
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "collections.deque",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "enum.Enum",
        "re._compile",
        # numpy arrays, dtypes, scalars, random state
        *(
            f"{core}.{name}"
            for core in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "numpy.dtype",
        "numpy.ndarray",
        "numpy.matrix",
        "numpy.core.defmatrix.matrix",
        "numpy.matrixlib.defmatrix.matrix",
        "numpy.ma.core._mareconstruct",
        "numpy.ma.core.MaskedArray",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "numpy.random.bit_generator.SeedSequence",
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
        "numpy.random.mtrand.RandomState",
        "numpy.random._generator.Generator",
        *(
            f"numpy.random._{n.lower()}.{n}"
            for n in ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64")
        ),
        *(
            f"numpy.{n}"
            for n in (
                "bool_",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "float16",
                "float32",
                "float64",
                "longdouble",
                "complex64",
                "complex128",
                "clongdouble",
                "str_",
                "bytes_",
                "void",
                "datetime64",
                "timedelta64",
                "intc",
                "uintc",
                "longlong",
                "ulonglong",
                "object_",
            )
        ),
        # pandas frames sometimes ride along with tabular models
        "pandas.core.frame.DataFrame",
        "pandas.core.series.Series",
        "pandas.core.indexes.base._new_Index",
        "pandas.core.indexes.base.Index",
        "pandas.core.indexes.range.RangeIndex",
        "pandas.core.internals.managers.BlockManager",
        "pandas._libs.internals._unpickle_block",
        "pandas.core.internals.blocks.new_block",
        # torch tensors, storages, parameters
        *(
            f"torch._utils.{n}"
            for n in (
                "_rebuild_tensor",
                "_rebuild_tensor_v2",
                "_rebuild_tensor_v3",
                "_rebuild_parameter",
                "_rebuild_parameter_with_state",
                "_rebuild_qtensor",
                "_rebuild_sparse_tensor",
                "_rebuild_nested_tensor",
                "_rebuild_device_tensor_from_numpy",
                "_rebuild_meta_tensor_no_storage",
                "_rebuild_wrapper_subclass",
                "_rebuild_device_tensor_from_cpu_tensor",
            )
        ),
        "torch._tensor._rebuild_from_type",
        "torch._tensor._rebuild_from_type_v2",
        "torch.serialization._get_layout",
        "torch.storage.UntypedStorage",
        "torch.storage.TypedStorage",
        "torch.storage._StorageBase",
        "torch.Tensor",
        "torch.Size",
        "torch.device",
        "torch.dtype",
        "torch.nn.parameter.Parameter",
        "torch.nn.parameter.Buffer",
        *(
            f"torch.{n}Storage"
            for n in (
                "Float",
                "Double",
                "Half",
                "BFloat16",
                "Long",
                "Int",
                "Short",
                "Char",
                "Byte",
                "Bool",
                "ComplexFloat",
                "ComplexDouble",
                "QInt8",
                "QUInt8",
                "QInt32",
                "QUInt4x2",
                "QUInt2x4",
                "Untyped",
            )
        ),
        *(
            f"torch.{n}"
            for n in (
                "float32",
                "float",
                "float64",
                "double",
                "float16",
                "half",
                "bfloat16",
                "int8",
                "int16",
                "short",
                "int32",
                "int",
                "int64",
                "long",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "bool",
                "complex64",
                "complex128",
                "cfloat",
                "cdouble",
                "qint8",
                "quint8",
                "qint32",
                "quint4x2",
                "float8_e4m3fn",
                "float8_e5m2",
                "strided",
                "sparse_coo",
                "sparse_csr",
                "per_tensor_affine",
                "per_channel_affine",
                "contiguous_format",
                "channels_last",
            )
        ),
        # joblib's in-file array records
        "joblib.numpy_pickle.NumpyArrayWrapper",
        # TorchScript debug records rebuild plain lists through these
        *(
            f"torch.jit._pickle.{n}"
            for n in (
                "build_intlist",
                "build_doublelist",
                "build_boollist",
                "build_tensorlist",
                "restore_type_tag",
            )
        ),
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)

# The estimator and layer classes of scikit-learn, torch.nn, scipy.sparse, xgboost and
# lightgbm: exact names, generated from the libraries' own registries at development time
# (``allowlist_build.py``) and shipped as data. Never a pattern: modules re-export classes with
# side effects (threading.Thread, multiprocessing.connection.Client) and even modules.
_LIBRARY_CLASSES: frozenset[str] | None = None


def library_classes() -> frozenset[str]:
    global _LIBRARY_CLASSES
    if _LIBRARY_CLASSES is None:
        from pathlib import Path

        text = Path(__file__).with_name("allowlist.txt").read_text(encoding="utf-8")
        _LIBRARY_CLASSES = frozenset(
            line for line in text.splitlines() if line and not line.startswith("#")
        )
    return _LIBRARY_CLASSES


_IDENT = LazyRe(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Known-dangerous names: a finding on these is "critical".
_CRITICAL_MODULES = LazyRe(
    r"^(os|posix|nt|subprocess|sys|runpy|importlib|webbrowser|socket|shutil|pty|commands"
    r"|pickle|_pickle|cPickle|marshal|ctypes|code|codeop|pdb|timeit|multiprocessing|asyncio"
    r"|http|urllib|urllib2|requests|ftplib|smtplib|telnetlib|tempfile|glob|pathlib|io|_io"
    r"|dill|cloudpickle|joblib|types|inspect|bdb|trace|profile|cProfile|pydoc|site|imp"
    r"|zipimport|builtins\.__import__|shelve|dbm|sqlite3|signal|threading|_thread|operator"
    r"|functools|torch\.hub|torch\.jit|torch\.serialization|numpy\.testing|numpy\.f2py"
    r"|numpy\.distutils|numpy\.lib\.npyio|numpy\.load|platform|venv|ensurepip|distutils"
    r"|setuptools|pip|sysconfig|tarfile|zipfile|keras\.src\.utils|tensorflow\.io)(\.|$)"
)
_CRITICAL_EXACT = frozenset(
    {
        "torch.storage._load_from_bytes",
        "torch.load",
        "torch._C._load_from_bytes",
        "numpy.load",
        "numpy.fromfile",
        "numpy.memmap",
        "numpy.save",
        "numpy.testing._private.utils.runstring",
    }
)


def split_global(fullname: str) -> tuple[str, str]:
    mod, _, name = fullname.rpartition(".")
    return mod, name


@lru_cache(maxsize=8192)
def _builtin_allowed(module: str, name: str) -> bool:
    full = f"{module}.{name}"
    return full in _EXACT or full in library_classes()


# Libraries whose off-list names include loaders, downloaders, compilers and shells:
# anything they export that is not an allowed class is treated as able to run code.
_FRAMEWORKS = frozenset(
    {
        "torch", "torchvision", "torchaudio", "numpy", "scipy", "pandas", "sklearn", "keras",
        "tensorflow", "tf_keras", "jax", "joblib", "xgboost", "lightgbm", "catboost",
        "transformers", "huggingface_hub", "datasets", "safetensors", "onnx", "onnxruntime",
        "IPython", "ipykernel", "sympy", "dill", "cloudpickle", "pip", "setuptools",
        "pkg_resources", "_pytest", "pytest", "nltk", "matplotlib", "requests", "aiohttp",
        "httpx", "urllib3", "fsspec", "s3fs", "gcsfs", "boto3", "botocore", "yaml", "jinja2",
        "fire", "bdb", "numexpr", "dask", "ray", "mlflow", "wandb",
    }
)  # fmt: skip


def severity_of(module: str, name: str) -> str:
    """The severity of a non-allowed global: ``critical`` when it can run code or touch files
    or the network (everything from the standard library and the ML/data frameworks, which
    all ship such functions), ``medium`` for TorchScript classes, ``high`` for other code
    (a package the scanner does not know: importing it runs its code, but nothing more is
    known)."""
    if module == "__torch__" or module.startswith("__torch__."):
        return "medium"  # a TorchScript class: compiled from the archive's own code/ files
    full = f"{module}.{name}"
    if full in _CRITICAL_EXACT or _CRITICAL_MODULES.match(module):
        return "critical"
    top = module.split(".", 1)[0]
    if top in _stdlib() or top in _FRAMEWORKS or top in ("__builtin__", "__builtins__"):
        return "critical"
    if any(part.startswith("__") and part.endswith("__") for part in name.split(".")):
        return "critical"  # dunder attribute chains (__globals__, __builtins__, ...)
    return "high"


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names)


class AllowList:
    """The built-in allow-list plus a team's ``module.name`` / ``module.*`` entries."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for raw in extra:
            entry = raw.strip()
            if not entry:
                continue
            if entry.endswith(".*"):
                prefixes.append(entry[:-1])  # keep the trailing dot
            else:
                exact.add(entry)
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)
        self._cache: dict[tuple[str, str], bool] = {}

    def allowed(self, module: str, name: str) -> bool:
        key = (module, name)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ok = _builtin_allowed(module, name)
        if not ok:
            full = f"{module}.{name}"
            ok = full in self.exact or (bool(_IDENT.match(name)) and full.startswith(self.prefixes))
        self._cache[key] = ok
        return ok

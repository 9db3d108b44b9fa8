"""Build ``allowlist.txt``, the exact class names a model file may import (run at development
time, not by the scanner):

    python -m bot.checks.scanners.allowlist_build   # rewrites allowlist.txt beside this file

The names come from the libraries' own definitions, never from a pattern over module paths:

* scikit-learn: every class ``all_estimators()`` returns, and the classes (and Cython
  ``__pyx_unpickle_*`` rebuilders) *defined* in the modules of scikit-learn that fitted
  estimators keep (trees, losses, binners, neighbour trees...), minus the packages that do
  I/O or exist for tests (callback, datasets, externals, testing);
* torch: every ``torch.nn.Module`` subclass defined under ``torch.nn.modules``;
* scipy.sparse: every sparse matrix/array class;
* xgboost / lightgbm: their scikit-learn wrappers and Booster (a fixed list when the
  library is not installed here).

A class is named by its own ``__module__`` and ``__qualname__``, so a re-export (a module
that imports ``threading.Thread`` or ``os``) never enters the list. Classes whose MRO reaches
threading, multiprocessing, socket, subprocess, pathlib, types or a testing module are left
out, and so is any class whose ``__setstate__``/``__reduce__``/``__reduce_ex__`` source
touches files, sockets, processes or imports.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("allowlist.txt")

BANNED_MODULES = re.compile(
    r"^(threading|_thread|multiprocessing|socket|_socket|subprocess|pathlib|types|asyncio"
    r"|concurrent|selectors|ssl|http|urllib|io|_io|os|posix|shutil|tempfile|ctypes)(\.|$)"
    r"|(^|\.)(_?testing|tests?|conftest)(\.|$)"
)
SKIPPED_PACKAGES = re.compile(
    r"^sklearn\.(callback|datasets|externals|experimental|_build_utils|__check_build"
    r"|utils\._testing|utils\._show_versions|utils\.estimator_checks|_min_dependencies"
    r"|utils\._test_common)(\.|$)|(^|\.)(tests?|_testing|conftest)(\.|$)"
)
IO_SOURCE = re.compile(
    r"\b(open|socket|connect|Client|Listener|Popen|subprocess|system|urlopen|urlretrieve"
    r"|requests|import_module|__import__|exec|eval|compile|load|fetch|Path)\s*\("
)

_FALLBACK = {
    "xgboost": ["xgboost.sklearn.XGBModel", "xgboost.sklearn.XGBClassifier",
                "xgboost.sklearn.XGBRegressor", "xgboost.sklearn.XGBRanker",
                "xgboost.sklearn.XGBRFClassifier", "xgboost.sklearn.XGBRFRegressor",
                "xgboost.core.Booster"],
    "lightgbm": ["lightgbm.sklearn.LGBMModel", "lightgbm.sklearn.LGBMClassifier",
                 "lightgbm.sklearn.LGBMRegressor", "lightgbm.sklearn.LGBMRanker",
                 "lightgbm.basic.Booster"],
}  # fmt: skip


def full_name(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def acceptable(cls: Any) -> bool:
    """A class a pickle may build: not from a banned module, no I/O when (un)pickled."""
    if not isinstance(cls, type) or "<locals>" in cls.__qualname__:
        return False
    for base in cls.__mro__:
        if BANNED_MODULES.search(base.__module__ or ""):
            return False
    if issubclass(cls, BaseException):
        return False  # exceptions and warnings are never model state
    for hook in ("__setstate__", "__reduce__", "__reduce_ex__"):
        fn = cls.__dict__.get(hook)
        if fn is None:
            continue
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            continue  # written in C/Cython: the library's own (de)serialisation
        if IO_SOURCE.search(src):
            return False
    return True


def _modules(package: str) -> list[Any]:
    pkg = importlib.import_module(package)
    out = [pkg]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if SKIPPED_PACKAGES.search(info.name):
            continue
        try:
            out.append(importlib.import_module(info.name))
        except Exception:  # optional dependencies of a submodule: not a model class then
            continue
    return out


def sklearn_names() -> set[str]:
    from sklearn.utils.discovery import all_estimators

    names = {full_name(cls) for _, cls in all_estimators() if acceptable(cls)}
    for mod in _modules("sklearn"):
        for attr, value in vars(mod).items():
            if isinstance(value, type) and value.__module__ == mod.__name__ and acceptable(value):
                names.add(full_name(value))
            elif (
                (attr.startswith("__pyx_unpickle_") or attr == "newObj")
                and callable(value)
                and getattr(value, "__module__", None) == mod.__name__
            ):
                # Cython's rebuilders of the module's own classes (newObj(cls) is cls.__new__)
                names.add(f"{mod.__name__}.{attr}")
    return names


def torch_names() -> set[str]:
    import torch

    names: set[str] = set()
    for mod in _modules("torch.nn.modules"):
        for value in vars(mod).values():
            if (
                isinstance(value, type)
                and issubclass(value, torch.nn.Module)
                and value.__module__ == mod.__name__
                and acceptable(value)
            ):
                names.add(full_name(value))
    return names


def scipy_sparse_names() -> set[str]:
    import scipy.sparse as sp

    base = sp.sparray if hasattr(sp, "sparray") else sp.spmatrix
    names: set[str] = set()
    for value in vars(sp).values():
        if (
            isinstance(value, type)
            and (issubclass(value, base) or issubclass(value, sp.spmatrix))
            and acceptable(value)
        ):
            names.add(full_name(value))
    return names


def booster_names(package: str) -> tuple[set[str], str]:
    try:
        importlib.import_module(package)
    except ImportError:
        return set(_FALLBACK[package]), "fixed list (not installed)"
    names = set()
    for name in _FALLBACK[package]:
        mod, _, attr = name.rpartition(".")
        value = getattr(importlib.import_module(mod), attr, None)
        if value is not None and acceptable(value):
            names.add(full_name(value))
    return names, importlib.import_module(package).__version__


def main() -> int:
    warnings.simplefilter("ignore")
    import sklearn
    import torch

    groups = {
        f"scikit-learn {sklearn.__version__}": sklearn_names(),
        f"torch {torch.__version__}": torch_names(),
        "scipy.sparse": scipy_sparse_names(),
    }
    for pkg in ("xgboost", "lightgbm"):
        names, version = booster_names(pkg)
        groups[f"{pkg} {version}"] = names
    lines = [
        "# Exact class names a model file may import. Generated; do not edit by hand:",
        "#   python -m bot.checks.scanners.allowlist_build",
    ]
    for label, names in groups.items():
        lines.append(f"# {label}: {len(names)} names")
        lines.extend(sorted(names))
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({sum(len(n) for n in groups.values())} names)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

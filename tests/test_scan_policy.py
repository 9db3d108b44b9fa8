"""The scanner's allow-list (exact names, generated data) and what its reports may say."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from bot.checks.scan import scan_paths
from bot.checks.scanners import policy
from tests import scan_samples as s

ROOT = Path(__file__).resolve().parent.parent
BANNED = re.compile(
    r"^(threading|_thread|multiprocessing|socket|_socket|subprocess|pathlib|types)(\.|$)"
    r"|(^|\.)(_?testing|tests?)(\.|$)"
)
IO_IN_SOURCE = re.compile(
    r"\b(open|socket|connect|Client|Listener|Popen|system|urlopen|urlretrieve|import_module"
    r"|__import__|exec|eval)\s*\("
)


def _resolve(name: str) -> object | None:
    """The object a pickle's find_class would return for ``name`` (module, then attributes)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def test_the_allow_list_is_exact_names_of_harmless_classes() -> None:
    names = policy.library_classes()
    assert len(names) > 500
    assert not any("*" in n for n in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(names):
            top = name.split(".", 1)[0]
            if top in ("xgboost", "lightgbm") and importlib.util.find_spec(top) is None:
                continue  # a fixed list for libraries this machine does not have
            obj = _resolve(name)
            assert obj is not None, f"{name} does not exist"
            assert not isinstance(obj, ModuleType), f"{name} is a module"
            module = getattr(obj, "__module__", "") or ""
            assert not BANNED.search(module), f"{name} comes from {module}"
            if isinstance(obj, type):
                assert name == f"{obj.__module__}.{obj.__qualname__}", f"{name} is a re-export"
                for base in obj.__mro__:
                    assert not BANNED.search(base.__module__), f"{name} inherits {base}"
                for hook in ("__setstate__", "__reduce__", "__reduce_ex__"):
                    fn = obj.__dict__.get(hook)
                    try:
                        src = inspect.getsource(fn) if fn is not None else ""
                    except (OSError, TypeError):
                        src = ""  # C or Cython
                    assert not IO_IN_SOURCE.search(src), f"{name}.{hook} performs I/O"
            else:
                # the only functions are Cython's rebuilders of their own module's classes
                assert name.rpartition(".")[2].startswith(("__pyx_unpickle_", "newObj")), name


@pytest.mark.parametrize(
    "name",
    ["multiprocessing.connection.Client", "sklearn.callback._transport.Client",
     "sklearn.callback._transport.Listener", "sklearn.callback._transport.Thread",
     "torch.nn.modules.activation.F", "torch.nn.modules.module.Path",
     "scipy.sparse._base.np", "sklearn.base.inspect"],
)  # fmt: skip
def test_reexports_and_modules_are_not_allowed(name: str) -> None:
    module, _, attr = name.rpartition(".")
    assert not policy.AllowList().allowed(module, attr)


def _recorded_versions() -> dict[str, str]:
    """The library versions the list was generated from, as its header lines record them."""
    text = (ROOT / "bot" / "checks" / "scanners" / "allowlist.txt").read_text()
    return dict(re.findall(r"^# (scikit-learn|torch) (\S+): \d+ names$", text, re.MULTILINE))


def _installed_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"scikit-learn": version("scikit-learn"), "torch": version("torch")}


def test_the_generated_list_is_current() -> None:
    """Regenerating the list from the installed libraries gives the file in the package."""
    recorded, installed = _recorded_versions(), _installed_versions()
    if recorded != installed:  # a newer library may add classes: the list is regenerated on purpose
        pytest.skip(f"allowlist.txt was generated from {recorded}, this machine has {installed}; "
                    "run python -m bot.checks.scanners.allowlist_build to compare")
    proc = subprocess.run([sys.executable, "-c",
                           "from bot.checks.scanners import allowlist_build as b, policy as p\n"
                           "import warnings; warnings.simplefilter('ignore')\n"
                           "print(len(b.sklearn_names() - p.library_classes()),"
                           " len(b.torch_names() - p.library_classes()))"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=True)  # fmt: skip
    assert proc.stdout.split() == ["0", "0"], proc.stdout


# ----------------------------------------------------------------------- issue 8: no content


SECRETS = {
    "shadow": b"root:$6$SECRETsalt$SECREThash:19000:0:99999:7:::\n",
    "key.pem": b"-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETb3BlbnNzaC1rZXktdjEAAAAA\n",
    "environ": b"SLACK_BOT_TOKEN=SECRETxoxb\x00GITHUB_TOKEN=SECRETghp\x00",
    "int.txt": b"ISECRET not a number\n",  # 'I': read as a protocol-0 pickle INT first
    "gz.bin": b"\x1f\x8bSECRET-not-gzip",
    "elf": b"\x7fELF\x02\x01\x01SECRET" + b"\x00" * 40,
    # 'c' is GLOBAL: read as a protocol-0 pickle, the first two lines are an import
    "config": b"cluster: SECRETprod\npassword: SECRETpw\n(tR.",
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_reports_never_quote_the_files_bytes(tmp_path: Path, name: str) -> None:
    data = SECRETS[name]
    path = s.write(tmp_path / name, data)
    report = scan_paths([str(path)])
    [fr] = report.files
    assert fr.status in ("blocked", "findings")  # never clean
    assert fr.status == "findings" or (fr.error or "").startswith("cannot verify")
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "scan", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)  # fmt: skip
    outputs = [json.dumps(report.to_json()), json.dumps(report.to_sarif()), proc.stdout,
               proc.stderr]  # fmt: skip
    for text in outputs:
        text = text.replace(str(path), "PATH")
        assert "SECRET" not in text
        assert "-----" not in text and "root:" not in text
        assert data[:8].hex() not in text


def test_unknown_files_name_a_type_guess(tmp_path: Path) -> None:
    guesses = {}
    for name, data in SECRETS.items():
        [fr] = scan_paths([str(s.write(tmp_path / name, data))]).files
        guesses[name] = fr.error
    assert "PEM text" in (guesses["key.pem"] or "")
    assert "ELF executable" in (guesses["elf"] or "")
    assert "looks like text" in (guesses["shadow"] or "")

"""Real model files, as the libraries write them, stay clean under the exact allow-list and
the extra format checks (0 false alarms): scikit-learn estimators and pipelines under every
joblib compression, torch state dicts, full modules, training checkpoints and the legacy
format, safetensors, npy/npz."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from bot.checks.scan import scan_paths


def _all_clean(folder: Path) -> None:
    report = scan_paths([str(folder)])
    bad = [(f.path, f.status, f.error, [x.name for x in f.findings]) for f in report.files
           if f.status != "clean"]  # fmt: skip
    assert bad == []
    assert len(report.files) > 0


def test_scikit_learn_models_under_every_joblib_compression(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib", reason="joblib is a test dependency")
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression, Ridge, SGDClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.random((80, 4))
    y = (x[:, 0] > 0.5).astype(int)
    cats = np.column_stack([x, rng.integers(0, 3, size=80)])
    models = {
        "hgb": HistGradientBoostingClassifier(max_iter=5),
        "gb": GradientBoostingClassifier(n_estimators=3),
        "rf": RandomForestClassifier(n_estimators=3, random_state=0),
        "et": ExtraTreesRegressor(n_estimators=3),
        "iso": IsolationForest(n_estimators=5, random_state=0),
        "mlp": MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0),
        "svc": SVC(probability=True, random_state=0),
        "sgd": SGDClassifier(max_iter=5),
        "knn": KNeighborsClassifier(algorithm="ball_tree"),
        "nb": GaussianNB(),
        "tree": DecisionTreeClassifier(),
        "km": KMeans(n_clusters=2, n_init=1, random_state=0),
        "pipe": make_pipeline(StandardScaler(), PCA(2), LogisticRegression()),
        "ridge": Ridge(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in models.items():
            model.fit(x, x[:, 1] if name == "et" or name == "ridge" else y)
        ct = make_pipeline(ColumnTransformer([("num", StandardScaler(), [0, 1, 2, 3]),
                                              ("cat", OneHotEncoder(), [4])]),
                           LogisticRegression()).fit(cats, y)  # fmt: skip
    models["columns"] = ct
    for compress in (0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)):
        tag = compress if isinstance(compress, int) else compress[0]
        for name, model in models.items():
            joblib.dump(model, tmp_path / f"{name}.{tag}.joblib", compress=compress)
    _all_clean(tmp_path)


def test_torch_files_as_torch_writes_them(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="torch writes real checkpoints")
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Dropout(0.1), torch.nn.LazyLinear(3), torch.nn.GELU(), torch.nn.LayerNorm(3),
    )
    net(torch.ones(1, 1, 5, 5))
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    emb = torch.nn.Embedding(10, 4)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 1, 5, 5)).sum().backward()
    opt.step()
    torch.save(net.state_dict(), tmp_path / "state.pt")
    torch.save(net, tmp_path / "module.pt")
    torch.save(lstm, tmp_path / "lstm.pt")
    torch.save(emb, tmp_path / "emb.pt")
    torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
                "loss": 0.25}, tmp_path / "checkpoint.pt")  # fmt: skip
    half = {k: v.half() for k, v in net.state_dict().items() if v.is_floating_point()}
    torch.save(half, tmp_path / "legacy16.pt", _use_new_zipfile_serialization=False)
    torch.save(net.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(4, 4), "b": torch.ones(4, dtype=torch.bfloat16)},
              str(tmp_path / "w.safetensors"))  # fmt: skip
    _all_clean(tmp_path)


def test_numpy_files(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(10.0))
    np.save(tmp_path / "u.npy", np.array(["ab", "cde"]))
    np.savez(tmp_path / "b.npz", a=np.ones(3), b=np.zeros((2, 2), dtype=np.int8))
    np.savez_compressed(tmp_path / "c.npz", a=np.ones(300), s=np.array(["x"]))
    _all_clean(tmp_path)

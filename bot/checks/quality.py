"""Quality metrics accumulated chunk by chunk over the whole data set.

Classifiers: accuracy (= pass_rate), precision, recall and F1 per class and macro (the mean
over every class seen in the labels or the predictions, as scikit-learn's default; a class
never predicted has precision 0, one never in the labels recall 0), and ROC AUC from the
model's scores (binary: the score of class 1; multiclass: the macro mean of one-vs-rest).
Regressors: MAE, RMSE, R^2.

Counts per class are a few integers each; ROC AUC needs every row's scores to rank them, kept
as float32 up to MAX_SCORE_VALUES (rows x classes), which is the only memory that grows with
the data set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.messages import dataset as say

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["ClassTally", "RegressionTally", "ScoreStore", "class_key", "roc_auc"]

MAX_SCORE_VALUES = 64_000_000
# Per-class figures are listed for at most this many classes (macro figures use them all).
MAX_CLASSES_LISTED = 50


def class_key(value: object) -> str:
    """How a class is written in an SLA and a report: 1 (not 1.0), 2.5, fraud."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


@dataclass
class ClassTally:
    """Per-class counts: true positives, times predicted, times in the labels."""

    ids: dict[object, int] = field(default_factory=dict)
    tp: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    actual: list[int] = field(default_factory=list)
    right: int = 0
    rows: int = 0

    def _id(self, value: object) -> int:
        found = self.ids.get(value)
        if found is None:
            found = self.ids[value] = len(self.ids)
            self.tp.append(0)
            self.predicted.append(0)
            self.actual.append(0)
        return found

    def add(self, predicted: npt.NDArray[Any], truth: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Count one chunk (both arrays of numbers, or both of text); returns the truth's ids."""
        import numpy as np

        n = truth.shape[0]
        values, inverse = np.unique(np.concatenate([truth, predicted]), return_inverse=True)
        ids = np.asarray([self._id(v.item() if hasattr(v, "item") else v) for v in values])
        true_ids = ids[inverse[:n]]
        pred_ids = ids[inverse[n:]]
        k = len(self.ids)
        same = true_ids == pred_ids
        for counts, add in (
            (self.tp, np.bincount(true_ids[same], minlength=k)),
            (self.predicted, np.bincount(pred_ids, minlength=k)),
            (self.actual, np.bincount(true_ids, minlength=k)),
        ):
            for i, c in enumerate(add.tolist()):
                counts[i] += c
        self.right += int(same.sum())
        self.rows += n
        return true_ids.astype(np.int32)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if not self.rows:
            return out
        accuracy = self.right / self.rows
        out["accuracy"] = out["pass_rate"] = accuracy
        per: dict[str, tuple[float, float, float]] = {}
        for value, i in self.ids.items():
            tp, pred, act = self.tp[i], self.predicted[i], self.actual[i]
            precision = tp / pred if pred else 0.0
            recall = tp / act if act else 0.0
            f1 = 2 * tp / (pred + act) if pred + act else 0.0
            per[class_key(value)] = (precision, recall, f1)
        k = len(per)
        out["precision_macro"] = sum(p for p, _, _ in per.values()) / k
        out["recall_macro"] = sum(r for _, r, _ in per.values()) / k
        out["f1_macro"] = sum(f for _, _, f in per.values()) / k
        if k <= MAX_CLASSES_LISTED:
            for key, (p, r, f) in sorted(per.items()):
                if say.is_safe_class(key):
                    out[f"precision[{key}]"] = p
                    out[f"recall[{key}]"] = r
                    out[f"f1[{key}]"] = f
        return out


@dataclass
class RegressionTally:
    """Sums for MAE and RMSE; the labels' mean and spread (Chan's merge) for R^2."""

    rows: int = 0
    abs_error: float = 0.0
    sq_error: float = 0.0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, predicted: npt.NDArray[Any], truth: npt.NDArray[Any]) -> None:
        import numpy as np

        n = truth.shape[0]
        if not n:
            return
        error = predicted.astype(np.float64) - truth
        self.abs_error += float(np.abs(error).sum())
        self.sq_error += float(np.square(error).sum())
        mean = float(truth.mean())
        m2 = float(np.square(truth - mean).sum())
        total = self.rows + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.rows * n / total
        self.rows = total

    def metrics(self) -> dict[str, float]:
        if not self.rows:
            return {}
        # Constant labels: scikit-learn's convention (1 if every prediction is exact, else 0).
        constant = 1.0 if self.sq_error == 0 else 0.0
        r2 = 1 - self.sq_error / self.m2 if self.m2 > 0 else constant
        return {
            "mae": self.abs_error / self.rows,
            "rmse": math.sqrt(self.sq_error / self.rows),
            "r2": r2,
        }


@dataclass
class ScoreStore:
    """Every row's class scores and true class id, kept for ROC AUC (bounded, see module)."""

    columns: int
    scores: list[npt.NDArray[Any]] = field(default_factory=list)
    truth: list[npt.NDArray[Any]] = field(default_factory=list)
    probabilities: bool = True
    stored: int = 0
    overflow: bool = False

    def add(self, scores: npt.NDArray[Any], true_ids: npt.NDArray[Any]) -> None:
        import numpy as np

        if self.overflow:
            return
        if self.stored + scores.size > MAX_SCORE_VALUES:
            self.overflow = True
            self.scores.clear()
            self.truth.clear()
            return
        values = scores.astype(np.float32)
        if self.probabilities:
            sums = values.sum(axis=1, dtype=np.float64)
            self.probabilities = bool(
                (values >= 0).all() and (values <= 1).all() and np.allclose(sums, 1, atol=1e-3)
            )
        self.scores.append(values)
        self.truth.append(true_ids)
        self.stored += scores.size


def _softmax(z: npt.NDArray[Any]) -> npt.NDArray[Any]:
    import numpy as np

    shifted = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    out: npt.NDArray[Any] = e / e.sum(axis=1, keepdims=True)
    return out


def binary_auc(scores: npt.NDArray[Any], positive: npt.NDArray[Any]) -> float | None:
    """Area under the ROC curve: the chance that a positive row scores above a negative one,
    ties counted half (Mann-Whitney U); None if one class only.

    Sorts the negatives' scores once and looks every positive up in them, which is the same
    sum as ranking all rows and several times faster than an argsort of every row.
    """
    import numpy as np

    pos_scores = np.sort(scores[positive])  # sorted queries: a cache-friendly search
    neg_scores = np.sort(scores[~positive])
    pos, neg = int(pos_scores.shape[0]), int(neg_scores.shape[0])
    if not pos or not neg:
        return None
    below = np.searchsorted(neg_scores, pos_scores, side="left").sum(dtype=np.float64)
    not_above = np.searchsorted(neg_scores, pos_scores, side="right").sum(dtype=np.float64)
    return float(below + not_above) / 2.0 / (pos * neg)


def roc_auc(store: ScoreStore, tally: ClassTally) -> tuple[float | None, str]:
    """ROC AUC, or None and why it was not measured."""
    import numpy as np

    if store.overflow:
        return None, (
            f"not measured: more than {MAX_SCORE_VALUES} scores (rows x classes) to rank"
        )
    if not store.scores:
        return None, "not measured: no rows"
    scores = np.concatenate(store.scores)
    truth = np.concatenate(store.truth)
    if not store.probabilities:
        scores = _softmax(scores)  # logits: ranks per class are read on probabilities
    k = store.columns
    column_ids = _column_classes(tally, k)
    if column_ids is None:
        return None, (
            f"not measured: the model gives {k} scores per row, which do not match "
            "the classes of the labels"
        )
    if any(i not in column_ids for i in np.unique(truth).tolist()):
        return None, "not measured: some labels have no score column"
    if k == 2:
        auc = binary_auc(scores[:, 1], truth == column_ids[1])
        return (auc, "") if auc is not None else (None, "not measured: one class only")
    areas = []
    for column, class_id in enumerate(column_ids):
        auc = binary_auc(scores[:, column], truth == class_id)
        if auc is None:
            return None, "not measured: a class has no rows (one-vs-rest needs every class)"
        areas.append(auc)
    return sum(areas) / len(areas), ""


def _column_classes(tally: ClassTally, k: int) -> list[int] | None:
    """Which class id each score column is: class number k for column k, or, for named
    classes, the k-th name in sorted order (scikit-learn's `classes_`, which converters keep)."""
    values = list(tally.ids)
    if all(isinstance(v, float) for v in values):
        wanted = [float(i) for i in range(k)]
        if not set(values) <= set(wanted):
            return None
        return [tally.ids.get(v, -1) for v in wanted]
    if len(values) != k:
        return None
    return [tally.ids[v] for v in sorted(values, key=str)]

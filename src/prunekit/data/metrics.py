"""GLUE metrics, scaled to percent as in the GLUE leaderboard."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from prunekit.data.glue import TaskSpec, get_task
from prunekit.errors import DataError

__all__ = ["compute_metrics", "constant_prediction_floor", "primary_metric"]

ArrayLike = np.ndarray | Sequence[int] | Sequence[float]


def primary_metric(task: str | TaskSpec) -> str:
    """Return the name of the metric used to select models for a task.

    Args:
        task: Task name or TaskSpec.

    Returns:
        A key of :func:`compute_metrics` output, e.g. ``"matthews"`` for CoLA.

    Raises:
        DataError: If the task is unknown.
    """
    return get_task(task).primary_metric


def compute_metrics(
    task: str | TaskSpec, predictions: ArrayLike, labels: ArrayLike
) -> dict[str, float]:
    """Score predictions against gold labels with the task's GLUE metrics.

    Args:
        task: Task name or TaskSpec.
        predictions: Predicted class indices, or float scores for STS-B. A trailing axis of
            size 1 (a regression head's output) is accepted.
        labels: Gold class indices, or float scores for STS-B.

    Returns:
        Metric name to value in percent (plain floats): ``matthews`` for CoLA; ``accuracy`` for
        SST-2, MNLI, QNLI, RTE, WNLI; ``accuracy`` and ``f1`` (of class "1") for MRPC and QQP;
        ``pearson`` and ``spearman`` for STS-B.

    Raises:
        DataError: If the inputs are empty, differ in length, are not 1-D, or hold class indices
            outside the task's label range.
    """
    spec = get_task(task)
    preds = _as_1d(predictions, "predictions")
    gold = _as_1d(labels, "labels")
    if len(preds) != len(gold):
        raise DataError(
            f"Got {len(preds)} predictions but {len(gold)} labels for {spec.name}; pass one "
            f"prediction per example."
        )
    if len(preds) == 0:
        raise DataError(f"No predictions to score for {spec.name}; evaluate on a non-empty split.")

    if spec.is_regression:
        if len(preds) < 2:
            raise DataError(
                f"{spec.name} correlations need at least 2 examples, got 1; evaluate on more."
            )
        preds, gold = preds.astype(np.float64), gold.astype(np.float64)
        return {
            "pearson": _correlation(pearsonr, preds, gold),
            "spearman": _correlation(spearmanr, preds, gold),
        }

    preds = _as_classes(preds, "predictions", spec)
    gold = _as_classes(gold, "labels", spec)
    if spec.name == "cola":
        # sklearn returns 0.0 when either side is constant, where the formula would divide by 0.
        return {"matthews": 100.0 * float(matthews_corrcoef(gold, preds))}
    out = {"accuracy": 100.0 * float(accuracy_score(gold, preds))}
    if spec.name in ("mrpc", "qqp"):
        # zero_division=0: a model that never predicts "1" scores F1 = 0 instead of warning.
        out["f1"] = 100.0 * float(f1_score(gold, preds, pos_label=1, zero_division=0))
    return out


def constant_prediction_floor(task: str | TaskSpec, labels: ArrayLike) -> float:
    """The primary metric of the best constant prediction on ``labels``: what a model that
    collapsed to one answer scores (the majority class's accuracy; MRPC's F1 of "paraphrase"
    for every pair, 81.2 on dev; 0 for MCC and correlations). A pruned model at or below it
    has learned nothing, however close its number looks to the dense model's.
    """
    spec = get_task(task)
    gold = _as_1d(labels, "labels")
    name = primary_metric(spec)
    if spec.is_regression:
        return compute_metrics(spec, np.zeros(len(gold)), gold)[name]
    return max(
        compute_metrics(spec, np.full(len(gold), c), gold)[name] for c in range(spec.num_labels)
    )


def _as_1d(values: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(
            f"{what} must be one value per example, got shape {arr.shape}; take the argmax of "
            f"logits (or squeeze regression outputs) first."
        )
    return arr


def _as_classes(arr: np.ndarray, what: str, spec: TaskSpec) -> np.ndarray:
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    ok = np.issubdtype(arr.dtype, np.number)
    # Float arrays of whole numbers (e.g. from a tensor cast) are accepted; nan fails here.
    ok = ok and bool(np.all(arr == np.round(arr)) and np.all((arr >= 0) & (arr < spec.num_labels)))
    if not ok:
        raise DataError(
            f"{what} for {spec.name} must be class indices 0..{spec.num_labels - 1}; map label "
            f"strings through TaskSpec.labels and take the argmax of logits."
        )
    return arr.astype(np.int64)


def _correlation(fn: Callable, preds: np.ndarray, gold: np.ndarray) -> float:
    # A constant side has zero variance, so r is 0/0; scipy warns and returns nan, which would
    # poison model selection (nan compares false to everything). Such a model explains none of
    # the variance, so report 0. So does a diverged model's NaN or inf output: scipy would
    # return nan, which reports would average and never flag as collapsed.
    if not np.all(np.isfinite(preds)) or np.ptp(preds) == 0 or np.ptp(gold) == 0:
        return 0.0
    return 100.0 * float(fn(preds, gold)[0])

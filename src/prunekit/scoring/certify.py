"""Certifying a metric drop on held-out examples: the paired bootstrap upper bound.

A search that picks the head set scoring best on its examples overfits them: the drop it sees
is optimistic. A certificate is therefore measured on a disjoint certify part, and states a
one-sided upper bound on the drop: resample the certify examples with replacement, recompute
``metric(reference) - metric(pruned)`` on the same resample each time (paired, so example
difficulty cancels), and take the ``confidence`` quantile. Any GLUE metric works (accuracy, F1,
MCC, correlations) because the metric itself is recomputed per resample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from prunekit.data import TaskSpec, compute_metrics, primary_metric

__all__ = ["DropBound", "bootstrap_drop_bound"]


@dataclass(frozen=True)
class DropBound:
    reference: float  # metric of the reference predictions on all certify examples
    metric: float  # metric of the pruned predictions
    drop: float  # reference - metric
    upper_bound: float  # one-sided bootstrap upper bound on the drop
    confidence: float
    samples: int
    examples: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _predictions(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    return logits[:, 0] if task.is_regression else logits.argmax(-1)


def bootstrap_drop_bound(
    task: TaskSpec,
    reference_logits: np.ndarray,
    logits: np.ndarray,
    labels: np.ndarray,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> DropBound:
    """The drop of ``task``'s primary metric from ``reference_logits`` to ``logits`` on these
    examples, with its one-sided ``confidence`` paired-bootstrap upper bound (seeded)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    name = primary_metric(task)
    ref_pred, new_pred = _predictions(task, reference_logits), _predictions(task, logits)

    def metric(predictions: np.ndarray, index: np.ndarray | slice) -> float:
        return compute_metrics(task, predictions[index], labels[index])[name]

    everything = slice(None)
    reference, pruned = metric(ref_pred, everything), metric(new_pred, everything)
    rng = np.random.default_rng(seed)
    n = len(labels)
    drops = np.empty(samples)
    for i in range(samples):
        index = rng.integers(0, n, n)
        drops[i] = metric(ref_pred, index) - metric(new_pred, index)
    # A degenerate resample (constant predictions) can give NaN correlations; they say nothing.
    drops = drops[~np.isnan(drops)]
    bound = float(np.quantile(drops, confidence)) if len(drops) else float("inf")
    return DropBound(
        reference=reference,
        metric=pruned,
        drop=reference - pruned,
        upper_bound=max(bound, reference - pruned),
        confidence=confidence,
        samples=samples,
        examples=n,
    )

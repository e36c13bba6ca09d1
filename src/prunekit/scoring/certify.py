"""Certifying a metric drop on held-out examples: the paired bootstrap upper bound.

A search that picks the head set scoring best on its examples overfits them: the drop it sees
is optimistic. A certificate is therefore measured on a disjoint certify part, and states a
one-sided upper bound on the drop: resample the certify examples with replacement, recompute
``metric(reference) - metric(pruned)`` on the same resample each time (paired, so example
difficulty cancels), and take the ``confidence`` quantile. Any GLUE metric works (accuracy, F1,
MCC, correlations) because the metric itself is recomputed per resample.

Small-sample correction (OUR CHOICE, ``harm_examples``): a resample can only show changes the
certify part contains, so when no prediction changed the plain bootstrap bounds the drop at 0,
although the unseen examples may well change (0 changes in n bound the change rate by about
3/n at 95%, the rule of three). For classification tasks the resampled pool therefore holds
``harm_examples`` (default 1) extra example that the reference gets right and the pruned model
wrong; with none changed this gives about the rule of three, and with many changes it moves the
bound by about one example. Regression predictions always differ, so STS-B gets none.
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
    harm_examples: int = 1,
) -> DropBound:
    """The drop of ``task``'s primary metric from ``reference_logits`` to ``logits`` on these
    examples, with its one-sided ``confidence`` paired-bootstrap upper bound (seeded), the
    pool holding ``harm_examples`` harmful pseudo-examples for classification tasks."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    name = primary_metric(task)
    ref_pred, new_pred = _predictions(task, reference_logits), _predictions(task, logits)
    n = len(labels)
    reference = compute_metrics(task, ref_pred, labels)[name]
    pruned = compute_metrics(task, new_pred, labels)[name]
    pool_ref, pool_new, pool_labels = ref_pred, new_pred, np.asarray(labels)
    if not task.is_regression and harm_examples > 0:
        # the most frequent label, which the reference gets right and the pruned model not
        label = np.bincount(pool_labels.astype(int), minlength=2).argmax()
        wrong = 1 if label == 0 else 0
        pool_ref = np.concatenate([ref_pred, np.full(harm_examples, label)])
        pool_new = np.concatenate([new_pred, np.full(harm_examples, wrong)])
        pool_labels = np.concatenate([pool_labels, np.full(harm_examples, label)])
    rng = np.random.default_rng(seed)
    size = len(pool_labels)
    drops = np.empty(samples)
    for i in range(samples):
        index = rng.integers(0, size, size)
        drops[i] = (
            compute_metrics(task, pool_ref[index], pool_labels[index])[name]
            - compute_metrics(task, pool_new[index], pool_labels[index])[name]
        )
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

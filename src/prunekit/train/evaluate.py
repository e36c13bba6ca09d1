"""Evaluation: predictions over a dataset and the task's metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from prunekit.data import (
    SPLIT_SEED,
    TaskData,
    TaskSpec,
    by_length,
    compute_metrics,
    constant_prediction_floor,
    primary_metric,
)

__all__ = ["EvalResult", "evaluate", "evaluate_splits", "predict"]


@dataclass(frozen=True)
class EvalResult:
    task: str
    split: str
    metrics: dict[str, float]
    primary: float
    examples: int
    constant: float | None = None  # the primary metric of the best constant prediction

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "split": self.split,
            "metrics": self.metrics,
            "primary": self.primary,
            "examples": self.examples,
            "constant": self.constant,
        }


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataset: Dataset,
    collate: Callable[[list[dict]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    sort_by_length: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits [N, C], labels [N])`` in dataset order, computed in `by_length` order (less
    padding) unless ``sort_by_length`` is off."""
    model.eval()
    device = next(model.parameters()).device
    order = by_length(dataset) if sort_by_length else None
    ordered = Subset(dataset, order) if order is not None else dataset
    logits, labels = [], []
    for batch in DataLoader(ordered, batch_size=batch_size, collate_fn=collate):
        labels.append(batch.pop("labels").numpy())
        batch = {k: v.to(device) for k, v in batch.items()}
        logits.append(model(**batch).logits.float().cpu().numpy())
    all_logits, all_labels = np.concatenate(logits), np.concatenate(labels)
    if order is None:
        return all_logits, all_labels
    back = np.argsort(order)  # row i of the sorted pass is example order[i]
    return all_logits[back], all_labels[back]


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    collate: Callable[[list[dict]], dict[str, torch.Tensor]],
    task: TaskSpec,
    split: str,
    batch_size: int = 64,
) -> EvalResult:
    """Metrics of ``model`` on ``dataset`` (all values x100, as in GLUE papers)."""
    logits, labels = predict(model, dataset, collate, batch_size)
    predictions = logits[:, 0] if task.is_regression else logits.argmax(-1)
    metrics = compute_metrics(task, predictions, labels)
    return EvalResult(
        task=task.name,
        split=split,
        metrics=metrics,
        primary=metrics[primary_metric(task)],
        examples=len(labels),
        constant=constant_prediction_floor(task, labels) if len(labels) > 1 else None,
    )


def evaluate_splits(
    model: nn.Module, data: TaskData, splits: tuple[str, ...], max_samples: int | None = None
) -> dict[str, dict]:
    """`evaluate` on several splits of one task: ``{split: EvalResult.to_dict()}``.

    ``max_samples`` caps each split with the same subset whatever the run's seed, so a spread
    over seeds is the models', not the draw of examples'."""
    return {
        s: evaluate(
            model, data.dataset(s, max_samples, SPLIT_SEED), data.collate, data.task, s
        ).to_dict()
        for s in splits
    }

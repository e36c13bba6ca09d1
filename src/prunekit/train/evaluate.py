"""Evaluation: predictions over a dataset and the task's metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunekit.data import TaskData, TaskSpec, compute_metrics, primary_metric

__all__ = ["EvalResult", "evaluate", "evaluate_splits", "predict"]


@dataclass(frozen=True)
class EvalResult:
    task: str
    split: str
    metrics: dict[str, float]
    primary: float
    examples: int

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "split": self.split,
            "metrics": self.metrics,
            "primary": self.primary,
            "examples": self.examples,
        }


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataset: Dataset,
    collate: Callable[[list[dict]], dict[str, torch.Tensor]],
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """``(logits [N, C], labels [N])`` in dataset order."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate):
        labels.append(batch.pop("labels").numpy())
        batch = {k: v.to(device) for k, v in batch.items()}
        logits.append(model(**batch).logits.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(labels)


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
    )


def evaluate_splits(
    model: nn.Module, data: TaskData, splits: tuple[str, ...], max_samples: int | None = None
) -> dict[str, dict]:
    """`evaluate` on several splits of one task: ``{split: EvalResult.to_dict()}``."""
    return {
        s: evaluate(model, data.dataset(s, max_samples), data.collate, data.task, s).to_dict()
        for s in splits
    }

"""Recovery: fine-tune a pruned model in place, optionally distilling from its unpruned self."""

from __future__ import annotations

from torch import nn

from prunekit.data import TaskData
from prunekit.train.distill import DistillConfig, make_distillation_loss
from prunekit.train.extras import StepCallback
from prunekit.train.finetune import TrainConfig, TrainResult, finetune

__all__ = ["recover", "recovery_steps"]


def recover(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig,
    max_samples: int | None = None,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Fine-tune the pruned ``model`` on the train split (KD from ``teacher`` if ``distill``)."""
    loss_fn = None
    if distill is not None:
        if teacher is None:
            raise ValueError("distillation needs the unpruned teacher")
        loss_fn = make_distillation_loss(teacher, distill, data.task.is_regression)
    train_set = data.dataset("train", max_samples)
    return finetune(model, train_set, data.collate, config, loss_fn=loss_fn, on_step=on_step)


def recovery_steps(data: TaskData, config: TrainConfig, max_samples: int | None = None) -> int:
    """Optimizer steps `recover` takes with these settings (one process): the budget that
    `compare` gives every method, whether it recovers or trains weights itself."""
    if config.max_steps is not None:
        return config.max_steps
    examples = len(data.dataset("train", max_samples))
    return -(-examples // config.batch_size) * config.epochs

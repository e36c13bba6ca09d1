"""Recovery: fine-tune a pruned model in place, optionally distilling from its unpruned self."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from prunekit.data import TaskData, train_examples_digest
from prunekit.errors import ConfigError
from prunekit.models.memo import weights_digest
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
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Fine-tune the pruned ``model`` on the train split (KD from ``teacher`` if ``distill``).

    ``checkpoint_dir``: checkpoints there, resumed by a rerun that recovers the same weights
    (and teacher) on the same examples, and kept when done: the caller deletes the folder once
    its output is saved, so a kill while saving costs nothing."""
    loss_fn = None
    if distill is not None:
        if teacher is None:
            raise ValueError("distillation needs the unpruned teacher")
        loss_fn = make_distillation_loss(teacher, distill, data.task.is_regression)
    train_set = data.dataset("train", max_samples)
    start = None
    if checkpoint_dir is not None:  # what the run starts from: another pruned model starts over
        start = {
            "weights": weights_digest(model),
            "teacher": weights_digest(teacher) if loss_fn is not None else None,
            "distill": distill.model_dump(mode="json") if distill is not None else None,
            "examples": train_examples_digest(data.task, data.data_dir),
            "subset": [data.seed, max_samples, data.max_seq_length],
        }
        if config.checkpoint_every is None:  # one epoch's end is often the only one: ~10 more
            steps = recovery_steps(data, config, max_samples)
            config = config.model_copy(update={"checkpoint_every": max(1, steps // 10)})
    return finetune(
        model,
        train_set,
        data.collate,
        config,
        checkpoint_dir,
        resume=checkpoint_dir is not None,
        loss_fn=loss_fn,
        on_step=on_step,
        start=start,
        keep_checkpoint=checkpoint_dir is not None,
    )


def recovery_steps(data: TaskData, config: TrainConfig, max_samples: int | None = None) -> int:
    """Optimizer steps `recover` takes with these settings (one process): the budget that
    `compare` gives every method, whether it recovers or trains weights itself."""
    if config.max_steps is not None:
        return config.max_steps
    examples = len(data.dataset("train", max_samples))
    batches = -(-examples // config.batch_size)
    if batches < config.accumulation_steps:  # the loop would refuse it only later
        raise ConfigError(
            f"{examples} train examples make {batches} batches of {config.batch_size}, too few "
            f"for one step of {config.accumulation_steps} accumulated batches; lower "
            "accumulation_steps or batch_size"
        )
    return batches // config.accumulation_steps * config.epochs  # as the loop counts them

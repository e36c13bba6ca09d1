"""Recipe `prunekit finetune`: fine-tune an encoder on a GLUE task with the task's dense recipe
(flags override any part of it) and save it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.data import get_task
from prunekit.recipes.common import at_least, step_progress
from prunekit.train import TrainConfig
from prunekit.train.task import FinetuneConfig, finetune_task
from prunekit.train.task_recipes import TaskRecipe, recipe_for

__all__ = ["FinetuneConfig", "TrainConfig", "finetune_config", "run_finetune"]


def finetune_config(
    task: str,
    out: Path,
    model: str = "default",
    data_dir: Path | None = None,
    seed: int = 0,
    max_seq_length: int | None = None,
    max_train_samples: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    **train: Any,
) -> FinetuneConfig:
    """``task``'s recipe with every given (not None) setting on top; ``max_train_samples=0``
    lifts the recipe's train subset.

    ``train`` takes `TrainConfig` fields (learning_rate, epochs, max_steps, batch_size, ...).
    """
    at_least(2, max_seq_length=max_seq_length)
    at_least(0, max_train_samples=max_train_samples)
    recipe: TaskRecipe = recipe_for(get_task(task).name)
    train_config = recipe.train_config(seed, **train)
    if max_train_samples is None:  # the recipe's subset (MNLI, QQP, QNLI: 20,000)
        max_train_samples = recipe.max_train_samples
    elif max_train_samples == 0:  # as for run and compare: the whole split
        max_train_samples = None
    return FinetuneConfig(
        model=model,
        task=task,
        out=out,
        data_dir=data_dir,
        train=train_config,
        max_seq_length=max_seq_length or recipe.max_seq_length,
        max_train_samples=max_train_samples,
        resume=resume,
        overwrite=overwrite,
    )


def run_finetune(config: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Fine-tune, evaluate on the validation split and dev, save. Returns the metrics record."""
    with step_progress(f"fine-tune {config.task}", progress) as on_step:
        return finetune_task(config, on_step)

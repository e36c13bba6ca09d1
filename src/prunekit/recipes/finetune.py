"""Recipe `prunekit finetune`: fine-tune an encoder on a GLUE task and save it."""

from __future__ import annotations

from typing import Any

from prunekit.recipes.common import step_progress
from prunekit.train import TrainConfig
from prunekit.train.task import FinetuneConfig, finetune_task

__all__ = ["FinetuneConfig", "TrainConfig", "run_finetune"]


def run_finetune(config: FinetuneConfig, progress: bool = True) -> dict[str, Any]:
    """Fine-tune, evaluate on the validation split and dev, save. Returns the metrics record."""
    with step_progress(f"fine-tune {config.task}", progress) as on_step:
        return finetune_task(config, on_step)

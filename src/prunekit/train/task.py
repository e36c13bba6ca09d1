"""Fine-tune an encoder on a GLUE task and save it: the dense model every study starts from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict

from prunekit.data import TaskData, get_task, train_examples_digest
from prunekit.device import describe_device, module_device
from prunekit.models.checkpoint import write_model_files
from prunekit.models.memo import weights_digest
from prunekit.models.sources import DEFAULT_MODEL, load_for_task, resolve_model
from prunekit.outputs import (
    atomic_output_dir,
    check_output_dir,
    checkpoint_dir_for,
    refuse_output_holding,
    write_json,
)
from prunekit.train.batching import order_fields
from prunekit.train.evaluate import evaluate_splits
from prunekit.train.extras import StepCallback
from prunekit.train.finetune import TrainConfig, finetune

__all__ = ["FinetuneConfig", "finetune_task"]

TRAIN_LOG = "train_log.jsonl"


class FinetuneConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_MODEL
    task: str
    out: Path
    data_dir: Path | None = None
    train: TrainConfig = TrainConfig()
    max_seq_length: int = 128
    max_train_samples: int | None = None
    resume: bool = False
    overwrite: bool = False


def finetune_task(config: FinetuneConfig, on_step: StepCallback | None = None) -> dict[str, Any]:
    """Fine-tune, evaluate on the validation split and dev, save ``config.out`` atomically
    (model, ``metrics.json``, ``train_log.jsonl``). Returns the metrics record.

    A killed run resumes from the checkpoints beside ``out`` when ``resume`` is set.
    """
    task = get_task(config.task)
    check_output_dir(config.out, config.overwrite)
    refuse_output_holding(config.out, resolve_model(config.model))
    set_seed(config.train.seed)  # the new classifier head is drawn from the global RNG
    # Missing data fails before the model loads.
    data = TaskData.for_task(
        task, None, config.data_dir, config.train.seed, config.max_seq_length, every_dev_split=True
    )
    model, tokenizer = load_for_task(config.model, task)
    model.config.finetuning_task = task.name
    data = data.with_tokenizer(tokenizer)
    train_set = data.dataset("train", config.max_train_samples)
    checkpoints = checkpoint_dir_for(config.out)
    # what the run starts from: a resume with another model, data or truncation starts over
    start = {
        "weights": weights_digest(model),
        "examples": train_examples_digest(task, config.data_dir),
        "max_seq_length": config.max_seq_length,
    }
    result = finetune(
        model,
        train_set,
        data.collate,
        config.train,
        checkpoint_dir=checkpoints,
        resume=config.resume,
        on_step=on_step,
        start=start,
        keep_checkpoint=True,  # deleted below, once the model and its metrics are saved
    )
    record = {
        "task": task.name,
        "model": config.model,
        "train_examples": len(train_set),
        "train_examples_digest": start["examples"],  # the dense cache checks it on reuse
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "train_seconds": round(result.seconds, 2),
        "device": describe_device(module_device(model)),
        "final_loss": result.final_loss,
        "config": config.model_dump(mode="json"),
    }
    record |= evaluate_splits(model, data, ("validation", *data.task.dev_splits))
    with atomic_output_dir(config.out, config.overwrite, shared=True) as tmp:
        write_model_files(model, tmp, tokenizer)
        write_json(tmp / "metrics.json", record)
        write_json(tmp / "recipe.json", _effective_recipe(config))
        (tmp / TRAIN_LOG).write_text("".join(json.dumps(line) + "\n" for line in result.log))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record


def _effective_recipe(config: FinetuneConfig) -> dict[str, Any]:
    """What made these weights, beside them: the dense cache's key is computed from it."""
    train = config.train.model_dump(exclude={"checkpoint_every", "log_every", "device"})
    return {
        "model": config.model,
        "task": config.task,
        "max_seq_length": config.max_seq_length,
        "max_train_samples": config.max_train_samples,
        **train,
        **order_fields(config.train.group_by_length),  # which shuffle: the key has it too
    }

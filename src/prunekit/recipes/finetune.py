"""Recipe: fine-tune an encoder on a GLUE task and save it as a prunekit directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from prunekit.data import get_task, load_examples, make_collate
from prunekit.models.checkpoint import write_model_files
from prunekit.models.sources import DEFAULT_MODEL, load_for_task
from prunekit.outputs import atomic_output_dir, check_output_dir
from prunekit.recipes.common import seed_everything, step_progress, task_dataset, write_json
from prunekit.train import TrainConfig, evaluate, finetune

__all__ = ["FinetuneConfig", "run_finetune"]


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
    progress: bool = True


def checkpoint_dir_for(out: Path) -> Path:
    """Checkpoints live beside the output, which only appears once the run is complete."""
    return out.parent / f".{out.name}.checkpoints"


def run_finetune(config: FinetuneConfig) -> dict:
    """Fine-tune, evaluate on the validation split and dev, save. Returns the metrics record."""
    task = get_task(config.task)
    check_output_dir(config.out, config.overwrite)
    seed_everything(config.train.seed)
    load_examples(
        task, "train", data_dir=config.data_dir
    )  # missing data fails before the model loads
    model, tokenizer = load_for_task(config.model, task)
    model.config.finetuning_task = task.name
    train_set = task_dataset(
        task,
        "train",
        tokenizer,
        config.data_dir,
        config.train.seed,
        config.max_seq_length,
        config.max_train_samples,
    )
    collate = make_collate(tokenizer)
    checkpoints = checkpoint_dir_for(config.out)
    with step_progress(f"fine-tune {task.name}", config.progress) as on_step:
        result = finetune(
            model,
            train_set,
            collate,
            config.train,
            checkpoint_dir=checkpoints,
            resume=config.resume,
            on_step=on_step,
        )
    record = {
        "task": task.name,
        "model": config.model,
        "train_examples": len(train_set),
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "train_seconds": round(result.seconds, 2),
        "final_loss": result.final_loss,
        "config": config.model_dump(mode="json"),
    }
    for split in ("validation", "dev"):
        data = task_dataset(
            task, split, tokenizer, config.data_dir, config.train.seed, config.max_seq_length
        )
        record[split] = evaluate(model, data, collate, task, split).to_dict()
    with atomic_output_dir(config.out, config.overwrite) as tmp:
        write_model_files(model, tmp, tokenizer)
        write_json(tmp / "metrics.json", record)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record

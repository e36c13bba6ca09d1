"""Recipe: decide a plan with a registered method, cut the model, optionally recover, save."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prunekit.data import get_task, make_collate
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.models import apply_plan, current_plan, model_stats
from prunekit.models.checkpoint import write_model_files
from prunekit.models.sources import load_for_task, recorded_task
from prunekit.outputs import atomic_output_dir, check_output_dir
from prunekit.recipes.common import (
    batches_of,
    seed_everything,
    step_progress,
    task_dataset,
    write_json,
)
from prunekit.train import TrainConfig, evaluate, finetune

__all__ = ["PruneConfig", "run_prune"]


class PruneConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    out: Path
    method: str = "random"
    heads: float | None = Field(None, description="fraction of all heads removed")
    keep_heads: int | None = None
    per_layer: bool = False
    min_heads_per_layer: int = 0
    task: str | None = None
    data_dir: Path | None = None
    seed: int = 0
    max_seq_length: int = 128
    search_samples: int | None = None
    recover: TrainConfig | None = None
    recover_max_samples: int | None = None
    evaluate_splits: tuple[str, ...] = ("validation", "dev")
    options: dict[str, Any] = {}
    overwrite: bool = False
    progress: bool = True


def run_prune(config: PruneConfig) -> dict:
    """Returns the record also written to ``out/metrics.json``."""
    method = get_method(config.method)
    check_output_dir(config.out, config.overwrite)
    seed_everything(config.seed)
    task = get_task(config.task or recorded_task(config.model))
    model, tokenizer = load_for_task(config.model, task)
    before = model_stats(model)
    target = head_target(
        current_plan(model),
        config.heads,
        config.keep_heads,
        config.per_layer,
        config.min_heads_per_layer,
    )
    collate = make_collate(tokenizer)

    def datasets(split: str, limit: int | None = None):
        return task_dataset(
            task, split, tokenizer, config.data_dir, config.seed, config.max_seq_length, limit
        )

    record: dict[str, Any] = {"task": task.name, "method": config.method, "seed": config.seed}
    if config.recover is not None or "validation" in config.evaluate_splits:
        record["before"] = {
            s: evaluate(model, datasets(s), collate, task, s).to_dict()
            for s in config.evaluate_splits
        }

    started = time.perf_counter()
    search = datasets("validation", config.search_samples)
    request = PruneRequest(
        model=model,
        plan=current_plan(model),
        target=target,
        seed=config.seed,
        batches=batches_of(search, tokenizer),
        options=dict(config.options),
    )
    plan = method(request)
    record["decision_seconds"] = round(time.perf_counter() - started, 3)
    apply_plan(model, plan)

    if config.evaluate_splits:
        record["after_pruning"] = {
            s: evaluate(model, datasets(s), collate, task, s).to_dict()
            for s in config.evaluate_splits
        }
    if config.recover is not None:
        train_set = datasets("train", config.recover_max_samples)
        started = time.perf_counter()
        with step_progress("recover", config.progress) as on_step:
            finetune(model, train_set, collate, config.recover, on_step=on_step)
        record["recovery_seconds"] = round(time.perf_counter() - started, 2)
        record["after_recovery"] = {
            s: evaluate(model, datasets(s), collate, task, s).to_dict()
            for s in config.evaluate_splits
        }
    after = model_stats(model)
    record["heads"] = {
        "before": before.heads_total,
        "after": after.heads_total,
        "original": after.heads_original,
        "per_layer": after.heads_per_layer,
    }
    record["parameters"] = {
        "before": before.parameters,
        "after": after.parameters,
        "original": after.parameters_original,
    }
    record["config"] = config.model_dump(mode="json")

    with atomic_output_dir(config.out, config.overwrite) as tmp:
        write_model_files(model, tmp, tokenizer)
        plan.write(tmp / "plan.json")
        write_json(tmp / "metrics.json", record)
    return record

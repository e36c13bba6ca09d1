"""Recipe: the main job. Fine-tune -> prune -> recover -> evaluate -> save -> measure.

Stages write into ``out/dense`` and ``out/pruned``; with ``resume`` a finished stage is reused
and an interrupted fine-tune continues from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from prunekit.data import primary_metric
from prunekit.errors import OutputExistsError
from prunekit.models import load, model_stats
from prunekit.models.sources import DEFAULT_MODEL
from prunekit.recipes.bench import speed_table
from prunekit.recipes.common import console, write_json
from prunekit.recipes.finetune import FinetuneConfig, run_finetune
from prunekit.recipes.prune import PruneConfig, run_prune
from prunekit.train import TrainConfig

__all__ = ["RunConfig", "run_main_job"]


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_MODEL
    task: str = "sst2"
    out: Path = Path("runs/demo")
    data_dir: Path | None = None
    method: str = "random"
    heads: float = 0.5
    seed: int = 0
    finetune: TrainConfig = TrainConfig(epochs=1, learning_rate=5e-5)
    max_train_samples: int | None = 8000
    recover: TrainConfig = TrainConfig(epochs=1, learning_rate=5e-5)
    recover_max_samples: int | None = 4000
    bench_rounds: int = 5
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


def run_main_job(config: RunConfig) -> dict[str, Any]:
    out = config.out
    if out.exists() and not (config.resume or config.overwrite):
        raise OutputExistsError(f"{out} already exists; pass --resume to continue or --overwrite")
    if out.exists() and config.overwrite and not config.resume:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    dense_dir, pruned_dir = out / "dense", out / "pruned"

    if not dense_dir.is_dir():
        console.rule(f"1/3 fine-tune {config.model} on {config.task}")
        run_finetune(
            FinetuneConfig(
                model=config.model,
                task=config.task,
                out=dense_dir,
                data_dir=config.data_dir,
                train=config.finetune.model_copy(update={"seed": config.seed}),
                max_train_samples=config.max_train_samples,
                resume=config.resume,
                progress=config.progress,
            )
        )
    if not pruned_dir.is_dir():
        console.rule(f"2/3 prune {config.heads:.0%} of heads ({config.method}) and recover")
        run_prune(
            PruneConfig(
                model=str(dense_dir),
                out=pruned_dir,
                method=config.method,
                heads=config.heads,
                task=config.task,
                data_dir=config.data_dir,
                seed=config.seed,
                recover=config.recover.model_copy(update={"seed": config.seed}),
                recover_max_samples=config.recover_max_samples,
                progress=config.progress,
            )
        )

    console.rule("3/3 measure")

    dense_metrics = json.loads((dense_dir / "metrics.json").read_text())
    pruned_metrics = json.loads((pruned_dir / "metrics.json").read_text())
    models = {"baseline": load(dense_dir), "model": load(pruned_dir)}
    speed = speed_table(models, rounds=config.bench_rounds)
    dense_stats, pruned_stats = (model_stats(m) for m in (models["baseline"], models["model"]))
    summary = {
        "task": config.task,
        "method": config.method,
        "seed": config.seed,
        "dense": {
            "heads": dense_stats.heads_total,
            "parameters": dense_stats.parameters,
            "validation": dense_metrics["validation"]["primary"],
            "dev": dense_metrics["dev"]["primary"],
            "latency_ms": speed["models"]["baseline"]["latency"]["median_s"] * 1e3,
            "throughput": speed["models"]["baseline"]["throughput"]["sequences_per_s"],
        },
        "pruned": {
            "heads": pruned_stats.heads_total,
            "parameters": pruned_stats.parameters,
            "validation_before_recovery": pruned_metrics["after_pruning"]["validation"]["primary"],
            "dev_before_recovery": pruned_metrics["after_pruning"]["dev"]["primary"],
            "validation": pruned_metrics["after_recovery"]["validation"]["primary"],
            "dev": pruned_metrics["after_recovery"]["dev"]["primary"],
            "latency_ms": speed["models"]["model"]["latency"]["median_s"] * 1e3,
            "throughput": speed["models"]["model"]["throughput"]["sequences_per_s"],
        },
        "primary_metric": primary_metric(config.task),
        "speedup": speed["models"]["model"]["speedup"],
        "environment": speed["environment"],
        "paths": {"dense": str(dense_dir), "pruned": str(pruned_dir)},
        "config": config.model_dump(mode="json"),
    }
    write_json(out / "summary.json", summary)
    return summary

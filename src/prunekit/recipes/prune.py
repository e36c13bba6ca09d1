"""Recipe: decide a plan with a registered method, cut the model, optionally recover, save.

The steps (`decide`, `recover`, `evaluate_on`) are shared with the `compare` sweep so that every
method runs through exactly the same code.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from prunekit.methods import HeadTarget, PruneRequest, get_method, head_target
from prunekit.models import apply_plan, current_plan, model_stats
from prunekit.models.checkpoint import write_model_files
from prunekit.models.sources import load_for_task, recorded_task, resolve_model
from prunekit.outputs import atomic_output_dir, check_output_dir
from prunekit.plan import PruningPlan
from prunekit.recipes.common import TaskData, seed_everything, step_progress, write_json
from prunekit.train import TrainConfig, evaluate, finetune, make_distillation_loss

__all__ = ["DistillConfig", "PruneConfig", "run_prune", "decide", "recover", "evaluate_on"]


class DistillConfig(BaseModel):
    """Logit distillation from the unpruned model during recovery."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(2.0, gt=0)
    alpha_kd: float = Field(0.5, ge=0, le=1)

    @property
    def alpha_ce(self) -> float:
        return 1.0 - self.alpha_kd


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
    batch_size: int = 32
    recover: TrainConfig | None = None
    recover_max_samples: int | None = None
    distill: DistillConfig | None = None
    evaluate_splits: tuple[str, ...] = ("validation", "dev")
    eval_max_samples: int | None = None
    options: dict[str, Any] = {}
    overwrite: bool = False
    progress: bool = True


def decide(
    model: nn.Module,
    method: str,
    target: HeadTarget,
    data: TaskData,
    seed: int,
    options: dict[str, Any] | None = None,
    search_samples: int | None = None,
    progress: bool = False,
) -> tuple[PruningPlan, float]:
    """Run a method on ``model`` (not modified unless the method trains weights).

    Returns the plan and the seconds spent deciding.
    """
    fn = get_method(method)
    # A sample as large as the split is the split: no subsample, nothing to re-verify on.
    subsample = search_samples is not None and search_samples < len(data.dataset("validation"))
    started = time.perf_counter()
    with step_progress(f"{method} decision", progress) as on_step:

        def on_progress(info: dict[str, float]) -> None:
            if on_step is not None and "step" in info:
                note = ""
                if "expected_open_heads" in info:
                    note = f"open heads {info['expected_open_heads']:.1f} -> {info['budget']:.0f}"
                if "phase" in info:
                    note = info["phase"]
                if "largest_feasible" in info:
                    note = f"largest set within budget: {info['largest_feasible']:.0f} heads"
                on_step(int(info["step"]), int(info["steps"]), info.get("loss"), note)

        request = PruneRequest(
            model=model,
            plan=current_plan(model),
            target=target,
            seed=seed,
            batches=data.batches("validation", search_samples if subsample else None),
            train_batches=data.batches("train", shuffle_seed=seed),
            full_batches=data.batches("validation") if subsample else None,
            task=data.task,
            options=dict(options or {}),
            on_progress=on_progress,
        )
        plan = fn(request)
    return plan, time.perf_counter() - started


def recover(
    model: nn.Module,
    data: TaskData,
    config: TrainConfig,
    max_samples: int | None = None,
    teacher: nn.Module | None = None,
    distill: DistillConfig | None = None,
    progress: bool = False,
) -> float:
    """Fine-tune the pruned ``model`` in place (with KD from ``teacher`` if ``distill``)."""
    loss_fn = None
    if distill is not None:
        if teacher is None:
            raise ValueError("distillation needs the unpruned teacher")
        loss_fn = make_distillation_loss(
            teacher,
            distill.temperature,
            distill.alpha_kd,
            distill.alpha_ce,
            data.task.is_regression,
        )
    train_set = data.dataset("train", max_samples)
    with step_progress("recover", progress) as on_step:
        result = finetune(model, train_set, data.collate, config, loss_fn=loss_fn, on_step=on_step)
    return result.seconds


def evaluate_on(
    model: nn.Module, data: TaskData, splits: tuple[str, ...], max_samples: int | None = None
) -> dict[str, dict]:
    return {
        s: evaluate(model, data.dataset(s, max_samples), data.collate, data.task, s).to_dict()
        for s in splits
    }


def run_prune(config: PruneConfig) -> dict:
    """Returns the record also written to ``out/metrics.json``."""
    get_method(config.method)  # unknown methods fail before any loading
    check_output_dir(config.out, config.overwrite)
    resolve_model(config.model)  # a missing model directory is reported before anything else
    seed_everything(config.seed)
    task_name = config.task or recorded_task(config.model)
    data = TaskData.for_task(
        task_name, None, config.data_dir, config.seed, config.max_seq_length, config.batch_size
    )
    model, tokenizer = load_for_task(config.model, data.task)
    data = data.with_tokenizer(tokenizer)
    before = model_stats(model)
    if config.heads is None and config.keep_heads is None and config.method == "astar":
        target = HeadTarget(keep=current_plan(model).heads_kept)  # budget mode: A* decides
    else:
        target = head_target(
            current_plan(model),
            config.heads,
            config.keep_heads,
            config.per_layer,
            config.min_heads_per_layer,
        )
    teacher = copy.deepcopy(model) if config.distill is not None else None

    record: dict[str, Any] = {"task": data.task.name, "method": config.method, "seed": config.seed}
    record["before"] = evaluate_on(model, data, config.evaluate_splits, config.eval_max_samples)
    plan, seconds = decide(
        model,
        config.method,
        target,
        data,
        config.seed,
        config.options,
        config.search_samples,
        config.progress,
    )
    record["decision_seconds"] = round(seconds, 3)
    apply_plan(model, plan)
    record["after_pruning"] = evaluate_on(
        model, data, config.evaluate_splits, config.eval_max_samples
    )
    certificate = _certificate(plan, record)
    if config.recover is not None:
        seconds = recover(
            model,
            data,
            config.recover,
            config.recover_max_samples,
            teacher,
            config.distill,
            config.progress,
        )
        record["recovery_seconds"] = round(seconds, 2)
        record["after_recovery"] = evaluate_on(
            model, data, config.evaluate_splits, config.eval_max_samples
        )
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
        if certificate is not None:
            write_json(tmp / "certificate.json", certificate)
    return record


def _certificate(plan: PruningPlan, record: dict[str, Any]) -> dict[str, Any] | None:
    """A method's certificate (A*) plus the dev-set drop, reported separately and never used."""
    certificate = plan.meta.get("certificate")
    if certificate is None or "dev" not in record["before"]:
        return None
    before = record["before"]["dev"]["primary"]
    after = record["after_pruning"]["dev"]["primary"]
    dev = {
        "before": before,
        "after": after,
        "drop": before - after,
        "violation": before - after > certificate["budget"],
    }
    return {**certificate, "dev": dev}

"""Recipe `prunekit prune`: decide a plan with a registered method, cut the model, optionally
recover, save. Every decision reads the method's metadata, never its name."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prunekit.data import TaskData
from prunekit.device import resolve_device
from prunekit.errors import ConfigError
from prunekit.methods import (
    DEFAULT_HEAD_METHOD,
    HeadTarget,
    MethodInfo,
    decide,
    get_method,
    head_target,
    read_method_options,
)
from prunekit.models import apply_plan, current_plan, model_stats
from prunekit.models.checkpoint import write_model_files
from prunekit.models.sources import load_for_task, recorded_task, resolve_model
from prunekit.outputs import (
    atomic_output_dir,
    check_output_dir,
    checkpoint_dir_for,
    refuse_output_holding,
    write_json,
)
from prunekit.recipes.common import (
    console,
    method_progress,
    method_warnings,
    seed_everything,
    step_progress,
)
from prunekit.train import DistillConfig, TrainConfig, evaluate_splits, recover
from prunekit.train.task_recipes import cached_dense_model

# DistillConfig and read_method_options are re-exported for the CLI, which only calls recipes.
__all__ = ["DistillConfig", "PruneConfig", "read_method_options", "run_prune"]


class PruneConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    out: Path
    method: str = DEFAULT_HEAD_METHOD
    heads: float | None = Field(None, description="fraction of all heads removed")
    keep_heads: int | None = None
    per_layer: bool = False
    min_heads_per_layer: int = Field(0, ge=0)
    task: str | None = None
    data_dir: Path | None = None
    seed: int = 0
    max_seq_length: int = Field(128, ge=2)
    search_samples: int | None = Field(None, ge=1)
    train_samples: int | None = Field(None, ge=1, description="train subset for methods")
    batch_size: int = Field(32, ge=1)
    recover: TrainConfig | None = None
    recover_max_samples: int | None = Field(None, ge=1)
    distill: DistillConfig | None = None
    evaluate_splits: tuple[str, ...] = ("validation", "dev")
    eval_max_samples: int | None = Field(None, ge=1)
    options: dict[str, Any] = {}
    allow_untrained_head: bool = False
    teacher: str | None = Field(None, description="fine-tuned model to distil from")
    device: str = "auto"
    overwrite: bool = False
    progress: bool = True


def run_prune(config: PruneConfig) -> dict:
    """Returns the record also written to ``out/metrics.json``."""
    info = get_method(config.method)
    # Bad targets, then bad options, fail before any loading.
    counted = config.heads is not None or config.keep_heads is not None
    info.check_target(counted, config.per_layer, config.min_heads_per_layer)
    info.parse_config(config.options)
    info.check_modes(config.options, counted, deciding=not counted)
    _refuse_unused(config, info)
    check_output_dir(config.out, config.overwrite)
    source = resolve_model(config.model)  # a missing model directory is reported first
    refuse_output_holding(config.out, source, same=True)
    if config.teacher is not None:  # read, never rewritten: not even in place
        refuse_output_holding(config.out, resolve_model(config.teacher))
    device = resolve_device(config.device)
    seed_everything(config.seed)
    task_name = config.task or recorded_task(config.model)
    data = TaskData.for_task(
        task_name, None, config.data_dir, config.seed, config.max_seq_length, config.batch_size
    )
    model, tokenizer = load_for_task(config.model, data.task, info.attn_implementation)
    _check_head_is_trained(model, info, config)
    model.to(device)
    data = data.with_tokenizer(tokenizer)
    before = model_stats(model)
    target = _target(model, info, config)
    teacher = _teacher(model, info, config, data)
    work = checkpoint_dir_for(config.out)

    record: dict[str, Any] = {"task": data.task.name, "method": config.method, "seed": config.seed}
    record["before"] = evaluate_splits(model, data, config.evaluate_splits, config.eval_max_samples)
    with method_progress(f"{config.method} decision", config.progress) as on_progress:
        result = decide(
            model,
            config.method,
            target,
            data,
            config.seed,
            config.options,
            config.search_samples,
            teacher=teacher,
            train_samples=config.train_samples,
            state_dir=work / "method",
            cache_dir=work / "cache",
            on_progress=on_progress,
            keep_trained_state=True,  # a kill before the output is written keeps the training
        )
    record["decision_seconds"] = result.record["decision_seconds"]
    record["method_warnings"] = method_warnings(result.record, config.method)
    record["method_trained_weights"] = result.trained_weights
    pruned = apply_plan(result.model or model, result.plan)
    record["after_pruning"] = evaluate_splits(
        pruned, data, config.evaluate_splits, config.eval_max_samples
    )
    certificate = _certificate(result.record.get("certificate"), record)
    if config.recover is not None:
        with step_progress("recover", config.progress) as on_step:
            trained = recover(
                pruned,
                data,
                config.recover.model_copy(update={"device": config.device, "seed": config.seed}),
                config.recover_max_samples,
                teacher,
                config.distill,
                on_step,
                checkpoint_dir=work / "recover",  # a killed recovery resumes on a rerun
            )
        record["recovery_seconds"] = round(trained.seconds, 2)
        record["after_recovery"] = evaluate_splits(
            pruned, data, config.evaluate_splits, config.eval_max_samples
        )
    after = model_stats(pruned)
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

    with atomic_output_dir(config.out, config.overwrite, shared=True) as tmp:
        write_model_files(pruned, tmp, tokenizer, method_plan=result.plan)
        write_json(tmp / "metrics.json", record)
        if certificate is not None:
            write_json(tmp / "certificate.json", certificate)
        if result.record.get("loss_curve"):
            write_json(tmp / "method_log.json", result.record["loss_curve"])
    shutil.rmtree(work, ignore_errors=True)
    return record


def _refuse_unused(config: PruneConfig, info: MethodInfo) -> None:
    """Settings this run would never read are refused: a user who gave them expects them used."""
    if config.recover is None and config.recover_max_samples is not None:
        raise ConfigError("--recover-max-samples applies to recovery; add --recover-epochs E")
    if config.teacher is not None and not (info.uses_teacher(config.options) or config.distill):
        optional = "; or its own KD, --method-option distill=true" if info.needs_teacher else ""
        raise ConfigError(
            f"--teacher is read by recovery with --distill, or by methods that distil; "
            f"{config.method} with these settings never reads it (add --distill{optional})"
        )
    reads = {"train": "the train split", "validation": "the validation split"}
    for flag, split, value in (
        ("--train-samples", "train", config.train_samples),
        ("--search-samples", "validation", config.search_samples),
    ):
        if value is not None and split not in info.needs_data:
            splits = " and ".join(reads[s] for s in info.needs_data) or "no data"
            raise ConfigError(
                f"{flag} subsets {reads[split]} for the methods that read it; "
                f"{config.method} reads {splits}, so drop {flag}"
            )


def _teacher(model, info: MethodInfo, config: PruneConfig, data: TaskData):
    """The unpruned model to distil from: ``--teacher``; for a method that prunes the
    pre-trained model, the task's fine-tuned dense model from the dense cache (fine-tuned
    there if missing); otherwise a frozen copy of the model being pruned."""
    if not (info.uses_teacher(config.options) or config.distill):
        return None  # magnitude or movement without their KD build none either
    device = resolve_device(config.device)
    if config.teacher is not None:
        teacher = load_for_task(config.teacher, data.task, info.attn_implementation)[0]
        if getattr(teacher, "prunekit_new_modules", None):
            raise ConfigError(
                f"--teacher {config.teacher} was never fine-tuned for {data.task.name} (its "
                "classifier would be random); give a fine-tuned model"
            )
        return teacher.to(device)
    if info.prunes_pretrained:
        console.rule(f"teacher: the dense {data.task.name} model from the dense cache")
        with step_progress("fine-tune teacher (once, cached)", config.progress) as on_step:
            dense = cached_dense_model(
                config.model,
                data.task.name,
                config.seed,
                None,
                config.data_dir,
                device=config.device,
                on_step=on_step,
            )
        return load_for_task(str(dense), data.task, info.attn_implementation)[0].to(device)
    return copy.deepcopy(model)


def _target(model, info: MethodInfo, config: PruneConfig) -> HeadTarget:
    plan = current_plan(model)
    if config.heads is None and config.keep_heads is None:  # budget mode: the method decides
        if "heads" in info.targets and config.min_heads_per_layer >= max(plan.heads_per_layer):
            raise ConfigError(
                f"--at-least-heads-per-layer {config.min_heads_per_layer} leaves no head to "
                f"remove (layers keep at most {max(plan.heads_per_layer)}); lower it"
            )
        return HeadTarget(keep=plan.heads_kept, min_per_layer=config.min_heads_per_layer)
    target = head_target(
        plan, config.heads, config.keep_heads, config.per_layer, config.min_heads_per_layer
    )
    if info.decides_count and target.keep >= plan.heads_kept:
        # a target that keeps every head is how budget mode is asked for: refuse the ambiguity
        raise ConfigError(
            f"--heads/--keep-heads keep all {plan.heads_kept} heads, so {config.method} would "
            "remove nothing; give a fraction above 0, or drop them for its budget mode"
        )
    return target


def _check_head_is_trained(model, info: MethodInfo, config: PruneConfig) -> None:
    """Pruning a model whose classifier was just created measures noise: refuse, unless the
    method prunes pre-trained models by design or the user says so."""
    new = getattr(model, "prunekit_new_modules", None)
    if not new or info.prunes_pretrained:
        return
    if not config.allow_untrained_head:
        raise ConfigError(
            f"{config.model} was never fine-tuned for this task ({', '.join(new)} would be "
            "random, so every metric is meaningless); fine-tune it first with prunekit "
            f"finetune --model {config.model} --task ..., or pass --allow-untrained-head"
        )
    console.print(
        f"[bold red]warning:[/] {', '.join(new)} initialised at random "
        "(--allow-untrained-head): metrics before recovery are chance level"
    )


def _certificate(certificate: dict[str, Any] | None, record: dict[str, Any]) -> dict | None:
    """A method's certificate plus the dev-set drop, reported separately and never used."""
    if certificate is None or "dev" not in record["before"]:
        return certificate
    before = record["before"]["dev"]["primary"]
    after = record["after_pruning"]["dev"]["primary"]
    dev = {
        "before": before,
        "after": after,
        "drop": before - after,
        # no budget: a head count searched without one (A*), nothing to violate
        "violation": certificate.get("budget") is not None
        and before - after > certificate["budget"],
    }
    return {**certificate, "dev": dev}

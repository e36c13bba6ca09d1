"""Recipe `prunekit run`, the main job: fine-tune -> prune -> recover -> evaluate -> save ->
measure.

The dense model is fine-tuned with the task's recipe (`TASK_RECIPES`) on at most
``max_train_samples`` train examples (20,000 by default, so the job fits in 15 minutes on a
laptop CPU; only SST-2, QQP, MNLI and QNLI are larger). Half the heads are then removed by
``method`` (`DEFAULT_HEAD_METHOD`, L0: the leader of the three-seed comparison in
benchmarks/results/head_baselines at 50% with recovery), and by ``floor`` (random) beside it,
each recovered with the same budget. Stages write into ``out/dense``, ``out/pruned`` and
``out/floor``; with ``resume`` a finished stage is reused and an interrupted fine-tune continues
from its last checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prunekit.bench import speed_table, timing_dtype
from prunekit.data import TaskData, get_task, primary_metric, train_examples_digest
from prunekit.device import resolve_device
from prunekit.errors import ConfigError, OutputExistsError
from prunekit.methods import DEFAULT_HEAD_METHOD, decide, get_method, head_target
from prunekit.models import apply_plan, current_plan, load, load_tokenizer, model_stats
from prunekit.models.checkpoint import write_model_files
from prunekit.models.sources import DEFAULT_MODEL, load_for_task, model_dir, resolve_model
from prunekit.outputs import (
    atomic_output_dir,
    check_output_dir,
    refuse_output_holding,
    write_json,
)
from prunekit.recipes.common import (
    check_head_method,
    console,
    method_progress,
    method_warnings,
    seed_everything,
    step_progress,
)
from prunekit.train import TrainConfig, evaluate_splits, recover
from prunekit.train.task import FinetuneConfig, finetune_task
from prunekit.train.task_recipes import recipe_for, same_train_examples

__all__ = ["RunConfig", "run_main_job"]


MAIN_JOB_TRAIN_CAP = 20000


# What a folder holds once a job has written to it: --overwrite replaces only such a folder.
_RUN_FOLDER_ENTRIES = ("dense", "pruned", "floor", "summary.json", ".dense.checkpoints")


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = DEFAULT_MODEL
    task: str = "sst2"
    out: Path = Path("runs/demo")
    data_dir: Path | None = None
    method: str = DEFAULT_HEAD_METHOD  # the comparison's leader at 50% R1 (see its definition)
    floor: str | None = "random"
    # {method: {setting: value}}: e.g. {"astar": {"max_evals": 200}} (`--method-option`)
    method_options: dict[str, dict[str, Any]] = {}
    heads: float = Field(0.5, gt=0, lt=1, description="fraction of all heads removed")
    seed: int = 0
    finetune: TrainConfig | None = None  # None: the task's recipe
    # The main job's trade to fit in 15 minutes on a 2-core CPU: the recipe, on at most this
    # many train examples (SST-2's dense reference trains on all 61k for 2 epochs, 24-37 min);
    # it replaces the recipe's own subset (QQP/MNLI/QNLI's 20,000), None = the whole split.
    max_train_samples: int | None = Field(MAIN_JOB_TRAIN_CAP, ge=1)
    recover: TrainConfig = TrainConfig(epochs=1, learning_rate=5e-5)
    recover_max_samples: int | None = Field(4000, ge=1)
    bench_rounds: int = 5
    device: str = "auto"
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    @field_validator("task")
    @classmethod
    def _canonical_task(cls, task: str) -> str:
        return get_task(task).name  # "SST-2" resumes a folder "sst2" wrote: one task, one name


def run_main_job(config: RunConfig) -> dict[str, Any]:
    # an unknown method, or a setting it does not have, fails before an hour of fine-tuning
    for method in filter(None, (config.method, config.floor)):
        info = get_method(method)
        info.parse_config(config.method_options.get(method))
        check_head_method(method, info)
        info.check_modes(config.method_options.get(method), counted=True)
    if unused := set(config.method_options) - {config.method, config.floor}:
        raise ConfigError(
            f"--method-option names {', '.join(sorted(unused))}, which this job does not run "
            f"(--method {config.method}, --floor {config.floor})"
        )
    if config.resume and config.overwrite:
        raise ConfigError(
            "--resume reuses the finished stages of --out and --overwrite deletes them: "
            "pass one of the two"
        )
    # the model (with --overwrite, a hub id's files downloaded), the device and the data are
    # found before --overwrite deletes anything
    source = model_dir(config.model) if config.overwrite else resolve_model(config.model)
    resolve_device(config.device)
    # train and dev exist (MNLI's mismatched dev too: the dense stage reports it)
    TaskData.for_task(config.task, None, config.data_dir, config.seed, every_dev_split=True)
    train_digest = train_examples_digest(config.task, config.data_dir)
    out = config.out
    check_output_dir(out, overwrite=True)  # a file, or a place that cannot be written
    refuse_output_holding(out, source)  # --overwrite would delete the model it fine-tunes
    if out.exists() and not (config.resume or config.overwrite):
        raise OutputExistsError(f"{out} already exists; pass --resume to continue or --overwrite")
    if out.exists() and config.overwrite:
        job = any((out / e).exists() for e in _RUN_FOLDER_ENTRIES) or any(out.glob(".work-*"))
        if any(out.iterdir()) and not job:
            raise OutputExistsError(
                f"{out} is not the folder of a `prunekit run` job, so --overwrite does not "
                "delete it; choose another --out"
            )
    if config.overwrite or not (out / "dense").is_dir():
        # the model to fine-tune fits the task (labels, a classifier): refused before
        # --overwrite deletes the old job, and before a new --out is made
        load_for_task(source, get_task(config.task))
    if out.exists() and config.overwrite:
        shutil.rmtree(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run_stages(config, train_digest)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # nothing written: a retry is not refused as an existing --out
        raise


def _run_stages(config: RunConfig, train_digest: str) -> dict[str, Any]:
    out = config.out
    dense_dir = out / "dense"
    pruned = {"pruned": config.method} | ({"floor": config.floor} if config.floor else {})
    if dense_dir.is_dir():  # before any stage runs
        made = json.loads((dense_dir / "metrics.json").read_text())
        recorded = made.get("train_examples_digest")
        same = recorded is None or same_train_examples(
            recorded, config.task, config.seed, config.data_dir, current=train_digest
        )  # a record before 0.2.0 hashed the same examples otherwise
        _check_resumed(
            dense_dir, _dense_settings(config, None if same else train_digest), nested=True
        )
    for name, method in pruned.items():
        if (out / name).is_dir():
            _check_resumed(out / name, _stage_settings(config, method, train_digest))

    if not dense_dir.is_dir():
        console.rule(f"1/3 fine-tune {config.model} on {config.task} (the task's recipe)")
        recipe = recipe_for(config.task)
        train = config.finetune or recipe.train_config(config.seed)
        with step_progress(f"fine-tune {config.task}", config.progress) as on_step:
            finetune_task(
                FinetuneConfig(
                    model=config.model,
                    task=config.task,
                    out=dense_dir,
                    data_dir=config.data_dir,
                    train=train.model_copy(update={"seed": config.seed, "device": config.device}),
                    max_seq_length=recipe.max_seq_length,
                    max_train_samples=config.max_train_samples,
                    resume=config.resume,
                ),
                on_step,
            )
    for name, method in pruned.items():
        if not (out / name).is_dir():
            console.rule(f"2/3 prune {config.heads:.0%} of heads ({method}) and recover")
            _prune_and_recover(config, method, dense_dir, out / name, train_digest)

    console.rule("3/3 measure")
    dense_metrics = json.loads((dense_dir / "metrics.json").read_text())
    device = resolve_device(config.device)
    dtype = timing_dtype(device)  # float16 on a GPU, as `bench` and `compare` time there
    models = {"baseline": load(dense_dir).to(device, dtype)}
    models |= {name: load(out / name).to(device, dtype) for name in pruned}
    stats = {name: model_stats(m) for name, m in models.items()}
    speed = speed_table(
        models, {n: s.to_dict() for n, s in stats.items()}, rounds=config.bench_rounds
    )
    timed = speed["models"]
    summary = {
        "task": config.task,
        "method": config.method,
        "floor_method": config.floor,
        "method_options": config.method_options,
        "seed": config.seed,
        "dense": {
            "heads": stats["baseline"].heads_total,
            "parameters": stats["baseline"].parameters,
            "validation": dense_metrics["validation"]["primary"],
            "dev": dense_metrics["dev"]["primary"],
            "train_examples": dense_metrics["train_examples"],
            "train_seconds": dense_metrics["train_seconds"],
            "latency_ms": timed["baseline"]["latency"]["median_s"] * 1e3,
            "throughput": timed["baseline"]["throughput"]["sequences_per_s"],
        },
        **{name: _pruned_summary(out / name, stats[name], timed[name]) for name in pruned},
        "primary_metric": primary_metric(config.task),
        "speedup": timed["pruned"]["speedup"],
        "timing_warnings": speed.get("warnings", []),
        "environment": speed["environment"],
        "paths": {"dense": str(dense_dir)} | {name: str(out / name) for name in pruned},
        "config": config.model_dump(mode="json"),
    }
    write_json(out / "summary.json", summary)
    return summary


def _pruned_summary(directory: Path, stats: Any, timed: dict[str, Any]) -> dict[str, Any]:
    metrics = json.loads((directory / "metrics.json").read_text())
    before, after = metrics["after_pruning"], metrics["after_recovery"]
    return {
        "method": metrics["method"],
        "heads": stats.heads_total,
        "parameters": stats.parameters,
        "validation_before_recovery": before["validation"]["primary"],
        "dev_before_recovery": before["dev"]["primary"],
        "validation": after["validation"]["primary"],
        "dev": after["dev"]["primary"],
        "latency_ms": timed["latency"]["median_s"] * 1e3,
        "throughput": timed["throughput"]["sequences_per_s"],
        "decision_seconds": metrics["decision_seconds"],
        "recovery_seconds": metrics["recovery_seconds"],
    }


def _prune_and_recover(
    config: RunConfig,
    method: str,
    dense_dir: Path,
    pruned_dir: Path,
    train_digest: str | None = None,
) -> None:
    """Decide on the validation split, cut, recover on a train subset, evaluate, save."""
    seed_everything(config.seed)
    info = get_method(method)
    model = load(dense_dir, info.attn_implementation).to(resolve_device(config.device))
    tokenizer = load_tokenizer(dense_dir)
    data = TaskData.for_task(config.task, tokenizer, config.data_dir, config.seed)
    target = head_target(current_plan(model), heads=config.heads)
    work = config.out / f".work-{pruned_dir.name}"  # a killed decision resumes with --resume
    with method_progress(f"{method} decision", config.progress) as on_progress:
        result = decide(
            model,
            method,
            target,
            data,
            config.seed,
            config.method_options.get(method),
            teacher=model if info.needs_teacher else None,
            state_dir=work / "method",
            cache_dir=work / "cache",
            on_progress=on_progress,
            keep_trained_state=True,  # a kill before the output is written keeps the training
        )
    pruned = apply_plan(result.model or model, result.plan)
    splits = ("validation", "dev")
    digest = train_digest or train_examples_digest(config.task, config.data_dir)
    record: dict[str, Any] = _stage_settings(config, method, digest)
    record["after_pruning"] = evaluate_splits(pruned, data, splits)
    with step_progress("recover", config.progress) as on_step:
        trained = recover(
            pruned,
            data,
            config.recover.model_copy(update={"seed": config.seed, "device": config.device}),
            config.recover_max_samples,
            on_step=on_step,
            checkpoint_dir=work / "recover",  # resumed by --resume after a kill
        )
    record["recovery_seconds"] = round(trained.seconds, 2)
    record["after_recovery"] = evaluate_splits(pruned, data, splits)
    record["decision_seconds"] = result.record["decision_seconds"]
    record["method_warnings"] = method_warnings(result.record, method)
    with atomic_output_dir(pruned_dir, shared=True) as tmp:
        write_model_files(pruned, tmp, tokenizer, method_plan=result.plan)
        write_json(tmp / "metrics.json", record)
    shutil.rmtree(work, ignore_errors=True)


def _stage_settings(config: RunConfig, method: str, train_digest: str) -> dict[str, Any]:
    """What a pruned stage of the job was made with: a resumed job must ask for the same
    (``train_digest``: the train examples, by content, so no stage of another --data-dir's is
    reported beside this one's)."""
    return {
        "task": config.task,
        "method": method,
        "seed": config.seed,
        "heads_fraction": config.heads,
        "method_options": config.method_options.get(method, {}),
        "recover_max_samples": config.recover_max_samples,
        "recover": config.recover.model_dump(mode="json", exclude={"device", "seed"}),
        "train_examples_digest": train_digest,
    }


def _dense_settings(config: RunConfig, train_digest: str | None = None) -> dict[str, Any]:
    """What the dense stage was fine-tuned with, as its metrics.json records it (dotted keys
    into its ``config``): pruning another task's, model's or seed's dense model would be
    reported as this job's."""
    return {
        "task": config.task,
        "model": config.model,
        "config.train.seed": config.seed,
        "config.max_train_samples": config.max_train_samples,
        **({"train_examples_digest": train_digest} if train_digest else {}),
    }


def _check_resumed(stage_dir: Path, wanted: dict[str, Any], nested: bool = False) -> None:
    """Refuse to reuse a finished stage made with other settings (the summary would credit
    them to this job's); stages of older versions record fewer settings, checked as far as
    they go. ``nested``: the keys are dotted paths into the record."""
    made = json.loads((stage_dir / "metrics.json").read_text())
    missing = object()

    def recorded(key: str) -> Any:
        value: Any = made
        for part in key.split(".") if nested else (key,):
            value = value.get(part, missing) if isinstance(value, dict) else missing
        return value

    differ = [k.rsplit(".", 1)[-1] for k, v in wanted.items() if recorded(k) not in (missing, v)]
    if differ:
        raise ConfigError(
            f"{stage_dir} was made with other settings ({', '.join(differ)}) than this job "
            "asks for; pass --overwrite, or another --out"
        )

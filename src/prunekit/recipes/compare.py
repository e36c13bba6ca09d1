"""Recipe `prunekit compare`: the head-pruning comparison sweep (methods.md §6).

For each seed the dense model comes from the shared dense cache (`cached_dense_model`: the
task's recipe unless ``recipe`` says otherwise; fine-tuned there once if missing). Every
(method, fraction, seed) then runs through the same `decide` -> `apply_plan` path and is
evaluated in two regimes: R0 (no retraining) and R1 (the same recovery budget for every method,
starting from the pruned fine-tuned weights). A method whose metadata says it trains weights
already spent its training inside the decision: its R1 row is its own trained model (marked
``r1_source: "method"``), given the same number of optimizer steps as the others' recovery.
Methods that choose the head count themselves (``decides_count``) also run once per budget.
Each finished run is appended to ``RUNDIR/results.jsonl`` and flushed at once, so a killed sweep
continues where it stopped and never repeats a run.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prunekit.data import TaskData, get_task, primary_metric
from prunekit.device import cpu_name, describe_device, resolve_device
from prunekit.errors import ConfigError
from prunekit.methods import (
    HeadTarget,
    MethodResult,
    decide,
    get_method,
    head_target,
)
from prunekit.models import apply_plan, current_plan, load, load_tokenizer, model_stats
from prunekit.models.export import require_onnx
from prunekit.outputs import check_output_dir, write_json
from prunekit.processes import launched
from prunekit.recipes.common import (
    check_head_method,
    console,
    method_progress,
    seed_everything,
    step_progress,
)
from prunekit.recipes.compare_config import (
    REGIMES,
    CompareConfig,
    borrowed_rows,
    check_sweep_choices,
    dense_recipe,
    per_method_options,
    plan_memo_path,
    read_plan_memo,
    refuse_other_settings,
    resolved_settings,
    run_dir_settings,
    run_key,
    with_loop_options,
    write_plan_memo,
)
from prunekit.recipes.compare_rows import (
    append_rows,
    mismatched,
    refuse_one_key_twice,
    result_row,
    scalars,
)
from prunekit.recipes.compare_speed import pruned_speed
from prunekit.report import read_results
from prunekit.train import (
    DistillConfig,
    evaluate_splits,
    recover,
    recovery_steps,
)
from prunekit.train.task_recipes import cached_dense_model, model_files_digest

# DistillConfig is re-exported for the CLI, which only calls recipes.
__all__ = [
    "CompareConfig",
    "append_rows",
    "check_sweep_choices",
    "DistillConfig",
    "dense_recipe",
    "per_method_options",
    "read_results",
    "run_compare",
    "run_key",
]


def run_compare(
    config: CompareConfig, after_run: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Run the sweep (resuming), return all rows. ``after_run`` sees each new row."""
    if launched():
        # Every process would run the whole sweep, append its rows and write its plan memos;
        # one writer is what the run dir's resume and memos assume.
        raise ConfigError(
            "compare runs as one process; start it without `accelerate launch`/torchrun "
            "(its methods and recoveries then train on one device)"
        )
    get_task(config.task)  # an unknown task fails before RUNDIR is written
    config = with_loop_options(config)
    budget_methods = config.budget_methods if config.budgets else ()
    for method in {*config.methods, *config.method_options}:
        info = get_method(method)
        options = config.method_options.get(method)
        info.parse_config(options)
        if method in config.methods:  # fixed fractions (budgets go through budget_methods)
            check_head_method(method, info)
        if method in budget_methods and "budget" in (options or {}):
            raise ConfigError(
                f"--method-option {method}.budget: a sweep runs each of --budgets; drop it"
            )
        if method in {*config.methods, *budget_methods}:  # else refused as a method not run
            deciding = method in budget_methods
            info.check_modes(options, counted=method in config.methods, deciding=deciding)
    for method in budget_methods:
        if not get_method(method).decides_count:
            raise ConfigError(f"{method} does not choose a head count; it has no budget mode")
    bad = set(config.regimes) - set(REGIMES)
    if bad:
        raise ConfigError(f"unknown regimes {sorted(bad)}; use r0 and/or r1")
    for fraction in config.fractions:
        if not 0 < fraction < 1:
            raise ConfigError(f"--heads fractions must be in (0, 1), got {fraction}")
    for budget in config.budgets:
        if budget < 0:
            raise ConfigError(
                f"--budgets are points of the metric one may lose, >= 0; got {budget}"
            )
    refuse_one_key_twice(config.fractions, "--heads")
    refuse_one_key_twice(config.budgets, "--budgets")
    if config.time_onnx:
        require_onnx()  # a missing onnx extra is found now, not after the first decision
    # a sweep resumes its dir, so only a file there or no write access is refused
    check_output_dir(config.out, overwrite=True)
    refuse_other_settings(config, budget_methods)
    # a bad device and missing data fail before RUNDIR is written
    resolve_device(config.device)
    TaskData.for_task(config.task, None, config.data_dir, 0, every_dev_split=True)
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "config.json", run_dir_settings(config, budget_methods))
    results = config.out / "results.jsonl"
    rows = read_results(results)
    done = {row["key"] for row in rows}
    borrowed = _same_dense(config, borrowed_rows(config, budget_methods, done))
    if borrowed:
        append_rows(results, borrowed)
        rows += borrowed
        done |= {row["key"] for row in borrowed}
        sources = ", ".join(sorted({row["borrowed_from"] for row in borrowed}))
        console.log(f"{len(borrowed)} runs borrowed from {sources}")

    for seed in config.seeds:
        runs: list[tuple[str, float, bool]] = [  # (method, fraction or budget, is_budget)
            (m, f, False)
            for m in config.methods
            for f in config.fractions
            if any(run_key(m, f, seed, r) not in done for r in config.regimes)
        ]
        runs += [
            (m, b, True)
            for m in budget_methods
            for b in config.budgets
            if run_key(f"{m}-budget", b, seed, "r0") not in done
        ]
        if not runs:
            continue
        dense_dir = _dense_model(config, seed)
        _refuse_other_dense(config, rows, seed, dense_dir)
        dense = load(dense_dir, **_attention(config)).to(resolve_device(config.device))
        tokenizer = load_tokenizer(dense_dir)
        data = TaskData.for_task(
            config.task, tokenizer, config.data_dir, seed, every_dev_split=True
        )
        # Same (possibly capped) examples as the runs, so the dense line is comparable.
        splits = ("validation", *data.task.dev_splits)  # MNLI: matched and mismatched dev
        dense_eval = evaluate_splits(dense, data, splits, config.eval_max_samples)
        sweep = _Sweep(config, dense, data, dense_eval, seed, done, dense_dir)
        for method, value, is_budget in runs:
            new_rows = sweep.budget_run(method, value) if is_budget else sweep.run(method, value)
            append_rows(results, new_rows)
            for row in new_rows:  # saved: a kill no longer needs the recovery's checkpoints
                shutil.rmtree(_recovery_dir(config, row["key"]), ignore_errors=True)
                done.add(row["key"])
                rows.append(row)
                console.log(f"{row['key']}: dev {row['dev']:.2f}")
                if after_run is not None:
                    after_run(row)
    # what a kill between a row and its deletion left, or a run this sweep no longer asks for
    shutil.rmtree(config.out / "work" / "recover", ignore_errors=True)
    return rows


def _same_dense(config: CompareConfig, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The borrowed rows measured against this sweep's own dense model of their seed (rows
    that do not record theirs cannot show it and are not taken)."""
    digests = {
        seed: model_files_digest(_dense_model(config, seed))
        for seed in sorted({r["seed"] for r in rows})
    }
    return [r for r in rows if r.get("dense_digest") == digests[r["seed"]]]


def _refuse_other_dense(
    config: CompareConfig, rows: list[dict], seed: int, dense_dir: Path
) -> None:
    """Rows of one seed compare against one dense model: a sweep resuming a run dir with
    another (another dense cache, or a cache entry trained again) would mix their rows."""
    digest = model_files_digest(dense_dir)
    other = sorted({r["dense_digest"] for r in rows if r["seed"] == seed and r.get("dense_digest")})
    if other and other != [digest]:
        raise ConfigError(
            f"{config.out} holds seed {seed} rows of another dense model ({', '.join(other)}; "
            f"this sweep's {dense_dir} is {digest}): use another --out, or the dense cache "
            "those rows came from (prunekit 0.2 trains dense models again under new keys: "
            "a new shuffle order, and SST-2's validation carve of whole sentences)"
        )


def _dense_model(config: CompareConfig, seed: int) -> Path:
    """The dense fine-tuned model of this seed, from the shared cache (fine-tuned if missing)."""
    with step_progress(f"dense {config.task} seed {seed}", config.progress) as on_step:
        return cached_dense_model(
            config.model,
            config.task,
            seed,
            config.recipe,
            config.data_dir,
            config.dense_cache,
            config.device,
            on_step,
        )


def _attention(config: CompareConfig) -> dict[str, str]:
    """Load the dense model with the attention a method needs (eager for attention maps)."""
    wanted = {get_method(m).attn_implementation for m in config.methods} - {None}
    if len(wanted) > 1:
        raise ConfigError(f"methods need different attention implementations: {sorted(wanted)}")
    return {"attn_implementation": wanted.pop()} if wanted else {}


class _Sweep:
    """The runs of one seed: one dense model, one task's data, one recovery budget."""

    def __init__(
        self, config, dense, data: TaskData, dense_eval: dict, seed: int, done: set, dense_dir
    ):
        self.config, self.dense, self.data, self.seed, self.done = config, dense, data, seed, done
        self.dense_dir, self.digest = dense_dir, model_files_digest(dense_dir)
        self.dense_eval = dense_eval
        self.splits = tuple(dense_eval)
        self.recover = config.recover.model_copy(update={"seed": seed, "device": config.device})
        self.budget_steps = recovery_steps(data, self.recover, config.recover_max_samples)

    def decide(self, method: str, target: HeadTarget, options: dict, key: str) -> MethodResult:
        seed_everything(self.seed)
        work = self.config.out / "work"
        with method_progress(f"{method} {key}", self.config.progress) as on_progress:
            return decide(
                self.dense,
                method,
                target,
                self.data,
                self.seed,
                options,
                self.config.search_samples,
                teacher=self.dense if get_method(method).needs_teacher else None,
                # the equal budget covers data too: a method that trains draws from the same
                # seeded subset the others recover on (with more than one epoch it would
                # otherwise see more distinct examples)
                train_samples=self.config.recover_max_samples,
                state_dir=work / "state" / key.replace("|", "_"),
                # One memo per method and run dir: budgets and fractions of a seed share states.
                cache_dir=work / "cache" / method,
                train_budget_steps=self.budget_steps,
                on_progress=on_progress,
            )

    def run(self, method: str, fraction: float) -> list[dict[str, Any]]:
        target = head_target(current_plan(self.dense), heads=fraction)
        options = dict(self.config.method_options.get(method, {}))
        key = run_key(method, fraction, self.seed, "r0")
        settings = resolved_settings(method, options)
        # What the decision read besides the model: the task's data and how much of it (a
        # method that trains: the train subset and steps it was given).
        data = [self.config.task, self.config.search_samples]
        if "train" in get_method(method).needs_data:
            data += [self.config.recover_max_samples, self.budget_steps]
        memo = plan_memo_path(
            self.config.out, [method, settings, fraction, self.seed, self.digest, *data]
        )
        result = read_plan_memo(memo)  # decided by an earlier sweep (R0 and R1 often are two)
        if result is None:
            result = self.decide(method, target, options, key)
            write_plan_memo(memo, result)
        rows = self.evaluate(result, method, fraction, self.config.regimes)
        if "certificate" in result.record:  # how a search got its set (A*: capped, completed)
            for row in rows:
                row["certificate"] = scalars(result.record["certificate"])
        return rows

    def budget_run(self, method: str, budget: float) -> list[dict[str, Any]]:
        """Budget mode: one R0 point whose head count the method chooses."""
        target = HeadTarget(keep=current_plan(self.dense).heads_kept)
        options = {**self.config.method_options.get(method, {}), "budget": budget}
        name = f"{method}-budget"
        result = self.decide(method, target, options, run_key(name, budget, self.seed, "r0"))
        # The budget stands in the run key's fraction slot (the method picks the head count),
        # so resume checks `run_key(name, budget, ...)`; the real fraction is filled in below.
        # A method that trained (peer's lossless mode) is judged by its own model; the row
        # says so.
        rows = self.evaluate(result, name, budget, ("r0",), own_model=result.trained_weights)
        certificate = result.record.get("certificate", {})
        for row in rows:
            row["fraction"] = row["heads_removed"] / (row["heads_kept"] + row["heads_removed"])
            row["budget"] = budget
            row["certificate"] = scalars(certificate)
            row["cache_saved_fraction"] = certificate.get("cache", {}).get("saved_fraction", 0.0)
            row["dev_drop"] = row["dense_dev"] - row["dev"]
            row["dev_violation"] = row["dev_drop"] > budget
        return rows

    def evaluate(
        self,
        result: MethodResult,
        method: str,
        fraction: float,
        regimes: tuple[str, ...],
        own_model: bool = False,
    ) -> list[dict[str, Any]]:
        source = result.model if own_model else self.dense
        model = apply_plan(copy.deepcopy(source), result.plan)
        stats = model_stats(model)
        base = {
            "task": self.data.task.name,
            "metric": primary_metric(self.data.task),
            "method": method,
            "fraction": fraction,
            "seed": self.seed,
            "heads_kept": stats.heads_total,
            "heads_removed": stats.heads_original - stats.heads_total,
            "heads_per_layer": stats.heads_per_layer,
            "kept_heads": [list(h) for h in result.plan.kept_heads],
            "parameters": stats.parameters,
            "parameters_original": stats.parameters_original,
            "encoder_macs": stats.encoder_macs,
            "encoder_macs_original": stats.encoder_macs_original,
            "ideal_speedup": stats.encoder_macs_original / max(stats.encoder_macs, 1),
            "decision_seconds": result.record["decision_seconds"],
            "device": describe_device(resolve_device(self.config.device)),  # where it trained
            "cpu": cpu_name(),  # CPUs differ in timings and bf16 numerics
            "dense_validation": self.dense_eval["validation"]["primary"],
            "dense_dev": self.dense_eval["dev"]["primary"],
            **mismatched(self.dense_eval, "dense_"),
            "dense_digest": self.digest,
        }
        if self.config.time_speed and self.seed == self.config.seeds[0]:
            timing = self.config.out / "work" / "timing"
            name = f"{method}-{fraction:.4f}-s{self.seed}"
            onnx = (self.dense_dir, self.config.out / "work" / "onnx", self.data.tokenizer)
            base |= pruned_speed(
                timing, name, self.dense, model, onnx if self.config.time_onnx else None
            )
        rows = []
        max_samples = self.config.eval_max_samples

        def measured(model: Any) -> dict[str, dict]:
            return evaluate_splits(model, self.data, self.splits, max_samples)

        if "r0" in regimes and self._todo(method, fraction, "r0"):
            row = result_row(
                base, "r0", evaluate_splits(model, self.data, self.splits, max_samples)
            )
            rows.append(row | ({"trained_by_method": True} if own_model else {}))
        if "r1" in regimes and self._todo(method, fraction, "r1"):
            if result.trained_weights:  # the method trained already: its model is its R1
                model = apply_plan(result.model, result.plan)
                extra = {"r1_source": "method", "train_steps": result.record.get("train_steps")}
            else:
                key = run_key(method, fraction, self.seed, "r1")
                with step_progress(f"recover {key}", self.config.progress) as on_step:
                    trained = recover(
                        model,
                        self.data,
                        self.recover,
                        self.config.recover_max_samples,
                        self.dense,
                        self.config.distill,
                        on_step=on_step,
                        checkpoint_dir=_recovery_dir(self.config, key),
                    )
                extra = {"r1_source": "recovery", "train_steps": trained.steps}
                extra["recovery_seconds"] = round(trained.seconds, 2)
            row = result_row(
                base, "r1", evaluate_splits(model, self.data, self.splits, max_samples)
            )
            rows.append(row | extra | {"budget_steps": self.budget_steps})
        return rows

    def _todo(self, method: str, fraction: float, regime: str) -> bool:
        return run_key(method, fraction, self.seed, regime) not in self.done


def _recovery_dir(config: CompareConfig, key: str) -> Path:
    """Checkpoints of one R1 recovery: a sweep killed mid-recovery resumes it (a rerun that
    recovers other weights starts over, `recover`); deleted once its row is written."""
    return config.out / "work" / "recover" / key.replace("|", "_")

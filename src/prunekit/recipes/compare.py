"""Recipe: the head-pruning comparison sweep (methods.md §6).

For each seed one dense model is fine-tuned and cached in ``RUNDIR/dense/seed<S>``. Every
(method, fraction, seed) then runs through the same `decide` -> `apply_plan` path and is
evaluated in two regimes: R0 (no retraining) and R1 (the same recovery budget for every method,
starting from the pruned fine-tuned weights). Each finished run is appended to
``RUNDIR/results.jsonl`` and flushed at once, so a killed sweep continues where it stopped and
never repeats a run.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from prunekit.errors import ConfigError
from prunekit.methods import HeadTarget, get_method, head_target
from prunekit.models import apply_plan, current_plan, load, load_tokenizer, model_stats
from prunekit.recipes.bench import speed_table
from prunekit.recipes.common import TaskData, console, seed_everything, write_json
from prunekit.recipes.finetune import FinetuneConfig, run_finetune
from prunekit.recipes.prune import DistillConfig, decide, evaluate_on, recover
from prunekit.train import TrainConfig

__all__ = ["CompareConfig", "run_compare", "read_results", "run_key"]

REGIMES = ("r0", "r1")


class CompareConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    out: Path
    model: str = "default"
    methods: tuple[str, ...] = ("random", "hisp", "l0")
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = REGIMES
    data_dir: Path | None = None
    finetune: TrainConfig = TrainConfig(epochs=1)
    max_train_samples: int | None = None
    recover: TrainConfig = TrainConfig(epochs=1)
    recover_max_samples: int | None = None
    distill: DistillConfig | None = None
    search_samples: int | None = None
    eval_max_samples: int | None = Field(None, description="cap on validation/dev examples")
    method_options: dict[str, dict[str, Any]] = {}
    astar_budgets: tuple[float, ...] = ()
    time_speed: bool = True
    progress: bool = True


def run_key(method: str, fraction: float, seed: int, regime: str) -> str:
    return f"{method}|{fraction:.4f}|{seed}|{regime}"


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.jsonl; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def run_compare(
    config: CompareConfig, after_run: Callable[[dict[str, Any]], None] | None = None
) -> list[dict[str, Any]]:
    """Run the sweep (resuming), return all rows. ``after_run`` sees each new row."""
    for method in config.methods:
        get_method(method)
    bad = set(config.regimes) - set(REGIMES)
    if bad:
        raise ConfigError(f"unknown regimes {sorted(bad)}; use r0 and/or r1")
    for fraction in config.fractions:
        if not 0 < fraction < 1:
            raise ConfigError(f"--heads fractions must be in (0, 1), got {fraction}")
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "config.json", config.model_dump(mode="json"))
    results = config.out / "results.jsonl"
    rows = read_results(results)
    done = {row["key"] for row in rows}

    for seed in config.seeds:
        pending = [
            (m, f)
            for m in config.methods
            for f in config.fractions
            if any(run_key(m, f, seed, r) not in done for r in config.regimes)
        ]
        budgets = [
            b for b in config.astar_budgets if run_key("astar-budget", b, seed, "r0") not in done
        ]
        if not pending and not budgets:
            continue
        dense_dir = _dense_model(config, seed)
        dense = load(dense_dir)
        data = TaskData.for_task(config.task, load_tokenizer(dense_dir), config.data_dir, seed)
        # Same (possibly capped) examples as the runs, so the dense line is comparable.
        dense_eval = evaluate_on(dense, data, ("validation", "dev"), config.eval_max_samples)
        work = [(_one_run, (method, fraction)) for method, fraction in pending]
        work += [(_budget_run, (budget,)) for budget in budgets]
        for run, args in work:
            new_rows = run(config, dense, data, dense_eval, *args, seed, done)
            with results.open("a") as handle:
                for row in new_rows:
                    handle.write(json.dumps(row) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            for row in new_rows:
                done.add(row["key"])
                rows.append(row)
                console.log(f"{row['key']}: dev {row['dev']:.2f}")
                if after_run is not None:
                    after_run(row)
    return rows


def _dense_model(config: CompareConfig, seed: int) -> Path:
    """The cached dense fine-tuned model of this seed (fine-tuned now if missing)."""
    out = config.out / "dense" / f"seed{seed}"
    if not (out / "metrics.json").is_file():
        console.rule(f"dense fine-tune, seed {seed}")
        run_finetune(
            FinetuneConfig(
                model=config.model,
                task=config.task,
                out=out,
                data_dir=config.data_dir,
                train=config.finetune.model_copy(update={"seed": seed}),
                max_train_samples=config.max_train_samples,
                resume=True,
                overwrite=out.exists(),
                progress=config.progress,
            )
        )
    return out


def _one_run(
    config: CompareConfig,
    dense,
    data: TaskData,
    dense_eval: dict,
    method: str,
    fraction: float,
    seed: int,
    done: set[str],
) -> list[dict[str, Any]]:
    seed_everything(seed)
    model = copy.deepcopy(dense)
    target = head_target(current_plan(model), heads=fraction)
    plan, decision_seconds = decide(
        model, method, target, data, seed, _method_options(config, method), config.search_samples
    )
    return _evaluate_plan(
        config, dense, model, plan, decision_seconds, data, dense_eval, method, fraction, seed, done
    )


def _method_options(config: CompareConfig, method: str) -> dict[str, Any]:
    options = dict(config.method_options.get(method, {}))
    if method == "astar":
        # Budgets and fixed-K points of one seed search the same states: measure each once,
        # and let a killed sweep pick up its searches where they stopped.
        options.setdefault("memo_dir", str(config.out / "astar_memo"))
    return options


def _budget_run(
    config: CompareConfig,
    dense,
    data: TaskData,
    dense_eval: dict,
    budget: float,
    seed: int,
    done: set[str],
) -> list[dict[str, Any]]:
    """A* in max-heads-under-budget mode: one R0 point whose head count A* chooses."""
    seed_everything(seed)
    model = copy.deepcopy(dense)
    options = {**_method_options(config, "astar"), "budget": budget}
    target = HeadTarget(keep=current_plan(model).heads_kept)
    plan, seconds = decide(model, "astar", target, data, seed, options, config.search_samples)
    certificate = plan.meta["certificate"]
    r0_only = config.model_copy(update={"regimes": ("r0",)})
    # The budget stands in the run key's fraction slot (A* picks the head count), so resume
    # checks `run_key("astar-budget", budget, ...)`; the real fraction is filled in below.
    rows = _evaluate_plan(
        r0_only, dense, model, plan, seconds, data, dense_eval, "astar-budget", budget, seed, done
    )
    for row in rows:
        row["fraction"] = row["heads_removed"] / (row["heads_kept"] + row["heads_removed"])
        row["budget"] = budget
        row["certificate"] = {
            k: certificate[k]
            for k in (
                "a0",
                "final_metric",
                "final_drop",
                "evaluations",
                "evaluations_from_memo",
                "search_examples",
                "wall_seconds",
                "capped",
                "verified",
                "search_drop",
            )
        }
        row["cache_saved_fraction"] = certificate["cache"]["saved_fraction"]
        row["dev_drop"] = row["dense_dev"] - row["dev"]
        row["dev_violation"] = row["dev_drop"] > budget
    return rows


def _evaluate_plan(
    config: CompareConfig,
    dense,
    model,
    plan,
    decision_seconds: float,
    data: TaskData,
    dense_eval: dict,
    method: str,
    fraction: float,
    seed: int,
    done: set[str],
) -> list[dict[str, Any]]:
    apply_plan(model, plan)
    stats = model_stats(model)
    base = {
        "task": data.task.name,
        "method": method,
        "fraction": fraction,
        "seed": seed,
        "heads_kept": stats.heads_total,
        "heads_removed": stats.heads_original - stats.heads_total,
        "heads_per_layer": stats.heads_per_layer,
        "kept_heads": [list(h) for h in plan.kept_heads],
        "parameters": stats.parameters,
        "parameters_original": stats.parameters_original,
        "encoder_macs": stats.encoder_macs,
        "encoder_macs_original": stats.encoder_macs_original,
        "ideal_speedup": stats.encoder_macs_original / max(stats.encoder_macs, 1),
        "decision_seconds": round(decision_seconds, 3),
        "dense_validation": dense_eval["validation"]["primary"],
        "dense_dev": dense_eval["dev"]["primary"],
    }
    if config.time_speed and seed == config.seeds[0]:
        timing = speed_table(
            {"baseline": dense, "model": model},
            rounds=3,
            warmup=1,
            latency_batch=1,
            throughput_batch=32,
        )
        base["measured_speedup"] = timing["models"]["model"]["speedup"]["throughput"]
    splits = ("validation", "dev")
    rows = []
    if "r0" in config.regimes and run_key(method, fraction, seed, "r0") not in done:
        rows.append(_row(base, "r0", evaluate_on(model, data, splits, config.eval_max_samples)))
    if "r1" in config.regimes and run_key(method, fraction, seed, "r1") not in done:
        seconds = recover(
            model,
            data,
            config.recover.model_copy(update={"seed": seed}),
            config.recover_max_samples,
            dense,
            config.distill,
        )
        row = _row(base, "r1", evaluate_on(model, data, splits, config.eval_max_samples))
        row["recovery_seconds"] = round(seconds, 2)
        rows.append(row)
    return rows


def _row(base: dict[str, Any], regime: str, results: dict[str, dict]) -> dict[str, Any]:
    return {
        "key": run_key(base["method"], base["fraction"], base["seed"], regime),
        **base,
        "regime": regime,
        "validation": results["validation"]["primary"],
        "dev": results["dev"]["primary"],
        "dev_metrics": results["dev"]["metrics"],
    }

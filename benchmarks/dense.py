"""Dense references: choose each task's fine-tuning recipe on the validation split, then train
it with seeds 0-2 and report dev against the targets.

Stages per task (every run is a dense-cache entry, so a killed benchmark resumes where it
stopped, and later benchmarks reuse exactly these models):
1. sweep, seed 0: the learning rates of ``LEARNING_RATES`` at the base epochs, then the best of
   them at twice the epochs. The choice is the best *validation* score (the split carved from
   train); dev is shown beside it but never used to choose.
2. seeds 0-2 with the chosen recipe: dev mean ± std against ``TARGETS``.
3. where that misses its target: the chosen recipe at ``BUDGET_FACTOR`` (4) times its epochs,
   seed 0, to show whether more budget would reach it (the issue's bar for a justified miss).

Results: ``benchmarks/results/dense.{json,md}`` and ``dense_sweep.jsonl`` (one line per run,
written as each finishes). Copy the chosen recipes into ``prunekit/train/task_recipes.py``'s
table (the report prints them) so that `prunekit finetune` uses them by default.

    python benchmarks/dense.py --tasks rte,mrpc,stsb,cola,sst2
    python benchmarks/dense.py --report-only
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _rows import append_row, keyed_rows

from prunekit.data import primary_metric
from prunekit.train.task_recipes import TaskRecipe, cached_dense_model, dense_key

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SWEEP_LOG = RESULTS / "dense_sweep.jsonl"
MODEL = "default"
SEEDS = (0, 1, 2)
LEARNING_RATES = (2e-5, 5e-5, 1e-4)
BUDGET_FACTOR = 4  # a missed target is justified when this much more training misses it too
# Dev targets on the default MiniLM, mean of seeds 0-2 (issue: credible comparisons).
TARGETS = {"sst2": 89.0, "mrpc": 88.0, "stsb": 85.0, "rte": 63.0, "cola": 35.0}
# Base epochs per task, and how SST-2 fits this CPU.
BASE = {
    "rte": TaskRecipe(learning_rate=5e-5, epochs=3),
    "mrpc": TaskRecipe(learning_rate=5e-5, epochs=3),
    "stsb": TaskRecipe(learning_rate=5e-5, epochs=3),
    "cola": TaskRecipe(learning_rate=5e-5, epochs=3),
    # The whole train split (67k) in length-grouped batches: they hold 2.9x fewer token slots
    # than random ones (benchmarks/results/batching.md), so an epoch costs about what 20k
    # random examples did, and on MRPC grouping did not cost quality (86.69 vs 85.56 dev F1).
    "sst2": TaskRecipe(learning_rate=5e-5, epochs=1, group_by_length=True),
}


def progress(label: str):
    started = time.perf_counter()

    def on_step(step: int, total: int, values: dict) -> None:
        if step % 25 == 0 or step == total:
            minutes = (time.perf_counter() - started) / 60
            print(
                f"  {label}: step {step}/{total} loss {values['loss']:.4f} ({minutes:.1f} min)",
                file=sys.stderr,
                flush=True,
            )

    return on_step


def run(task: str, recipe: TaskRecipe, seed: int, stage: str, data_dir: Path | None) -> dict:
    """One dense model (cached), logged once to dense_sweep.jsonl."""
    key = dense_key(MODEL, task, seed, recipe)
    done = keyed_rows(SWEEP_LOG)
    if key in done:
        return done[key]
    label = f"{task} lr {recipe.learning_rate:g} x{recipe.epochs} seed {seed}"
    print(f"{stage}: {label}", file=sys.stderr, flush=True)
    path = cached_dense_model(MODEL, task, seed, recipe, data_dir, on_step=progress(label))
    metrics = json.loads((path / "metrics.json").read_text())
    row = {
        "key": key,
        "task": task,
        "stage": stage,
        "seed": seed,
        "recipe": recipe.settings(),
        "metric": primary_metric(task),
        "validation": metrics["validation"]["primary"],
        "dev": metrics["dev"]["primary"],
        "train_seconds": metrics["train_seconds"],
        "train_examples": metrics["train_examples"],
        "steps": metrics["steps"],
    }
    append_row(SWEEP_LOG, row)
    return row


def choose(task: str, data_dir: Path | None) -> TaskRecipe:
    """Stage 1: learning rates at the base epochs; stage 2: the best at twice the epochs."""
    base = BASE[task]
    candidates = [base.model_copy(update={"learning_rate": lr}) for lr in LEARNING_RATES]
    rows = [(run(task, c, 0, "sweep", data_dir), c) for c in candidates]
    best_row, best = max(rows, key=lambda rc: rc[0]["validation"])
    longer = best.model_copy(update={"epochs": 2 * best.epochs})
    rows.append((run(task, longer, 0, "sweep", data_dir), longer))
    return max(rows, key=lambda rc: rc[0]["validation"])[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="rte,mrpc,stsb,cola,sst2")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for task in args.tasks.split(","):
            chosen = choose(task, args.data_dir)
            devs = [run(task, chosen, seed, "seeds", args.data_dir)["dev"] for seed in SEEDS]
            write_results()  # after each task: a cut-short run keeps what it has
            if statistics.fmean(devs) < TARGETS[task]:
                longer = chosen.model_copy(update={"epochs": BUDGET_FACTOR * chosen.epochs})
                run(task, longer, 0, f"budget-{BUDGET_FACTOR}x", args.data_dir)
                write_results()
    write_results()


def write_results() -> None:
    rows = list(keyed_rows(SWEEP_LOG).values())
    summary = {}
    for task in [t for t in BASE if any(r["task"] == t for r in rows)]:
        task_rows = [r for r in rows if r["task"] == task]
        seeds = [r for r in task_rows if r["stage"] == "seeds"]
        recipe = seeds[0]["recipe"] if seeds else None
        same = [r for r in task_rows if r["recipe"] == recipe] if recipe else []
        by_seed = {r["seed"]: r for r in same}
        devs = [by_seed[s]["dev"] for s in SEEDS if s in by_seed]
        summary[task] = {
            "metric": task_rows[0]["metric"],
            "chosen_recipe": recipe,
            "seeds": sorted(by_seed),
            "dev_mean": statistics.fmean(devs) if devs else None,
            "dev_std": statistics.stdev(devs) if len(devs) > 1 else None,
            "validation_mean": statistics.fmean(by_seed[s]["validation"] for s in by_seed)
            if by_seed
            else None,
            "target": TARGETS[task],
            "met": bool(devs)
            and len(devs) == len(SEEDS)
            and statistics.fmean(devs) >= TARGETS[task],
            "sweep": [r for r in task_rows if r["stage"] != "seeds"],
        }
    (RESULTS / "dense.json").write_text(
        json.dumps({"model": MODEL, "seeds": list(SEEDS), "tasks": summary}, indent=2) + "\n"
    )
    (RESULTS / "dense.md").write_text(markdown(summary))


def markdown(summary: dict) -> str:
    lines = [
        "# Dense references (default MiniLM)",
        "",
        "Recipes chosen on the validation split carved from train (seed 0 sweep); dev is shown "
        "beside it and never used to choose. Then seeds 0-2 with the chosen recipe. "
        "Reproduce: `python benchmarks/dense.py` (resumes; models land in the dense cache, "
        "`runs/dense/`).",
        "",
        "| task | metric | recipe (lr, epochs, batch, train examples) | dev mean ± std "
        "(seeds) | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for task, s in summary.items():
        r = s["chosen_recipe"]
        recipe = (
            f"{r['learning_rate']:g}, {r['epochs']}, {r['batch_size']}, "
            f"{r['max_train_samples'] or 'all'}"
            + (", length-grouped" if r.get("group_by_length") else "")
            + (f", {r['precision']}" if r.get("precision", "fp32") != "fp32" else "")
            if r
            else "sweep running"
        )
        dev = (
            f"{s['dev_mean']:.2f} ± {s['dev_std'] or 0:.2f} ({', '.join(map(str, s['seeds']))})"
            if s["dev_mean"] is not None
            else "–"
        )
        met = "yes" if s["met"] else ("no" if len(s["seeds"]) == len(SEEDS) else "pending")
        budget = [r for r in s["sweep"] if r["stage"].startswith("budget")]
        if budget and not s["met"]:
            b = budget[0]
            met += (
                f" ({b['stage'].removeprefix('budget-')} budget, {b['recipe']['epochs']} epochs, "
                f"seed 0: dev {b['dev']:.2f})"
            )
        lines.append(f"| {task} | {s['metric']} | {recipe} | {dev} | {s['target']:g} | {met} |")
    lines += ["", "## Sweep (seed 0)", ""]
    lines += [
        f"Stage `sweep` chooses the recipe; `budget-{BUDGET_FACTOR}x` runs the chosen one at "
        f"{BUDGET_FACTOR}× its epochs where the target was missed. Train minutes are wall time "
        "on the 2-core CPU and include time shared with other jobs.",
        "",
        "| task | stage | lr | epochs | train examples | validation | dev | train minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, s in summary.items():
        for r in s["sweep"]:
            rec = r["recipe"]
            lines.append(
                f"| {task} | {r['stage']} | {rec['learning_rate']:g} | {rec['epochs']} | "
                f"{r['train_examples']} | {r['validation']:.2f} | {r['dev']:.2f} | "
                f"{r['train_seconds'] / 60:.1f} |"
            )
    lines += ["", "Recipes for `TASK_RECIPES` (src/prunekit/train/task_recipes.py):", ""]
    for task, s in summary.items():
        if s["chosen_recipe"]:
            r = s["chosen_recipe"]
            lines.append(
                f"- `{task}`: learning_rate={r['learning_rate']:g}, epochs={r['epochs']}, "
                f"max_train_samples={r['max_train_samples']}"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

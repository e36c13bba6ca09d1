"""Benchmark: Random vs HISP vs L0 head pruning on the default MiniLM (methods.md §6 protocol).

Runs `prunekit compare` per task into runs/head_baselines/<preset>/<task>/ (resumable; dense
models from the shared dense cache), then copies every task's results.jsonl rows into
benchmarks/results/head_baselines/<preset>/results.jsonl and renders report.md + PNGs there.
Non-default loop options add to the preset's folder name (``full-grouped``). The run dirs are
git-ignored; the results keep each one's config.json under ``settings/``, and a fresh checkout
puts the committed rows and settings back into them first, so it resumes after those runs.

`--preset full` is the comparison of the credible-comparisons issue (five tasks, three seeds,
random/hisp/l0/astar, R0 at 10-90%, R1 at 30/50/70%); on this 2-core CPU it is days of compute,
so run it seed by seed (`--seeds 0` over every task first) with the faster loop options, which
apply to every method alike. `--preset subset` is the STS-B subset committed with 0.1:

    python benchmarks/head_baselines.py --preset full --seeds 0 --precision bf16 --group-by-length
    python benchmarks/head_baselines.py                  # the STS-B subset
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from _rows import (
    HEAD_COMPARISON_RUNS,
    HEAD_SEARCH_SAMPLES,
    SETTINGS,
    add_device_argument,
    add_loop_arguments,
    devices_description,
    keep_settings,
    loop_description,
    loop_label,
    loop_options,
    loop_suffix,
    parse_seeds,
    restore_tasks,
    with_dev_constant,
    write_rows,
)

from prunekit.device import resolve_device
from prunekit.recipes.compare import CompareConfig, read_results, run_compare
from prunekit.recipes.report import run_report
from prunekit.train import DistillConfig, TrainConfig

RESULTS = Path(__file__).parent / "results" / "head_baselines"
RUNS = HEAD_COMPARISON_RUNS.parent
ALL_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

PRESETS = {
    # The comparison of the credible-comparisons issue: five tasks, three seeds, R0 on the
    # 10..90% grid, R1 (one epoch of recovery with KD from the dense model, the same for every
    # method) at 30/50/70%. A* runs fixed-K at each fraction (its budget mode is
    # benchmarks/astar.py). Results are written after every task, so a cut-short run keeps them.
    "full": {
        "tasks": ("rte", "mrpc", "stsb", "cola", "sst2"),
        "sweeps": [
            {
                "methods": ("random", "hisp", "l0", "astar"),
                "fractions": (0.1, 0.3, 0.5, 0.7, 0.9),
                "regimes": ("r0",),
            },
            {
                "methods": ("random", "hisp", "l0", "astar"),
                "fractions": (0.3, 0.5, 0.7),
                "regimes": ("r1",),
            },
        ],
        "seeds": (0, 1, 2),
        # One epoch of recovery, at most 10,000 train examples: only SST-2 (61k) is capped,
        # which keeps its 12 recoveries per seed at ~1 h instead of ~5 h on this CPU.
        "recover_max_samples": 10_000,
        "distill": True,
        "time_onnx": True,
        "l0_steps": 150,
        "astar_max_evals": 200,  # the cap of benchmarks/astar.py
        # Validation examples a method may read to decide: only SST-2's (6.7k) is capped; A*
        # measures up to 200 head sets on them.
        "search_samples": HEAD_SEARCH_SAMPLES,
    },
    "subset": {
        "tasks": ("stsb",),
        "sweeps": [
            {
                "methods": ("random", "hisp"),
                "fractions": (0.1, 0.3, 0.5, 0.7, 0.9),
                "regimes": ("r0",),
            },
            {"methods": ("l0",), "fractions": (0.3, 0.5, 0.7), "regimes": ("r0",)},
            {"methods": ("random", "hisp", "l0"), "fractions": (0.5,), "regimes": ("r1",)},
        ],
        "seeds": (0, 1, 2),
        "recover_max_samples": 1000,
        "l0_steps": 30,
        "astar_max_evals": 400,
        "distill": False,
        "time_onnx": False,
        "search_samples": 512,
    },
}


def notes(preset: str, loop: str = "fp32, random batches", devices: str = "cpu") -> str:
    p = PRESETS[preset]
    sweeps = "; ".join(
        f"{', '.join(s['methods'])} at {', '.join(f'{f:.0%}' for f in s['fractions'])} "
        f"({'/'.join(r.upper() for r in s['regimes'])})"
        for s in p["sweeps"]
    )
    return (
        f"Preset `{preset}` of `benchmarks/head_baselines.py`: tasks "
        f"{', '.join(p['tasks'])}; seeds {', '.join(map(str, p['seeds']))}; {sweeps}. "
        "Dense models: the PyPI all-MiniLM-L6-v2 fine-tuned per seed with each task's recipe "
        "(`TASK_RECIPES`; see benchmarks/results/dense.md), from the shared dense cache. "
        "R1 = 1 epoch of recovery"
        + (
            f" on at most {p['recover_max_samples']:,} train examples (a seeded subset of larger "
            "splits)"
            if p["recover_max_samples"]
            else ""
        )
        + (", with logit KD from the dense model" if p["distill"] else ", no distillation")
        + f", same for every method, trained in {loop} on {devices}. Methods may use "
        + (
            f"at most {p['search_samples']:,} seeded examples of"
            if p["search_samples"]
            else "all of"
        )
        + " the validation split carved from train for their decisions (A* searches on one "
        "seeded half of those and certifies on the other). "
        + f"L0 trains its gates for {p['l0_steps']} "
        "steps (batch 32) on train with the Lagrangian budget; A* (fixed-K at each fraction, "
        f"branching 8) measures at most {p['astar_max_evals']} head sets. The tables report "
        "GLUE dev. "
        "`--tasks` runs a subset of the preset's tasks with the same settings. "
        "Measured speed-ups in this sweep come from 3 "
        "quick rounds taken while other jobs shared the 2-core CPU and are noisy; the clean "
        "timing is benchmarks/results/head_surgery_speed.md. "
        "The full grid is "
        "`python benchmarks/head_baselines.py --preset full`."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="subset")
    parser.add_argument("--tasks", help="comma-separated subset of the preset's tasks")
    parser.add_argument(
        "--seeds",
        help="comma-separated subset of the preset's seeds: `--seeds 0` over every task first "
        "gives a five-task summary sooner than all seeds of one task",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true", help="re-render from the rows")
    add_loop_arguments(parser, "recovery and L0's gates")
    add_device_argument(parser, "recovery and the methods' training")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    loop = loop_options(args)
    suffix = loop_suffix(loop)
    # Each preset (and loop option) in folders of its own: the presets share tasks and method
    # names, and compare resumes by run key alone.
    runs, results = RUNS / f"{args.preset}{suffix}", RESULTS / f"{args.preset}{suffix}"
    tasks = args.tasks.split(",") if args.tasks else preset["tasks"]
    seeds = parse_seeds(parser, args.seeds, preset["seeds"]) if args.seeds else preset["seeds"]
    # a fresh checkout: the run dirs are only in the results
    for task, restored in restore_tasks(results, {t: runs / t for t in preset["tasks"]}).items():
        if restored:
            print(f"{task}: {restored} committed rows put back into {runs / task}")
    # compare times speed on its first seed only: keep that the preset's first seed, and speed
    # columns are CPU claims (ONNX Runtime runs on the CPU): no timing on a GPU
    timed = preset["seeds"][0] in seeds and resolve_device(args.device).type == "cpu"
    for task in () if args.report_only else tasks:
        for sweep in preset["sweeps"]:
            run_compare(
                CompareConfig(
                    task=task,
                    out=runs / task,
                    seeds=seeds,
                    data_dir=args.data_dir,
                    recover=TrainConfig(epochs=1),
                    **loop,  # recovery and L0 alike (compare applies them to both)
                    recover_max_samples=preset["recover_max_samples"],
                    distill=DistillConfig() if preset["distill"] else None,
                    time_speed=timed,
                    time_onnx=preset["time_onnx"] and timed,
                    method_options={
                        "l0": {"steps": preset["l0_steps"]},
                        "astar": {"max_evals": preset["astar_max_evals"], "branching": 8},
                    },
                    search_samples=preset["search_samples"],
                    device=args.device,
                    progress=False,
                    **sweep,
                )
            )
            # after each sweep (R0, then R1): a session cut short during a task's R1 keeps
            # its R0 rows, committed and put back into the run dir by the next run
            write_report(args.preset, preset, runs, results, loop)
    # --report-only --tasks: a report of those tasks only (leave out one still running)
    write_report(args.preset, preset, runs, results, loop, tasks if args.report_only else None)


def own_protocols(loop: dict) -> dict[str, Path]:
    """Methods compared by a benchmark of their own, shown as blocks of the summary table: the
    protocol's name (the block's title) and the results file whose rows it takes. Peer's rows
    are R1 rows: those trained in the same loop as this comparison's (``-bf16-grouped``)."""
    return {
        "SMP protocol: heads removed per layer from the pre-trained model, then fine-tuned with "
        "the task's recipe (benchmarks/smp.py; its pruner was trained on RTE, MRPC, SST-2 and "
        "CoLA inputs, STS-B is held out)": RESULTS.parent / "smp" / "results.jsonl",
        "Peer protocol: R1 with the same training budget and dense teacher for every row; peer "
        "distils the pruned heads into their peers, `peer (no peer loss)` is its ablation "
        "(benchmarks/peer.py)": RESULTS.parent / f"peer{loop_suffix(loop)}" / "results.jsonl",
    }


def own_protocol_rows(tasks: tuple[str, ...], loop: dict) -> list[dict]:
    """The pruned rows of `own_protocols` on ``tasks``, each with its protocol as regime; runs
    with other loop options than the defaults are methods of their own (``smp (bf16)``).
    Budget-mode rows (their method chose the fraction) stay in their own benchmark's report."""
    rows = []
    for regime, path in own_protocols(loop).items():
        # by (task, key): peer's run keys do not name the task, SMP's do
        latest = {(row["task"], row["key"]): row for row in read_results(path)}
        for row in latest.values():
            if row["task"] in tasks and row.get("fraction", 0) > 0 and "budget" not in row:
                rows.append(row | {"regime": regime, "method": loop_label(row)})
    return with_dev_constant(rows)


def astar_completions(rows: list[dict]) -> str:
    """Where A*'s fixed-K search ran out of evaluations before K heads, how many heads of its
    set came from completing it in HISP's order instead (rows of older runs don't say)."""
    points = {}
    for row in rows:
        completed = row.get("certificate", {}).get("completed_heads")
        if row["method"] == "astar" and row["regime"] == "r0" and completed:
            points.setdefault((row["task"], row["fraction"]), []).append(
                (completed, row["heads_removed"])
            )
    if not points:
        return ""
    listed = ", ".join(
        f"{task} {fraction:.0%} ({'; '.join(f'{c} of {k}' for c, k in sorted(runs))})"
        for (task, fraction), runs in sorted(points.items())
    )
    return (
        " A* ran out of its evaluations before K heads at these R0 points, and the heads "
        "its search had not chosen were completed in HISP's gradient order (per seed, "
        f"completed of removed): {listed}. There its curve is part search, part HISP."
    )


def write_report(
    name: str,
    preset: dict,
    runs: Path,
    results: Path,
    loop: dict,
    tasks: tuple[str, ...] | list[str] | None = None,
) -> None:
    """results.jsonl gets every task's rows; ``tasks`` narrows only the report (a task still
    running left out), so re-rendering never drops committed rows."""
    every = preset["tasks"]
    rows = [row for task in every for row in read_results(runs / task / "results.jsonl")]
    if not rows:
        return
    rows = with_dev_constant(rows)  # rows of older runs: the report flags collapsed runs
    write_rows(results / "results.jsonl", rows)
    for task in every:
        keep_settings(runs / task, results / SETTINGS / f"{task}.json")
    shown_rows = [row for row in rows if tasks is None or row["task"] in tasks]
    if not shown_rows:
        return
    shown = tuple(sorted({row["task"] for row in shown_rows}))
    note = notes(name, loop_description(loop), devices_description(shown_rows))
    note += astar_completions(shown_rows)
    report = run_report(results, note, own_protocol_rows(shown, loop), shown)
    for leftover in results.glob(".report-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    print(f"wrote {report}")


if __name__ == "__main__":
    main()

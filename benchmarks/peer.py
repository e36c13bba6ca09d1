"""Benchmark: Automatic Peer Distillation, lossless mode and against HISP + KD and itself
without the peer loss, all on the same training budget and teacher.

- Lossless mode (``compare`` budgets, seed 0) at epsilon 0 and 0.5: the fraction of heads each
  task loses, and dense vs pruned dev. Bisection (the issue's search) always; with
  ``--descend`` also ``search=descend`` (the grid from the top down to the first feasible
  fraction: the largest feasible one where the curve is not monotone), as
  ``peer (descend)`` rows from a run dir of their own.
- At 50% and 70% of heads, seeds 0-2, R1 only, the same number of optimizer steps (the recovery
  budget) and the same dense teacher for every row: ``peer``; ``hisp`` then recovery with KD
  from the dense model; and ``peer`` with ``beta_peer=0`` (the same pipeline without the peer
  loss: what peer distillation itself buys).
Dense models and teachers come from the dense cache (each task's recipe). Every run appends to
its results.jsonl (a killed benchmark resumes); results and report.md under
benchmarks/results/peer/, rewritten after every task from every task's run dirs (a fresh
checkout puts the committed rows, and the settings they were run with, back into them first).
``--device cuda`` runs on a GPU; each row records where it trained. ``--dense-train-cap
sst2=20000`` fine-tunes SST-2's teacher (and dense reference) on a seeded 20,000-example
subset, as SST-2's SMP rows are (the issue allows a subset for SST-2; the report says so).

    python benchmarks/peer.py [--tasks rte,mrpc,stsb,cola,sst2] [--seeds 0,1,2] [--descend]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from _rows import (
    HEAD_COMPARISON_RUNS,
    HEAD_SEARCH_SAMPLES,
    SETTINGS,
    TASKS,
    add_device_argument,
    add_loop_arguments,
    devices_description,
    keep_settings,
    loop_description,
    loop_options,
    loop_suffix,
    parse_caps,
    parse_seeds,
    read_json,
    restore_run_dir,
    write_rows,
)

from prunekit.recipes.compare import CompareConfig, dense_recipe, read_results, run_compare
from prunekit.recipes.report import run_report
from prunekit.train import DistillConfig, TrainConfig

RESULTS = Path(__file__).parent / "results" / "peer"
RUNS = Path("runs/peer")
NO_PEER = "peer (no peer loss)"
DESCEND = "peer (descend)"


def places(args) -> tuple[Path, Path]:
    """(runs, results) folders: the default loop options in the plain ones, others in their
    own (``-bf16``, ``-grouped``)."""
    # a training budget other than the default is a study of its own
    budget = f"-e{args.recover_epochs}" if args.recover_epochs != 1 else ""
    budget += f"-cap{args.recover_max_samples}" if args.recover_max_samples != 10_000 else ""
    # a peer loss over features other than the spec's squared norm: a study of its own too
    budget += f"-peer-{args.peer_reduction}" if args.peer_reduction != "sum" else ""
    suffix = loop_suffix(loop_options(args)) + budget
    return Path(f"{RUNS}{suffix}"), Path(f"{RESULTS}{suffix}")


def sweeps(task: str, args) -> list[tuple[Path, dict, str | None]]:
    """(run dir, compare settings, renamed method) of the four studies of one task, the ones
    this call does not run included (their run dirs hold committed rows all the same)."""
    runs = places(args)[0]
    head_runs = Path(f"{HEAD_COMPARISON_RUNS}{loop_suffix(loop_options(args))}")
    common = dict(
        task=task,
        data_dir=args.data_dir,
        recover=TrainConfig(epochs=args.recover_epochs),
        recover_max_samples=args.recover_max_samples or None,
        **loop_options(args),  # recovery and peer alike (compare applies them to both)
        # a capped teacher: the task's recipe on a seeded subset (SST-2's whole split: ~65 min
        # a seed on this CPU); None: the recipe as it is
        recipe=dense_recipe(task, max_train_samples=args.dense_train_cap.get(task)),
        distill=DistillConfig(),
        search_samples=HEAD_SEARCH_SAMPLES,  # the head comparison's, so its HISP rows apply
        regimes=("r1",),
        time_speed=False,
        device=args.device,
        progress=False,
    )
    own = {"peer_reduction": args.peer_reduction} if args.peer_reduction != "sum" else {}
    if own:  # the plain study's settings stay as its run dirs recorded them
        common["method_options"] = {"peer": own}
    fixed = dict(fractions=(0.5, 0.7), seeds=args.seeds, **common)
    # Fixed fractions and lossless mode share one run dir, so peer's students trained by one
    # are read back by the other (its cache): lossless probes 0.50 and 0.70 among others.
    searched = lossless_seeds(args)
    lossless = dict(
        common, methods=(), budgets=(0.0, 0.5), budget_methods=("peer",), seeds=searched or (0,)
    )
    descend = {"peer": {"search": "descend", **own}}
    return [
        (
            runs / task,
            # HISP + KD at 50/70% is head_baselines' R1 run when the settings match: borrowed
            dict(fixed, methods=("peer", "hisp"), borrow_from=(head_runs / task,)),
            None,
        ),
        *([(runs / task, lossless, None)] if searched else []),
        # without the peer loss its reduction does not matter: the plain study's ablation
        *(
            [
                (
                    runs / "no_peer" / task,
                    dict(fixed, methods=("peer",), method_options={"peer": {"beta_peer": 0.0}}),
                    NO_PEER,
                )
            ]
            if not own
            else []
        ),
        # its own run dir: compare refuses a run dir whose method settings differ, so its
        # students are trained again rather than read from bisection's memo (on MRPC up to
        # ten, 0.90 down to 0.45, three of which bisection trained)
        (runs / "descend" / task, dict(lossless, method_options=descend), DESCEND),
    ]


def runs_now(renamed: str | None, args) -> bool:
    """Whether this call runs a study: the descending search only with ``--descend`` and a
    seed lossless mode runs with."""
    return renamed != DESCEND or (args.descend and bool(lossless_seeds(args)))


def lossless_seeds(args) -> tuple[int, ...]:
    """The seeds of this call that lossless mode runs with: those of ``--seeds`` that
    ``--lossless-seeds`` names (seed 0 by default, the issue's)."""
    return tuple(s for s in args.seeds if s in args.lossless_seeds)


def run_dirs(task: str, args) -> dict[Path, str | None]:
    """Each run dir of one task's sweeps once (lossless mode shares the fixed-fraction one),
    with the name its peer rows take in the results (None: they stay ``peer``)."""
    return {out: renamed for out, _, renamed in sweeps(task, args)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--recover-epochs", type=int, default=1)
    parser.add_argument(
        "--recover-max-samples",
        type=int,
        default=10_000,
        help="train examples per epoch of the training budget, a seeded subset of larger "
        "splits (only SST-2's 61k is cut; as in head_baselines' full preset); 0: all",
    )
    add_device_argument(parser, "every row's training")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--seeds",
        default="0,1,2",
        help="comma-separated seeds among 0,1,2 of the fixed-fraction rows (lossless mode runs "
        "with seed 0): run a seed after the head comparison has it, and its HISP + KD rows "
        "are borrowed instead of trained again",
    )
    parser.add_argument(
        "--descend",
        action="store_true",
        help="also lossless mode with search=descend (lossless mode's seeds; students trained "
        "again)",
    )
    parser.add_argument(
        "--lossless-seeds",
        default="0",
        help="seeds of --seeds that lossless mode also runs with (default 0, the issue's; seed "
        "0's teachers won the recipe sweep on the validation split lossless mode judges on)",
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--peer-reduction",
        choices=("sum", "mean"),
        default="sum",
        help="peer's peer loss over the features: the spec's squared norm, or their mean (an "
        "MSE: benchmarks/results/peer_beta); mean is a study of its own, without the no-peer "
        "ablation, which is the plain study's",
    )
    parser.add_argument(
        "--dense-train-cap",
        default="",
        help="TASK=N,...: TASK's dense teacher fine-tuned on a seeded N-example train subset "
        "(its recipe otherwise; the issue allows a subset for SST-2), e.g. sst2=20000",
    )
    add_loop_arguments(parser, "every row (peer and recovery alike)")
    args = parser.parse_args()
    args.dense_train_cap = parse_caps(parser, "--dense-train-cap", args.dense_train_cap, TASKS)
    if args.recover_epochs < 1 or args.recover_max_samples < 0:
        parser.error("--recover-epochs must be >= 1 and --recover-max-samples >= 0 (0: all)")
    args.seeds = parse_seeds(parser, args.seeds, (0, 1, 2))
    args.lossless_seeds = parse_seeds(parser, args.lossless_seeds, (0, 1, 2))
    if args.descend and not lossless_seeds(args):
        parser.error("--descend runs lossless mode: --seeds must hold one of --lossless-seeds")
    tasks = args.tasks.split(",")
    restore_committed(args)
    for task in tasks:
        if not args.report_only:
            for out, settings, renamed in sweeps(task, args):
                if runs_now(renamed, args):
                    # the results and report after every row: a step cut short (or a failed
                    # command) commits what it finished, not the rows of the run before
                    run_compare(
                        CompareConfig(out=out, **settings),
                        after_run=lambda row: write_results(TASKS, args),
                    )
        write_results(TASKS, args)  # every task's rows, not only this call's


def _settings_file(out: Path, args) -> Path:
    """Where the results keep a run dir's config.json: ``settings/rte.json``,
    ``settings/no_peer-rte.json``."""
    relative = out.relative_to(places(args)[0])
    return places(args)[1] / SETTINGS / ("-".join(relative.parts) + ".json")


def restore_committed(args) -> None:
    """A fresh checkout has the committed rows but not the run dirs: put them back (undoing
    `write_results`' renaming), so runs resume after them and the report keeps them."""
    committed = read_results(places(args)[1] / "results.jsonl")  # keys repeat across tasks
    for task in TASKS:
        studies = run_dirs(task, args)
        for out, renamed in studies.items():
            mine = [
                _renamed(row, renamed, "peer")
                for row in committed
                if row["task"] == task and _study(row, studies.values()) == renamed
            ]
            restored = restore_run_dir(out, mine, _settings_file(out, args))
            if restored:
                print(f"{task}: {restored} committed rows put back into {out}")


# A study's peer rows are `peer` (fixed fractions) and `peer-budget` (lossless mode) in its
# run dir, as compare names them; a renamed study's rows carry its name in the results.
_SUFFIXES = ("", "-budget")


def _renamed(row: dict, old: str | None, new: str | None) -> dict:
    """``row`` with method ``old[-budget]`` (and its key) named ``new[-budget]``."""
    for suffix in _SUFFIXES if old and new else ():
        if row["method"] == f"{old}{suffix}":
            key = row["key"].replace(f"{old}{suffix}|", f"{new}{suffix}|", 1)
            return row | {"method": f"{new}{suffix}", "key": key}
    return row


def _study(row: dict, names) -> str | None:
    """The renamed study among ``names`` that a committed row belongs to (None: the plain
    one, whose rows keep compare's method names)."""
    return next((n for n in names if n and row["method"] in (n + s for s in _SUFFIXES)), None)


def _cap(args) -> str:
    cap = args.recover_max_samples
    return f", at most {cap:,} examples: a seeded subset of larger splits" if cap else ""


def capped_teachers_note(tasks: list[str], args) -> str:
    """Which tasks' teachers (and dense references) trained on a train subset, as their run
    dirs' settings record it (a later --report-only call need not repeat the flag)."""
    capped = {}
    for task in tasks:
        for out in run_dirs(task, args):
            settings = read_json(out / "config.json") if (out / "config.json").is_file() else {}
            if cap := (settings.get("recipe") or {}).get("max_train_samples"):
                capped[task] = cap
    return "".join(
        f" {task}'s dense teacher and reference: its recipe on a seeded {cap:,}-example "
        "subset of the train split (`--dense-train-cap`)."
        for task, cap in capped.items()
    )


def teachers_note(rows: list[dict]) -> str:
    """Where one (task, seed) has rows from more than one dense model: compare keeps one per
    run dir, but the studies' run dirs are separate, and a dense cache rebuilt on another
    machine gives another model (the same recipe and seed, other floats)."""
    models: dict[tuple[str, int], dict[str, float]] = {}
    for row in rows:
        if row.get("dense_digest"):
            models.setdefault((row["task"], row["seed"]), {})[row["dense_digest"]] = row.get(
                "dense_dev", float("nan")
            )
    mixed = [
        f"{task} seed {seed} ({', '.join(f'{d[:8]}: dev {v:.2f}' for d, v in sorted(dev.items()))})"
        for (task, seed), dev in sorted(models.items())
        if len(dev) > 1
    ]
    if not mixed:
        return ""
    return (
        " Rows of one task and seed made with more than one dense model directory (the digest "
        "of its files, weights and config; its dev metric): " + "; ".join(mixed) + ". Each "
        "row's Δ is against its own dense model; where the files differ in their weights, rows "
        "of different studies of these seeds compare students of different teachers."
    )


def write_results(tasks: list[str], args) -> None:
    rows = []
    for task in tasks:
        for out, renamed in run_dirs(task, args).items():
            for row in read_results(out / "results.jsonl"):
                row = _renamed(row, "peer", renamed)
                rows.append(row | {"device": row.get("device", "cpu")})  # older rows: the CPU
    if not rows:
        return
    results = places(args)[1]
    write_rows(results / "results.jsonl", rows)
    for task in tasks:
        for out in run_dirs(task, args):
            keep_settings(out, _settings_file(out, args))
    devices = devices_description(rows)
    own = [r for r in rows if not r.get("borrowed_from")]  # borrowed runs cost nothing here
    seconds = sum(r.get("decision_seconds", 0) + r.get("recovery_seconds", 0) for r in own)
    hisp = sum(r["method"] == "hisp" for r in rows)
    borrowed = len(rows) - len(own)
    ablation = (
        f", and `{NO_PEER}` is peer with beta_peer = 0" if args.peer_reduction == "sum" else ""
    )
    searched = sorted({r["seed"] for r in rows if r["method"].endswith("-budget")})
    notes = (
        f"`benchmarks/peer.py`, trained on {devices}, in "
        f"{loop_description(loop_options(args))}. R1 rows: every method "
        f"gets the same optimizer steps (recovery: {args.recover_epochs} epoch(s) of the "
        f"train split{_cap(args)}) and the same dense teacher; peer trains its own copy within "
        f"that budget (†), HISP recovers with KD{ablation}. Peer's loss over the features: "
        f"{args.peer_reduction} (`peer_reduction`). HISP rows made "
        "with the same settings by head_baselines' full comparison are taken from it "
        f"({borrowed} of {hisp}). Budget rows: "
        "peer's lossless mode at epsilon 0 and 0.5 (validation split), seeds "
        f"{', '.join(map(str, searched))} (seed 0's teachers won the recipe sweep on that "
        "split), bisecting the "
        f"grid; `{DESCEND}`: the grid from the top down to the first feasible fraction (the "
        "largest feasible one under any curve). Training cost "
        f"of all runs: {seconds / 3600:.2f} h."
        + capped_teachers_note(tasks, args)
        + teachers_note(rows)
    )
    report = run_report(results, notes)
    for leftover in results.glob(".report-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    print(f"wrote {report}")


if __name__ == "__main__":
    main()

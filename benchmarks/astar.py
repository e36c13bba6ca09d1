"""Benchmark: A* head search with an accuracy budget, against HISP and Random at the same head
counts (R0, no retraining), plus what the prefix-activation cache saves.

Uses the dense models cached by benchmarks/head_baselines.py (runs/head_baselines/<task>/), so
run that first or let this fine-tune them. Writes benchmarks/results/astar/{results.jsonl,
report.md, cache.json, PNGs}.

    python benchmarks/astar.py [--tasks stsb,mrpc,sst2,rte] [--budgets 0,0.5,1,2]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from prunekit.data import TaskData
from prunekit.models import load, load_tokenizer
from prunekit.recipes.compare import CompareConfig, read_results, run_compare
from prunekit.recipes.report import run_report
from prunekit.scoring.evaluator import GatedEvaluator
from prunekit.train import TrainConfig
from prunekit.train.task_recipes import cached_dense_model

RESULTS = Path(__file__).parent / "results" / "astar"
RUNS = Path("runs/head_baselines")
PER_K_NOTE = (
    "Why `deepest`: a first run with `budget_search=per-k` (fixed-K A* for K = 1, 2, ...; "
    "branching 8, 150-state cap) on STS-B returned the same 17-head set at all four budgets "
    "(search-split drop 0.00, dev drop 3.62, 683 s for B = 0, the others read from the memo). "
    "Removing up to 17 heads left the search-split Spearman at or above a0, and per-K A* must "
    "expand every state with a smaller drop before it accepts a K-set past that plateau, so the "
    "cap, not the budget, decided the result. The STS-B searches below reuse that run's memo "
    "(209 states), so their times are not those of a cold search. The SST-2 rows were run again"
    " after the back-off changed from trying the 16 largest measured sets (all failed "
    "re-verification on the 2,000 examples, so B = 0, 0.5 and 1 certified nothing) to bisecting "
    "their sizes; that run read the first one's memo, whose cold B = 0 search took 909 s. MRPC "
    "and RTE B = 0 times are those of cold searches; RTE's shared the two cores with that SST-2 "
    "re-run and the test suite for most of its run; run again alone (`prunekit prune --method "
    "astar --budget 0 --max-evals 200 --branching 8 --method-option cache_mb=8192`) the same "
    "search took 1,118 s and chose the same 25 heads.\n\n"
)


def cache_speedup(
    task: str, data_dir, search_samples: int, seed: int = 0, states: int = 40
) -> dict:
    """Time the same states with the cached/stacked evaluator and with plain full forwards."""
    dense_dir = cached_dense_model("default", task, seed, data_dir=data_dir)
    model = load(dense_dir)
    data = TaskData.for_task(task, load_tokenizer(dense_dir), data_dir, seed)
    batches = list(data.batches("validation", search_samples)())
    heads = [(layer, h) for layer in range(6) for h in range(12)]
    rng = random.Random(seed)
    # A*-like workload: a parent, then children that each add one head.
    workload = [frozenset()]
    while len(workload) < states:
        parent = rng.choice(workload)
        workload += [parent | {h} for h in rng.sample(heads, 6)]
    workload = workload[:states]
    timings = {}
    for name, kwargs in (("naive", {"cache_bytes": 0, "states_per_forward": 1}), ("cached", {})):
        evaluator = GatedEvaluator(model, [dict(b) for b in batches], data.task, **kwargs)
        started = time.perf_counter()
        for state in workload:  # one at a time, in the order a search would ask
            evaluator.metric(state)
        timings[name] = {
            "seconds": time.perf_counter() - started,
            "layer_forwards": evaluator.stats.layer_forwards,
            "layer_forwards_saved": evaluator.stats.layer_forwards_saved,
        }
    return {
        "task": task,
        "states": states,
        "search_examples": len(data.dataset("validation", search_samples)),
        **timings,
        "speedup": timings["naive"]["seconds"] / timings["cached"]["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="stsb,mrpc,sst2,rte")
    parser.add_argument("--budgets", default="0,0.5,1,2")
    parser.add_argument("--max-evals", type=int, default=200)
    parser.add_argument("--branching", type=int, default=8)
    parser.add_argument(
        "--search-samples",
        type=int,
        default=600,
        help="validation splits up to this size are searched whole; larger ones are subsampled",
    )
    parser.add_argument("--cache-tasks", default="stsb", help="tasks timed naive vs cached")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite results and report from runs/ only"
    )
    args = parser.parse_args()
    budgets = tuple(float(b) for b in args.budgets.split(","))
    tasks = args.tasks.split(",")
    options = {
        "astar": {"max_evals": args.max_evals, "branching": args.branching, "cache_mb": 8192}
    }
    common = dict(
        seeds=(0,),
        data_dir=args.data_dir,
        recover=TrainConfig(epochs=1),
        search_samples=args.search_samples,
        method_options=options,
        regimes=("r0",),
        progress=False,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    cache_file = RESULTS / "cache.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if args.report_only:
        write_results([t for t in tasks if (RUNS / t / "results.jsonl").is_file()], args, cache)
        return
    for task in tasks:  # results are rewritten after each task: a cut-short run keeps its rows
        out = RUNS / task
        rows = run_compare(
            CompareConfig(
                task=task,
                out=out,
                methods=(),
                budgets=budgets,
                **common,
            )
        )
        counts = sorted(
            {
                r["fraction"]
                for r in rows
                if r.get("method") == "astar-budget" and r["heads_removed"] > 0
            }
        )
        if counts:  # HISP and Random at exactly the head counts A* chose
            run_compare(
                CompareConfig(
                    task=task,
                    out=out,
                    methods=("hisp", "random"),
                    fractions=tuple(counts),
                    **common,
                )
            )
        if task in args.cache_tasks.split(",") and task not in cache:
            cache[task] = cache_speedup(task, args.data_dir, args.search_samples)
            cache_file.write_text(json.dumps(cache, indent=2) + "\n")
        write_results(tasks[: tasks.index(task) + 1], args, cache)


def write_results(tasks: list[str], args: argparse.Namespace, cache: dict) -> None:
    keep = []
    for task in tasks:
        rows = read_results(RUNS / task / "results.jsonl")
        counts = {round(r["fraction"], 6) for r in rows if r.get("method") == "astar-budget"}
        keep += [
            r
            for r in rows
            if r.get("method") == "astar-budget"
            or (r["regime"] == "r0" and r["seed"] == 0 and round(r["fraction"], 6) in counts)
        ]
    (RESULTS / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    notes = (
        f"A* (`benchmarks/astar.py`) in max-heads-under-budget mode (`budget_search=deepest`), "
        f"budgets {args.budgets}, branching {args.branching}, at most {args.max_evals} search "
        "states per run (plus a0 and the single-head ablations); each head added costs up to "
        f"{args.branching} evaluations, so no set can exceed {args.max_evals // args.branching} "
        "heads, and a capped run's result is a lower bound on what the budget allows. "
        "Search split: the validation "
        "split carved from train, "
        f"whole when it has at most {args.search_samples} examples (RTE 249, MRPC 367, STS-B "
        f"575), else {args.search_samples} seeded examples (SST-2, whose final set is then "
        "re-verified on all 2,000); the guarantee holds there, never on dev. The budgets of one "
        "task share a memo of measured states (`memo_dir`): a later budget reads the states an "
        "earlier one measured instead of running them again. HISP and Random are run at exactly "
        "the head counts A* chose (their rows in the tables at those fractions), R0, seed 0. "
        "Dense models are those of benchmarks/head_baselines.py (1 epoch; 3 for RTE and MRPC; "
        "SST-2 on an 8,000-example train subset).\n\n"
        + PER_K_NOTE
        + _findings(keep)
        + _cache_section(cache)
    )
    print(f"wrote {run_report(RESULTS, notes)}")


def _findings(rows: list[dict]) -> str:
    """What each budget row says, in words, so the table is not misread."""
    lines = []
    for r in sorted(
        (r for r in rows if r.get("method") == "astar-budget"),
        key=lambda r: (r["task"], r["budget"]),
    ):
        c = r["certificate"]
        verified = c.get("verified") or {}
        how = [f"{c['evaluations']} evaluations"]
        if c["capped"]:
            how.append("stopped by the evaluation cap")
        if verified.get("backed_off"):
            how.append("the best set failed re-verification on the whole split and it backed off")
        if r["heads_removed"] == 0:
            found = "the certified set is empty (no head removed)"
        else:
            found = (
                f"{r['heads_removed']} heads removed, search-split drop {c['final_drop']:.2f}, dev"
                f" drop {r['dev_drop']:.2f} ({'a violation' if r['dev_violation'] else 'within B'})"
            )
        lines.append(f"- {r['task']}, B = {r['budget']:g}: {found}; {', '.join(how)}.")
    if any(r.get("dev_violation") for r in rows):
        lines.append(
            "\nA violation means the drop certified on the search split did not carry over to "
            "dev. The search measures hundreds of sets on the same few hundred examples and keeps"
            " those that score best there, so part of their score is that split's noise "
            "(selection bias); dev, which the search never sees, shows the real drop. The "
            "guarantee is only as good as the split it is measured on."
        )
    return ("\n".join(lines) + "\n\n" + _same_heads_table(rows)) if lines else ""


def _same_heads_table(rows: list[dict]) -> str:
    """A*'s set against HISP and Random removing exactly as many heads (R0, dev)."""
    dev = {
        (r["task"], r["method"], r["heads_removed"]): r["dev"]
        for r in rows
        if r.get("method") in ("hisp", "random") and r["regime"] == "r0"
    }
    lines = [
        "Dev metric at the head counts A* chose (R0, seed 0; dense in brackets):",
        "",
        "| task | B | heads removed | A* | HISP | Random |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(
        (r for r in rows if r.get("method") == "astar-budget" and r["heads_removed"] > 0),
        key=lambda r: (r["task"], r["budget"]),
    ):
        same = [dev.get((r["task"], m, r["heads_removed"])) for m in ("hisp", "random")]
        cells = " | ".join("-" if v is None else f"{v:.2f}" for v in same)
        lines.append(
            f"| {r['task']} | {r['budget']:g} | {r['heads_removed']} | {r['dev']:.2f} "
            f"({r['dense_dev']:.2f}) | {cells} |"
        )
    return "\n".join(lines) + "\n\n"


def _cache_section(cache: dict) -> str:
    lines = [
        "Prefix-activation cache, same A*-like workload (a parent state, then children "
        "adding one head each) evaluated state by state:",
        "",
        "| task | examples | states | naive (s) | cached + stacked (s) | speed-up | "
        "layer-forwards run (naive / cached) | saved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task, c in cache.items():
        saved = c["cached"]["layer_forwards_saved"]
        total = saved + c["cached"]["layer_forwards"]
        lines.append(
            f"| {task} | {c['search_examples']} | {c['states']} | {c['naive']['seconds']:.1f} | "
            f"{c['cached']['seconds']:.1f} | {c['speedup']:.2f}x | "
            f"{c['naive']['layer_forwards']} / {c['cached']['layer_forwards']} | "
            f"{saved / total:.0%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

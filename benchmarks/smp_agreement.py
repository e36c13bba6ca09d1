"""Diagnostic: do SMP pruners trained on different objectives choose different heads, and does
meta-training move a pruner away from where it started?

Two SMP pruners were meta-trained on the default MiniLM with the same seed: the shipped one
on the pooled [CLS] of pair tasks (the paper's choice; MiniLM's pooler is untrained) and one
on the mean of the last states (``--pair-representation mean``). Both pruned models fail to
learn MRPC on seed 2. For each task, on a seeded sample of training inputs (no labels), this
scores every head with each pruner and with the untrained pruner both start from (seed 0),
and compares their rankings: Spearman's ρ over all heads and the share of the heads kept at
50% per layer that two pruners have in common (two random halves share 50% on average). It
also scores each pruner with its BatchNorm on batch statistics, as during meta-training,
against the running statistics SMP scores with (the spec's eval mode): some running variances
are far below BatchNorm's epsilon, so the two could differ.

    python benchmarks/smp_agreement.py [--tasks mrpc,stsb,rte,cola] [--examples 256]

Writes ``benchmarks/results/smp/agreement.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import json
from itertools import combinations
from pathlib import Path

import torch
from scipy.stats import spearmanr
from smp_diagnostics import keep_top_half
from smp_report import head_overlap
from torch.utils.data import DataLoader, Subset

from prunekit.data import TaskData, get_task, make_collate
from prunekit.models import current_plan
from prunekit.models.sources import load_for_task
from prunekit.scoring.maps import attention_maps
from prunekit.scoring.smp import PAIR, SINGLE, HeadPruner, load_pruner, map_scores

RESULTS = Path(__file__).parent / "results" / "smp"
PRUNERS = {"shipped": "builtin", "mean": "benchmarks/results/smp/pruners/smp_pruner_mean"}


def kept_half(scores: torch.Tensor) -> list[set[int]]:
    """The top half of each layer's heads by ``scores`` (SMP's set at 50% per layer)."""
    return [set(row.nonzero().flatten().tolist()) for row in keep_top_half(scores)]


def compare(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Spearman's ρ over every head, and the shared share of the heads kept at 50% per layer."""
    rho = spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    shared = head_overlap(kept_half(a), kept_half(b))
    return {"spearman": round(float(rho), 3), "shared_half": round(shared, 3)}


def task_scores(task: str, examples: int, seed: int) -> dict[str, torch.Tensor]:
    """Every pruner's mean scores ``[L, H]`` on ``examples`` training inputs of ``task``."""
    spec = get_task(task)
    model, tokenizer = load_for_task("default", spec, "eager")
    model.eval()
    data = TaskData.for_task(spec, tokenizer, None, seed, 128).dataset("train")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    subset = Subset(data, sorted(order[:examples].tolist()))
    loader = DataLoader(subset, batch_size=16, collate_fn=make_collate(tokenizer))
    channel = PAIR if len(spec.text_fields) == 2 else SINGLE
    plan = current_plan(model)
    untrained = HeadPruner(8)
    untrained.reset_parameters(torch.Generator().manual_seed(0))  # as train-pruner --seed 0
    pruners = {name: load_pruner(path) for name, path in PRUNERS.items()}
    variants = {f"{name} (eval)": (p, False) for name, p in pruners.items()}
    variants |= {f"{name} (batch statistics)": (p, True) for name, p in pruners.items()}
    variants["untrained (batch statistics)"] = (untrained, True)
    totals = {name: torch.zeros(plan.num_layers, plan.num_heads) for name in variants}
    batches = 0
    with torch.no_grad():
        for batch in loader:
            inputs = {k: v for k, v in batch.items() if k != "labels"}  # labels never read
            maps = attention_maps(model, inputs)
            for name, (pruner, batch_statistics) in variants.items():
                scorer = copy.deepcopy(pruner).train(batch_statistics)  # running stats kept
                totals[name] += map_scores(
                    scorer, maps, inputs["attention_mask"], channel, plan.kept_heads, plan.num_heads
                )
            batches += 1
    return {name: total / batches for name, total in totals.items()}


# The pairs the report shows (the JSON keeps every pair)
SHOWN = (
    "shipped (eval) vs mean (eval)",
    "shipped (eval) vs shipped (batch statistics)",
    "mean (eval) vs mean (batch statistics)",
    "shipped (batch statistics) vs untrained (batch statistics)",
    "mean (batch statistics) vs untrained (batch statistics)",
)


def write_report(results: dict[str, dict], examples: int) -> None:
    lines = [
        "# SMP pruners: do they agree?",
        "",
        f"`python benchmarks/smp_agreement.py` ({examples} seeded training inputs per task, no "
        "labels, the pre-trained MiniLM). Per pair of scorers: Spearman's ρ over the 72 heads / "
        "the share of the heads kept at 50% per layer they have in common (two random halves: "
        "50% on average). *eval*: BatchNorm on running statistics (how SMP scores); *batch "
        "statistics*: as during meta-training; *untrained*: the initialisation both pruners "
        "start from. Every pair is in `agreement.json`.",
        "",
        "| scorers | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for pair in SHOWN:
        cells = [
            f"{r[pair]['spearman']:.2f} / {r[pair]['shared_half']:.0%}" for r in results.values()
        ]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    (RESULTS / "agreement.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mrpc,stsb,rte,cola")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report-only", action="store_true", help="from agreement.json")
    args = parser.parse_args()
    path = RESULTS / "agreement.json"
    if args.report_only:
        saved = json.loads(path.read_text())
        write_report(saved["tasks"], saved["examples"])
        return
    results: dict[str, dict] = {}
    for task in args.tasks.split(","):
        scores = task_scores(task, args.examples, args.seed)
        results[task] = {
            f"{a} vs {b}": compare(scores[a], scores[b]) for a, b in combinations(scores, 2)
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"examples": args.examples, "seed": args.seed, "tasks": results}
    path.write_text(json.dumps(record, indent=2) + "\n")
    write_report(results, args.examples)


if __name__ == "__main__":
    main()

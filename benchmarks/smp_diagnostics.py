"""Diagnostic: does SMP's pruner beat random head sets on its own objective?

SMP's pruned models fine-tune worse than random ones on the default MiniLM
(`benchmarks/results/smp/report.md`). Two causes are possible: the pruner learned nothing (or
learned it backwards), or it learned its objective and the objective does not predict what
fine-tuning needs. This separates them without labels or fine-tuning. For each task, on the
pre-trained model and a seeded sample of training inputs (read as SMP reads them: no labels):

- the pruner's scores, and the set SMP keeps at 50% per layer (the top half of each layer);
- the objective SMP was meta-trained on, KL(D_full ‖ D_pruned) of the representation geometry
  (`prunekit.scoring.smp_meta`), without the training-time feature dropout (deterministic),
  for SMP's set, its inverse (the bottom half of each layer) and ``--random`` random sets of
  the same counts per layer;
- the share of random sets SMP's set beats.

    python benchmarks/smp_diagnostics.py [--tasks mrpc,stsb,rte] [--examples 192] [--random 16]

Writes ``benchmarks/results/smp/diagnostics.{json,md}`` for the shipped pruner and
``diagnostics-NAME-DIGEST.{json,md}`` for another (``--pruner DIR``, named as `smp.py` names its
rows), so a second pruner's diagnostic never replaces the first's. The committed run took 64
minutes at the lowest priority beside a training benchmark on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from smp import pruner_name
from torch.utils.data import DataLoader, Subset

from prunekit.data import TaskData, get_task, make_collate
from prunekit.models import load, load_tokenizer
from prunekit.models.gates import HeadGates
from prunekit.models.sources import resolve_model
from prunekit.scoring.smp import (
    PAIR,
    SINGLE,
    head_scores,
    load_pruner,
    pruner_provenance,
    resolve_pruner,
)
from prunekit.scoring.smp_meta import geometry_kl, sentence_representation

RESULTS = Path(__file__).parent / "results" / "smp"


def keep_top_half(order: torch.Tensor) -> torch.Tensor:
    """A ``[L, H]`` 0/1 mask keeping the H/2 heads of each layer that ``order`` ranks highest."""
    mask = torch.zeros_like(order)
    half = order.shape[1] // 2
    for layer, row in enumerate(order):
        mask[layer, row.argsort(descending=True)[:half]] = 1.0
    return mask


def diagnose(task: str, model, tokenizer, pruner, pair: str, args: argparse.Namespace) -> dict:
    """One task's row; ``pair``: the representation the pruner was meta-trained on."""
    spec = get_task(task)
    channel = PAIR if len(spec.text_fields) == 2 else SINGLE
    train = TaskData.for_task(spec, tokenizer, args.data_dir, args.seed).dataset("train")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    inputs = Subset(train, sorted(order[: args.examples].tolist()))
    collate = make_collate(tokenizer)
    scores = head_scores(
        model, pruner, DataLoader(inputs, batch_size=16, collate_fn=collate), channel
    )
    batches = [
        {k: v for k, v in batch.items() if k != "labels"}
        for batch in DataLoader(inputs, batch_size=64, collate_fn=collate)
    ]
    with torch.no_grad():
        full = [
            sentence_representation(model(**b), b["attention_mask"], channel, pair) for b in batches
        ]

    def objective(mask: torch.Tensor) -> float:
        total = 0.0
        with torch.no_grad(), HeadGates(model, mask):
            for batch, reference in zip(batches, full, strict=True):
                output = model(**batch)
                pruned = sentence_representation(output, batch["attention_mask"], channel, pair)
                total += float(geometry_kl(reference, pruned))
        return total / len(batches)

    generator = torch.Generator().manual_seed(args.seed + 1)
    random = [
        objective(keep_top_half(torch.rand(scores.shape, generator=generator)))
        for _ in range(args.random)
    ]
    smp, inverse = objective(keep_top_half(scores)), objective(keep_top_half(-scores))
    return {
        "task": task,
        "channel": "pair" if channel == PAIR else "single",
        "representation": "pooled [CLS]" if channel == PAIR and pair == "pooler" else "mean-pooled",
        "pair_representation": pair,
        "examples": len(inputs),
        "score_range": [float(scores.min()), float(scores.max())],
        "kl_smp": smp,
        "kl_inverse": inverse,
        "kl_random_mean": statistics.fmean(random),
        "kl_random_std": statistics.stdev(random) if len(random) > 1 else 0.0,
        "kl_random_min": min(random),
        "kl_random_max": max(random),
        "random_sets": len(random),
        "smp_beats_random_share": sum(smp < r for r in random) / len(random),
    }


def output_stem(pruner: str | Path) -> str:
    """``diagnostics`` for the shipped pruner, ``diagnostics-NAME-DIGEST`` for any other."""
    name = pruner_name(resolve_pruner(pruner))
    return f"diagnostics-{name}" if name else "diagnostics"


# What makes two runs' rows comparable. The pruner itself is the file's (`output_stem` names
# it by digest), however its path was spelled.
COMPARABLE = ("pruner_steps", "seed", "examples", "random_sets")


def merged(previous: dict | None, payload: dict, rows: list[dict]) -> list[dict]:
    """The rows of an earlier run of the same pruner and settings, with ``rows`` replacing those
    of the tasks measured again: a run on other tasks adds to the file instead of erasing it."""
    if not previous:
        return rows
    if any(previous.get(k) != payload.get(k) for k in COMPARABLE):
        print(f"earlier rows dropped: made with other settings ({_settings(previous)})")
        return rows
    again = {r["task"] for r in rows}
    return [r for r in previous.get("tasks", []) if r["task"] not in again] + rows


def _settings(payload: dict) -> str:
    return ", ".join(f"{k} {payload.get(k)}" for k in COMPARABLE)


def write(rows: list[dict], made: dict, args: argparse.Namespace) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = output_stem(args.pruner)
    payload = {
        "pruner": str(args.pruner),
        "pruner_steps": made.get("steps"),
        "seed": args.seed,
        "examples": args.examples,
        "random_sets": args.random,
    }
    target = RESULTS / f"{stem}.json"
    previous = json.loads(target.read_text()) if target.exists() else None
    if previous is not None and previous.get("tasks"):  # files from before the settings were
        first = previous["tasks"][0]  # recorded: each row has its own
        previous = {"examples": first["examples"], "random_sets": first["random_sets"]} | previous
    rows = merged(previous, payload, rows)
    target.write_text(json.dumps({**payload, "tasks": rows}, indent=2) + "\n")
    lines = [
        "# SMP diagnostic: the pruner on its own objective",
        "",
        "KL(D_full ‖ D_pruned) of the representation geometry SMP was meta-trained to keep "
        "(lower is better), on the pre-trained default MiniLM, 50% of heads kept per layer, "
        f"{rows[0]['examples'] if rows else 0} seeded training inputs per task (no labels), no "
        f"feature dropout. Pruner: {args.pruner} ({made.get('steps')} steps). Written by "
        "`benchmarks/smp_diagnostics.py`.",
        "",
        "| task | representation | SMP's set | its inverse | random sets: mean ± std (min–max) | "
        "random sets SMP beats |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            # rows written before the pair representation was an option: the pooled [CLS]
            f"| {r['task']} | {r.get('representation', 'pooled [CLS]')} | "
            f"{r['kl_smp']:.4f} | {r['kl_inverse']:.4f} | {r['kl_random_mean']:.4f} ± "
            f"{r['kl_random_std']:.4f} ({r['kl_random_min']:.4f}–{r['kl_random_max']:.4f}) | "
            f"{r['smp_beats_random_share']:.0%} of {r['random_sets']} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return RESULTS / f"{stem}.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="mrpc,stsb,rte")
    parser.add_argument("--examples", type=int, default=192)
    parser.add_argument("--random", type=int, default=16, help="random head sets per task")
    parser.add_argument("--pruner", default="builtin")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.examples < 2 or args.random < 1:
        parser.error("--examples must be at least 2 and --random at least 1")
    source = resolve_model("default")  # loaded once: every task reads the same model
    model = load(source, attn_implementation="eager").eval()
    tokenizer = load_tokenizer(source)
    pruner = load_pruner(args.pruner)
    made = pruner_provenance(args.pruner)
    # the representation the pruner was meta-trained on (pruners before the option: pooler)
    pair = (made.get("config") or {}).get("pair_representation") or "pooler"
    rows = []
    for task in args.tasks.split(","):
        rows.append(diagnose(task.strip(), model, tokenizer, pruner, pair, args))
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {write(rows, made, args)}")


if __name__ == "__main__":
    main()

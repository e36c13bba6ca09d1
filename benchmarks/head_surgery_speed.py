"""Benchmark: does physically removing heads buy the speed the MAC count promises?

MiniLM-L6 (the PyPI-shipped all-MiniLM-L6-v2 with a sequence-classification head) at 0, 25,
50 and 75 % of heads removed, uniform (same count per layer) and uneven (a seeded random
global choice), all models timed in one process, interleaved. Latency at batch 1 and
throughput at batch 32, sequence length 128, float32 on CPU.

Writes benchmarks/results/head_surgery_speed.{json,md}. Target: measured/ideal >= 0.95.

    python benchmarks/head_surgery_speed.py [--rounds 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from prunekit import apply_plan, current_plan, model_stats
from prunekit.bench import speed_table
from prunekit.data import get_task
from prunekit.methods import HeadTarget, PruneRequest, get_method
from prunekit.models.sources import load_for_task

RESULTS = Path(__file__).parent / "results"
FRACTIONS = (0.25, 0.5, 0.75)
TARGET = 0.95


def build_models(seed: int) -> dict[str, torch.nn.Module]:
    dense, _ = load_for_task("default", get_task("sst2"))
    dense.eval()
    plan = current_plan(dense)
    models = {"baseline": dense}
    for fraction in FRACTIONS:
        keep = plan.heads_total - round(fraction * plan.heads_total)
        for mode in ("uniform", "uneven"):
            target = HeadTarget(keep=keep, per_layer=mode == "uniform")
            chosen = get_method("random")(PruneRequest(dense, plan, target, seed=seed)).plan
            models[f"{fraction:.0%} {mode}"] = apply_plan(copy.deepcopy(dense), chosen)
    return models


def to_markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        "# Head surgery speed (MiniLM-L6, CPU)",
        "",
        f"Measured {result['measured_at']} on {env['cpu']} with {env['torch_threads']} torch "
        f"threads, torch {env['torch']}, {env['dtype']}, sequence length {result['seq_len']}, "
        f"{result['rounds']} interleaved rounds after {result['warmup']} warm-up runs "
        "(median). Ideal = dense encoder MACs / pruned encoder MACs.",
        "",
        "| model | heads | params | latency b1 (ms) | throughput b32 (seq/s) | ideal | "
        "measured b1 | measured b32 | b1/ideal | b32/ideal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in result["models"].items():
        s = entry.get("speedup")
        cells = [
            name,
            str(entry["heads"]),
            f"{entry['parameters']:,}",
            f"{entry['latency']['median_s'] * 1e3:.2f}",
            f"{entry['throughput']['sequences_per_s']:.1f}",
        ]
        if s:
            cells += [
                f"{s['ideal']:.3f}",
                f"{s['latency']:.3f}",
                f"{s['throughput']:.3f}",
                f"{s['latency_vs_ideal']:.3f}",
                f"{s['throughput_vs_ideal']:.3f}",
            ]
        else:
            cells += ["1", "1", "1", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    ratios = [
        (name, kind, e["speedup"][f"{kind}_vs_ideal"])
        for name, e in result["models"].items()
        if "speedup" in e
        for kind in ("latency", "throughput")
    ]
    worst = min(ratios, key=lambda r: r[2])
    met = all(r[2] >= TARGET for r in ratios)
    lines += [
        "",
        f"Target measured/ideal >= {TARGET} at every point: **{'met' if met else 'not met'}** "
        f"(worst: {worst[0]}, {worst[1]}, {worst[2]:.3f}).",
        "",
        "Reproduce: `python benchmarks/head_surgery_speed.py`.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = build_models(args.seed)
    sizes = {name: model_stats(model).to_dict() for name, model in models.items()}
    result = speed_table(models, sizes, rounds=args.rounds, warmup=args.warmup)
    result.update(
        rounds=args.rounds,
        warmup=args.warmup,
        seed=args.seed,
        measured_at=time.strftime("%Y-%m-%d"),
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "head_surgery_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "head_surgery_speed.md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()

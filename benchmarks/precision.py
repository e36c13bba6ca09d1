"""Benchmark: bf16 autocast training against fp32 on this CPU: train-step time, and the dev
metric of the same dense recipe trained both ways.

1. Step time: the default MiniLM, a batch of 32 x 128 random tokens, forward + backward +
   AdamW step, medians of ``--steps`` steps after two warm-up steps, fp32 and bf16 interleaved.
2. Quality: each task's dense recipe (`TASK_RECIPES`) at ``precision="bf16"``, seed 0, through
   the dense cache (its own key), against the cached fp32 model of the same recipe and seed.

Writes benchmarks/results/precision.{json,md}. Run it with nothing else on the machine.

    python benchmarks/precision.py [--tasks mrpc] [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from prunekit.data import primary_metric
from prunekit.models import load
from prunekit.models.sources import resolve_model
from prunekit.train.task_recipes import cached_dense_model, recipe_for

RESULTS = Path(__file__).parent / "results"


def step_seconds(steps: int) -> dict[str, float]:
    """Median seconds of one optimizer step per precision (interleaved, same batch)."""
    model = load(resolve_model("default"))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, model.config.vocab_size, (32, 128), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    labels = torch.randint(0, 2, (32,), generator=generator)
    head = torch.nn.Linear(model.config.hidden_size, 2)

    def step(bf16: bool) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pooled = model(**batch).last_hidden_state[:, 0]
            loss = torch.nn.functional.cross_entropy(head(pooled).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    samples: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(2):
        step(False), step(True)
    for _ in range(steps):
        samples["fp32"].append(step(False))
        samples["bf16"].append(step(True))
    return {name: statistics.median(values) for name, values in samples.items()}


def quality(task: str, data_dir: Path | None) -> dict:
    """Dev and validation of the task's recipe trained in fp32 and in bf16 (seed 0)."""
    row = {"task": task, "metric": primary_metric(task)}
    for precision in ("fp32", "bf16"):
        recipe = recipe_for(task).model_copy(update={"precision": precision})
        path = cached_dense_model("default", task, 0, recipe, data_dir)
        metrics = json.loads((path / "metrics.json").read_text())
        row[precision] = {
            "dev": metrics["dev"]["primary"],
            "validation": metrics["validation"]["primary"],
            "train_seconds": metrics["train_seconds"],
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mrpc")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    timing = step_seconds(args.steps)
    rows = [quality(task, args.data_dir) for task in args.tasks.split(",")]
    result = {"device": "cpu", "threads": torch.get_num_threads(), "step_seconds": timing}
    result["rows"] = rows
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# bf16 autocast training vs fp32 (this CPU)",
        "",
        f"Train step, default MiniLM, batch 32 x 128, {torch.get_num_threads()} threads, median "
        f"of {args.steps} interleaved steps: fp32 {timing['fp32']:.2f} s, bf16 "
        f"{timing['bf16']:.2f} s ({timing['fp32'] / timing['bf16']:.2f}x).",
        "",
        "Each task's dense recipe, seed 0 (one seed: a first look, not a mean):",
        "",
        "| task | metric | fp32 dev | bf16 dev | fp32 validation | bf16 validation | "
        "train minutes fp32 / bf16 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['metric']} | {r['fp32']['dev']:.2f} | {r['bf16']['dev']:.2f} | "
            f"{r['fp32']['validation']:.2f} | {r['bf16']['validation']:.2f} | "
            f"{r['fp32']['train_seconds'] / 60:.1f} / {r['bf16']['train_seconds'] / 60:.1f} |"
        )
    lines += [
        "",
        "Train minutes are wall time as recorded when each model was trained (the fp32 one "
        "may have shared the CPU with other jobs).",
    ]
    (RESULTS / "precision.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

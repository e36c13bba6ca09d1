"""Benchmark: length-grouped training batches (`TrainConfig.group_by_length`) against random
batches on this CPU: padding, epoch time, and the dev metric of the same dense recipe.

1. Padding: token slots of one epoch's batches of 32 (each padded to its longest example)
   over the real tokens, random order vs `LengthGroupedSampler`, for each task's train split.
2. Epoch time: one epoch of ``--time-task`` (the default MiniLM, its recipe), random batches
   then grouped ones, one after the other in this process.
3. Quality: ``--quality-task``'s recipe with ``group_by_length``, seeds 0-2, through the dense
   cache (its own key), against the cached random-batch models of the same recipe and seeds.

Writes benchmarks/results/batching.{json,md}. Run it with nothing else on the machine.

    python benchmarks/batching.py [--tasks mrpc,rte,stsb,cola,sst2] [--time-task mrpc]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from prunekit.data import TaskData, get_task, input_lengths, primary_metric
from prunekit.models.sources import load_for_task
from prunekit.train import finetune
from prunekit.train.batching import LengthGroupedSampler
from prunekit.train.task_recipes import cached_dense_model, recipe_for

RESULTS = Path(__file__).parent / "results"
BATCH = 32
SEEDS = (0, 1, 2)


def task_data(task: str, data_dir: Path | None) -> TaskData:
    spec = get_task(task)
    _, tokenizer = load_for_task("default", spec)
    return TaskData.for_task(spec, tokenizer, data_dir, 0, recipe_for(task).max_seq_length)


def padding(task: str, data_dir: Path | None) -> dict:
    lengths = input_lengths(task_data(task, data_dir).dataset("train"))

    def slots(order: list[int]) -> int:
        return sum(
            max(lengths[i] for i in order[s : s + BATCH]) * len(order[s : s + BATCH])
            for s in range(0, len(order), BATCH)
        )

    shuffled = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = list(LengthGroupedSampler(lengths, BATCH, seed=0))
    real = sum(lengths)
    return {
        "task": task,
        "examples": len(lengths),
        "tokens": real,
        "random_slots_per_token": slots(shuffled) / real,
        "grouped_slots_per_token": slots(grouped) / real,
    }


def epoch_seconds(task: str, data_dir: Path | None) -> dict:
    data = task_data(task, data_dir)
    train = data.dataset("train", recipe_for(task).max_train_samples)
    seconds = {}
    for grouped in (False, True):
        torch.manual_seed(0)
        model, _ = load_for_task("default", get_task(task))
        config = recipe_for(task).train_config(0, epochs=1, group_by_length=grouped)
        seconds["grouped" if grouped else "random"] = finetune(
            model, train, data.collate, config
        ).seconds
    return {"task": task, "examples": len(train), "seconds": seconds}


def quality(task: str, data_dir: Path | None) -> dict:
    row: dict = {"task": task, "metric": primary_metric(task)}
    for grouped in (False, True):
        recipe = recipe_for(task).model_copy(update={"group_by_length": grouped})
        runs = []
        for seed in SEEDS:
            path = cached_dense_model("default", task, seed, recipe, data_dir)
            metrics = json.loads((path / "metrics.json").read_text())
            runs.append(
                {
                    "seed": seed,
                    "dev": metrics["dev"]["primary"],
                    "validation": metrics["validation"]["primary"],
                    "train_seconds": metrics["train_seconds"],
                }
            )
        row["grouped" if grouped else "random"] = runs
    return row


def mean_std(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mrpc,rte,stsb,cola,sst2")
    parser.add_argument("--time-task", default="mrpc")
    parser.add_argument("--quality-task", default="mrpc")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "padding": [padding(t, args.data_dir) for t in args.tasks.split(",")],
        "epoch": epoch_seconds(args.time_task, args.data_dir),
        "quality": quality(args.quality_task, args.data_dir),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "batching.json").write_text(json.dumps(result, indent=2) + "\n")
    epoch, row = result["epoch"], result["quality"]
    lines = [
        "# Length-grouped training batches vs random batches (this CPU)",
        "",
        f"Token slots per real token, one epoch of batches of {BATCH} (each padded to its "
        "longest example), MiniLM's tokenizer:",
        "",
        "| task | train examples | random | grouped | fewer slots |",
        "|---|---|---|---|---|",
    ]
    for p in result["padding"]:
        lines.append(
            f"| {p['task']} | {p['examples']:,} | {p['random_slots_per_token']:.2f} | "
            f"{p['grouped_slots_per_token']:.2f} | "
            f"{p['random_slots_per_token'] / p['grouped_slots_per_token']:.2f}x |"
        )
    random_s, grouped_s = epoch["seconds"]["random"], epoch["seconds"]["grouped"]
    lines += [
        "",
        f"One epoch of {epoch['task']} ({epoch['examples']:,} examples, its recipe, "
        f"{result['threads']} threads), one after the other in one process: random "
        f"{random_s / 60:.1f} min, grouped {grouped_s / 60:.1f} min "
        f"({random_s / grouped_s:.2f}x).",
        "",
        f"{row['task']}'s dense recipe, seeds {', '.join(map(str, SEEDS))} ({row['metric']}):",
        "",
        "| batches | dev | validation | train minutes per run |",
        "|---|---|---|---|",
    ]
    for name in ("random", "grouped"):
        runs = row[name]
        lines.append(
            f"| {name} | {mean_std([r['dev'] for r in runs])} | "
            f"{mean_std([r['validation'] for r in runs])} | "
            f"{statistics.fmean(r['train_seconds'] for r in runs) / 60:.1f} |"
        )
    lines += [
        "",
        "Train minutes are wall time as recorded when each model was trained (the random-batch "
        "models come from the dense cache and may have shared the CPU with other jobs); the "
        "epoch times above are the same-run comparison.",
    ]
    (RESULTS / "batching.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

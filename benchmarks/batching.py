"""Benchmark: length-grouped training batches (`TrainConfig.group_by_length`) against random
batches on this CPU: padding, epoch time, and the dev metric of the same dense recipe.

1. Padding: token slots of one epoch's batches of 32 (each padded to its longest example)
   over the real tokens, random order vs `LengthGroupedSampler`, for each task's train split.
2. Epoch time: one epoch of ``--time-task`` (the default MiniLM, its recipe), random batches
   then grouped ones, one after the other in this process.
3. Quality: ``--quality-task``'s recipe with ``group_by_length``, seeds 0-2, through the dense
   cache (its own key), against the cached random-batch models of the same recipe and seeds.
4. Evaluation: one `predict` pass of the cached dense model (seed 0) over each ``--eval-tasks``
   validation split (what HISP, A* and certification evaluate on), in dataset order and in
   `by_length` order (the default since evaluation sorts), after one warm-up pass each.

``--parts`` runs some of them again and keeps the others' results from batching.json.

Writes benchmarks/results/batching.{json,md}. Run it with nothing else on the machine.

    python benchmarks/batching.py [--tasks mrpc,rte,stsb,cola,sst2] [--parts eval]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _rows import read_json, write_json

from prunekit.data import TaskData, get_task, input_lengths, primary_metric
from prunekit.models import load, load_tokenizer
from prunekit.models.sources import load_for_task
from prunekit.report.summary import spread
from prunekit.train import finetune, predict
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


def evaluation_seconds(task: str, data_dir: Path | None) -> dict:
    path = cached_dense_model("default", task, 0, recipe_for(task), data_dir)
    model, tokenizer = load(path), load_tokenizer(path)
    data = TaskData.for_task(
        get_task(task), tokenizer, data_dir, 0, recipe_for(task).max_seq_length
    )
    split = data.dataset("validation")
    seconds, outputs = {}, {}
    for name, sort in (("dataset", False), ("by_length", True)):
        predict(model, split, data.collate, sort_by_length=sort)  # warm-up
        start = time.perf_counter()
        outputs[name] = predict(model, split, data.collate, sort_by_length=sort)
        seconds[name] = time.perf_counter() - start
    logits = {name: out[0] for name, out in outputs.items()}
    return {
        "task": task,
        "examples": len(split),
        "seconds": seconds,
        "max_logit_difference": float(abs(logits["dataset"] - logits["by_length"]).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mrpc,rte,stsb,cola,sst2")
    parser.add_argument("--time-task", default="mrpc")
    parser.add_argument("--quality-task", default="mrpc")
    parser.add_argument("--eval-tasks", default="mrpc,rte")
    parser.add_argument("--parts", default="padding,epoch,quality,eval")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    path = RESULTS / "batching.json"
    result = read_json(path)
    result |= {"device": "cpu", "threads": torch.get_num_threads()}
    parts = args.parts.split(",")
    if "padding" in parts:
        result["padding"] = [padding(t, args.data_dir) for t in args.tasks.split(",")]
    if "epoch" in parts:
        result["epoch"] = epoch_seconds(args.time_task, args.data_dir)
    if "quality" in parts:
        result["quality"] = quality(args.quality_task, args.data_dir)
    if "eval" in parts:
        result["evaluation"] = [
            evaluation_seconds(t, args.data_dir) for t in args.eval_tasks.split(",")
        ]
    write_json(path, result)
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
        f"{result['threads']} threads), one after the other in one process (random first: the "
        "second may gain a little from a warmer process): random "
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
            f"| {name} | {spread([r['dev'] for r in runs])} | "
            f"{spread([r['validation'] for r in runs])} | "
            f"{statistics.fmean(r['train_seconds'] for r in runs) / 60:.1f} |"
        )
    if "evaluation" in result:
        lines += [
            "",
            "One evaluation pass (`predict`, batches of 64) of the cached dense model (seed 0) "
            "over the validation split carved from train, the split HISP, A* and certification "
            "evaluate on, after a warm-up pass:",
            "",
            "| task | examples | dataset order s | by length s | faster | max logit difference |",
            "|---|---|---|---|---|---|",
        ]
        for e in result["evaluation"]:
            by_order, by_length = e["seconds"]["dataset"], e["seconds"]["by_length"]
            lines.append(
                f"| {e['task']} | {e['examples']} | {by_order:.2f} | {by_length:.2f} | "
                f"{by_order / by_length:.2f}x | {e['max_logit_difference']:.1e} |"
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

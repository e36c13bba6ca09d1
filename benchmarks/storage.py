"""Benchmark: what smaller storage of the word embeddings costs in accuracy and saves on disk.

For each cached dense reference (task, seed; `benchmarks/dense.py`, never fine-tuned here), the
model is saved as is (float32), with float16 word embeddings and with int8 word embeddings
(one scale per row), reloaded with `prunekit.load`, and evaluated on dev. The embeddings are
~47 MB of MiniLM's ~90 MB and are never pruned, so they dominate a sparse model's file.

One line per (task, seed, storage) in ``benchmarks/results/storage.jsonl`` (resumes), and
``storage.md`` with mean ± std over seeds.

    python benchmarks/storage.py [--tasks rte,mrpc] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _rows import append_row

from prunekit import StorageOptions, load, save
from prunekit.data import get_task, make_collate, primary_metric, task_dataset
from prunekit.models import load_tokenizer
from prunekit.models.sparse_storage import storage_report
from prunekit.report.summary import spread
from prunekit.train import evaluate
from prunekit.train.task_recipes import cached_dense_model, finished_dense_model, recipe_for

RESULTS = Path(__file__).parent / "results"
RUNS = Path("runs/storage")
STORAGES = ("float32", "float16", "int8")


def done() -> dict[str, dict]:
    path = RESULTS / "storage.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def one_run(task: str, seed: int, embeddings: str, data_dir: Path | None) -> dict:
    spec, recipe = get_task(task), recipe_for(task)
    dense_dir = cached_dense_model("default", task, seed, data_dir=data_dir)
    out = RUNS / f"{dense_dir.name}-{embeddings}"
    if not (out / "config.json").is_file():
        save(
            load(dense_dir),
            out,
            load_tokenizer(dense_dir),
            overwrite=out.exists(),
            storage=StorageOptions(embeddings=embeddings),
        )
    model, tokenizer = load(out), load_tokenizer(out)
    dev = task_dataset(spec, "dev", tokenizer, data_dir, seed, recipe.max_seq_length)
    result = evaluate(model, dev, make_collate(tokenizer), spec, "dev")
    return {
        "key": f"{task}|{seed}|{embeddings}",
        "task": task,
        "seed": seed,
        "embeddings": embeddings,
        "metric": primary_metric(spec),
        "dev": result.primary,
        "bytes": storage_report(out)["total"],
        "dense_model": dense_dir.name,
    }


def write_report() -> None:
    rows = list(done().values())
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["embeddings"]), []).append(row)
    lines = [
        "# Word-embedding storage: accuracy and size",
        "",
        "Dense references from the shared cache, saved with float32 / float16 / int8 (per-row "
        "scale) word embeddings, reloaded with `prunekit.load`, evaluated on dev. Mean ± std "
        "over seeds; Δ against float32 of the same seeds.",
        "",
        "| task | metric | embeddings | dev | Δ vs float32 | file MB | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for (task, embeddings), members in sorted(
        groups.items(), key=lambda kv: (kv[0][0], STORAGES.index(kv[0][1]))
    ):
        devs = [m["dev"] for m in members]
        base = {r["seed"]: r["dev"] for r in groups.get((task, "float32"), [])}
        deltas = [m["dev"] - base[m["seed"]] for m in members if m["seed"] in base]
        mean, std = statistics.fmean(devs), statistics.stdev(devs) if len(devs) > 1 else 0.0
        delta = statistics.fmean(deltas) if deltas else float("nan")
        megabytes = statistics.fmean(m["bytes"] for m in members) / 1e6
        seeds = ", ".join(str(m["seed"]) for m in sorted(members, key=lambda m: m["seed"]))
        lines.append(
            f"| {task} | {members[0]['metric']} | {embeddings} | {spread(devs)} | "
            f"{delta:+.2f} | {megabytes:.1f} | {seeds} |"
        )
        summary[f"{task}|{embeddings}"] = {
            "dev_mean": mean,
            "dev_std": std,
            "delta_vs_float32": delta,
            "file_megabytes": megabytes,
            "seeds": [m["seed"] for m in members],
        }
    (RESULTS / "storage.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "storage.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="rte,mrpc")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            key_dir = finished_dense_model("default", task, seed)
            if key_dir is None:
                print(f"skip {task} seed {seed}: no cached dense model", file=sys.stderr)
                continue
            for embeddings in STORAGES:
                key = f"{task}|{seed}|{embeddings}"
                if key in done():
                    continue
                print(f"run {key}", file=sys.stderr, flush=True)
                row = one_run(task, seed, embeddings, args.data_dir)
                append_row(RESULTS / "storage.jsonl", row)
        write_report()
    write_report()


if __name__ == "__main__":
    sys.exit(main())

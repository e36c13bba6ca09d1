"""Benchmark: unstructured sparsity, SparseBERT (sparse-kd) against magnitude (± KD) and movement,
on the same training budget, with file sizes and measured CPU latency.

For each (task, seed, sparsity, variant) `prunekit prune` runs once:
- ``sparse-kd``: the **pre-trained** MiniLM with a new classifier, distilled from the cached
  dense model of the same task and seed while it is sparsified (the paper's recipe);
- ``magnitude`` / ``magnitude+kd``: gradual magnitude pruning of the cached dense fine-tuned
  model, without and with logit KD from it;
- ``movement``: movement pruning of the same fine-tuned model; ``movement+blockB`` (ask for
  it in ``--variants``) prunes whole B x B blocks, which the sparse path can run as BSR;
- ``sparse-kd+augN`` (only with ``--augment N``, on ``--augment-tasks``): sparse-kd on the train
  split plus N augmented copies (so N + 1 times the steps: the paper's setting, not an equal
  budget; the report says so).
Every variant trains ``--epochs`` epochs of the same train split at batch 32 (the same number of
optimizer steps). Rows: dev primary metric, nonzero parameters, file size; for seed 0 also the
measured latency (batch 1) and throughput (batch 32) of the sparse path against dense torch and
dense onnxruntime (`prunekit bench --runtime sparse`), always on this machine's CPU.

Dense models and teachers come from the dense cache (`benchmarks/dense.py`), never trained here.
One line per finished run in ``benchmarks/results/sparse/results.jsonl`` (a killed benchmark
resumes; each run also resumes inside from its checkpoints), ``report.md`` and ``summary.json``
rewritten after every task.

    python benchmarks/sparse.py --preset quick   # MRPC, 95%, seed 0, the four variants
    python benchmarks/sparse.py --preset full    # 5 tasks x 50..97% x seeds 0-2
    python benchmarks/sparse.py --retime         # time the finished models again, alone
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _rows import add_device_argument, append_row, keyed_rows, with_dev_constant, write_rows

from prunekit.data import primary_metric
from prunekit.device import describe_device, resolve_device
from prunekit.recipes.bench import run_bench
from prunekit.recipes.inspect import run_inspect
from prunekit.recipes.prune import PruneConfig, run_prune
from prunekit.report.summary import (
    collapse_mark,
    collapse_note,
    constant_floor,
    is_collapsed,
    spread,
)
from prunekit.train.task_recipes import cached_dense_model, model_files_digest, recipe_for

RESULTS = Path(__file__).parent / "results" / "sparse"
RUNS = Path("runs/sparse")
VARIANTS = ("sparse-kd", "magnitude", "magnitude+kd", "movement")
EPOCHS = 3  # every variant's training epochs unless --epochs says otherwise
PRESETS = {
    "quick": dict(tasks="mrpc", sparsities="0.95", seeds="0"),
    "full": dict(
        tasks="mrpc,rte,stsb,cola,sst2", sparsities="0.5,0.7,0.8,0.9,0.95,0.97", seeds="0,1,2"
    ),
}


def done(results: Path) -> dict[str, dict]:
    return keyed_rows(results / "results.jsonl")


def settings(variant: str, dense: Path, sparsity: float, args) -> tuple[str, str, dict]:
    """(model, method, method options) of one variant."""
    options = {"sparsity": sparsity, "epochs": args.epochs} | args.extra_options
    if variant.startswith("sparse-kd"):
        if "+aug" in variant:
            options["augment"] = int(variant.rpartition("+aug")[2])
        return "default", "sparse-kd", options
    if variant.startswith("magnitude"):
        return str(dense), "magnitude", options | {"distill": variant.endswith("+kd")}
    if "+block" in variant:
        options["block_size"] = int(variant.rpartition("+block")[2])
    return str(dense), "movement", options


def run_key(task: str, seed: int, sparsity: float, variant: str, args) -> str:
    """Everything that changes a run's result, so no row is reused for other settings."""
    subset = f"|n{args.train_samples}" if args.train_samples else ""
    extra = "".join(f"|{k}={v}" for k, v in sorted(args.extra_options.items()))
    return f"{task}|{seed}|{sparsity:.2f}|{variant}|e{args.epochs}{subset}{extra}"


def one_run(task: str, seed: int, sparsity: float, variant: str, args) -> dict:
    recipe = recipe_for(task)
    dense = cached_dense_model("default", task, seed, data_dir=args.data_dir)
    model, method, options = settings(variant, dense, sparsity, args)
    key = run_key(task, seed, sparsity, variant, args)
    out = args.runs / key.replace("|", "-")
    if not (out / "metrics.json").is_file():
        run_prune(
            PruneConfig(
                model=model,
                out=out,
                method=method,
                task=task,
                data_dir=args.data_dir,
                seed=seed,
                max_seq_length=recipe.max_seq_length,
                train_samples=args.train_samples or recipe.max_train_samples,
                options=options,
                teacher=str(dense) if method == "sparse-kd" else None,
                evaluate_splits=("dev",),
                device=args.device,
                overwrite=out.exists(),
                progress=not args.quiet,
            )
        )
    record = json.loads((out / "metrics.json").read_text())
    stats = run_inspect(str(out))
    dense_metrics = json.loads((dense / "metrics.json").read_text())
    row = {
        "key": key,
        "task": task,
        "seed": seed,
        "sparsity": sparsity,
        "variant": variant,
        "metric": primary_metric(task),
        "dev": record["after_pruning"]["dev"]["primary"],
        "dev_constant": record["after_pruning"]["dev"].get("constant"),
        "dense_dev": dense_metrics["dev"]["primary"],
        "dense_digest": model_files_digest(dense),  # which dense model, should the cache change
        "parameters": stats["parameters"],
        "parameters_nonzero": stats["parameters_nonzero"],
        "file_bytes": stats["disk_bytes"]["total"],
        "sparse_linears_ratio": stats["disk_bytes"].get("sparse_tensors", {}).get("ratio"),
        "train_seconds": record["decision_seconds"],
        "epochs": args.epochs,
        "train_samples": args.train_samples or recipe.max_train_samples,
        "augment": options.get("augment", 0),
        "options": args.extra_options,
        "train_device": describe_device(resolve_device(args.device)),
    }
    if seed == 0:  # inference timings: on this CPU, once per (task, sparsity, variant)
        row |= timing(out, args.rounds)
    return row


def timing(out: Path, rounds: int) -> dict:
    """The sparse path against dense torch and dense onnxruntime (`prunekit bench`)."""
    timed = run_bench(str(out), runtime="sparse", rounds=rounds, device="cpu")
    row = {
        "timing": {
            name: {
                "latency_ms": entry["latency"]["median_s"] * 1e3,
                "throughput_seq_s": entry["throughput"]["sequences_per_s"],
            }
            for name, entry in timed["models"].items()
        }
    }
    row["timing"]["cpu"] = timed["environment"]["cpu"]
    row["timing"]["warnings"] = timed["warnings"]
    linears = timed["sparse_linears"]
    row["sparse_linears_converted"] = sum(c["sparse"] for c in linears)
    row["sparse_linears_bsr"] = sum(bool(c["sparse"] and c["block"]) for c in linears)
    row["sparse_projections"] = len(timed["sparse_linears"])  # q/k/v fused: 4 per layer
    row["break_even_sparsity"] = timed["break_even_sparsity"]
    row["break_even_sparsity_bsr"] = timed["break_even_sparsity_bsr"]
    return row


def retime(args) -> None:
    """Time every seed-0 model of results.jsonl again (a quiet machine, a fixed timer), or
    those of ``--sparsities``, ``--tasks`` and ``--variants`` only."""
    path = args.results / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    wanted = {float(s) for s in args.sparsities.split(",")} if args.sparsities else None
    tasks = set(args.tasks.split(",")) if args.tasks else None
    variants = set(args.variants.split(",")) if args.variants else None
    for row in rows:
        out = args.runs / row["key"].replace("|", "-")
        if wanted is not None and row["sparsity"] not in wanted:
            continue
        if (tasks and row["task"] not in tasks) or (variants and row["variant"] not in variants):
            continue
        if row["seed"] == 0 and out.is_dir():
            print(f"retime {row['key']}", file=sys.stderr, flush=True)
            row |= timing(out, args.rounds)
    write_rows(path, rows)
    write_report(args.results)


def _dense_models_note(rows: list[dict]) -> str:
    """Which dense model (its dev metric) each task and seed's rows started from and were
    judged against. The dense cache trains a task's model again when its recipe's key changes
    (the per-(seed, epoch) shuffle order of 0.2.0 did, for every task but SST-2), so one seed
    can hold rows of two dense models: told apart by their digest where rows record it, else by
    their dev metric."""
    used: dict[tuple[str, int], dict[str, float]] = {}
    for row in rows:
        model = row.get("dense_digest") or f"dev {row['dense_dev']:.6f}"
        used.setdefault((row["task"], row["seed"]), {})[model] = row["dense_dev"]
    cells = [
        f"{task} seed {seed}: {' and '.join(f'{d:.2f}' for d in sorted(models.values()))}"
        + _more_than_one(models)
        for (task, seed), models in sorted(used.items())
    ]
    return (
        "Dense models (dev) each task and seed's rows started from (magnitude, movement) or "
        "distilled from (sparse-kd, + KD), and their Δ is taken against: "
        + "; ".join(cells)
        + ". A dense model fine-tuned after the shuffle order changed (CHANGELOG 0.2.0) is not "
        "the head comparison's model of that seed."
    )


def _more_than_one(models: dict[str, float]) -> str:
    """What a seed's rows of several dense models (or folders) mean. The digest names a folder
    by its files' sizes and times, so a model fine-tuned again on another machine gets another
    one even when its weights came out the same; a row from before digests were recorded
    names only the dev metric."""
    if len({round(dev, 6) for dev in models.values()}) > 1:
        return " (two dense models: its rows are not one population)"
    if len(models) > 1:
        return (
            " (one dev metric from more than one dense model folder: the model fine-tuned "
            "again, to the same weights or not)"
        )
    return ""


def write_report(results: Path) -> None:
    rows = with_dev_constant(done(results).values())  # older rows: from the dev labels
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        label = row["variant"]
        if row["train_samples"]:
            label += f" ({row['epochs']} ep, {row['train_samples']} ex)"
        elif row["epochs"] != EPOCHS:
            label += f" ({row['epochs']} ep)"
        if row.get("options"):
            label += " [" + ", ".join(f"{k}={v}" for k, v in sorted(row["options"].items())) + "]"
        groups.setdefault((row["task"], row["sparsity"], label), []).append(row)
    lines = [
        "# Sparsity on MiniLM: SparseBERT, magnitude (± KD), movement (unstructured or in blocks)",
        "",
        "Dev primary metric, mean ± std over seeds; Δ against the cached dense models of the "
        "same seeds. Every variant trains the same epochs on the same train split "
        f"({EPOCHS} unless its label says otherwise; `+aug` adds augmented copies). "
        "Latency (batch 1) and throughput (batch 32) of "
        "seed 0, 128 tokens per sequence, on the CPU the last column names (the project's "
        "machine changed between runs; `x86_64`: timed before processors were named), so "
        "compare timings within a row: the sparse path, dense torch, dense "
        "onnxruntime (eager-attention export fused for onnxruntime, `prunekit export "
        "--optimize`). The sparse path (`prunekit bench --runtime sparse`) runs MiniLM's encoder "
        "feature-major (query/key/value fused; each projection CSR, BSR where its weights are "
        "block-sparse, or dense, as timed faster on this CPU, per batch size). The b1 speed-up "
        "is dense latency over sparse latency.",
        "",
        "| task | sparsity | variant | dev | Δ vs dense | nonzero params | file MB | "
        "latency ms sparse / torch / ORT | b1 speed-up vs torch / ORT | "
        "seq/s sparse / torch / ORT | seeds | timed on |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    collapsed_any = noisy_any = False
    for (task, sparsity, variant), members in sorted(groups.items()):
        collapsed = sum(is_collapsed(m) for m in members)
        collapsed_any = collapsed_any or bool(collapsed)
        devs = [m["dev"] for m in members]
        dev_cell = spread(devs) + collapse_mark(collapsed)
        delta = [m["dev"] - m["dense_dev"] for m in members]
        timing = next((m["timing"] for m in members if "timing" in m), None)
        latency = throughput = speedup = timed_on = "–"
        if timing:
            timed_on = timing.get("cpu", "–") + " ¶" * bool(timing.get("warnings"))
            noisy_any = noisy_any or bool(timing.get("warnings"))
            names = ("model", "baseline", "onnxruntime")
            latency = " / ".join(
                f"{timing[n]['latency_ms']:.1f}" if n in timing else "–" for n in names
            )
            throughput = " / ".join(
                f"{timing[n]['throughput_seq_s']:.1f}" if n in timing else "–" for n in names
            )
            speedup = " / ".join(
                f"{timing[n]['latency_ms'] / timing['model']['latency_ms']:.2f}×"
                if n in timing
                else "–"
                for n in names[1:]
            )
        nonzero = statistics.fmean(m["parameters_nonzero"] for m in members)
        megabytes = statistics.fmean(m["file_bytes"] for m in members) / 1e6
        seeds = ", ".join(str(m["seed"]) for m in sorted(members, key=lambda m: m["seed"]))
        lines.append(
            f"| {task} | {sparsity:.0%} | {variant} | {dev_cell} | "
            f"{statistics.fmean(delta):+.2f} | {nonzero:,.0f} | {megabytes:.1f} | {latency} | "
            f"{speedup} | {throughput} | {seeds} | {timed_on} |"
        )
        summary[f"{task}|{sparsity:.2f}|{variant}"] = {
            "dev_mean": statistics.fmean(devs),
            "dev_std": statistics.stdev(devs) if len(devs) > 1 else 0.0,
            "delta_vs_dense": statistics.fmean(delta),
            "parameters_nonzero": nonzero,
            "file_megabytes": megabytes,
            "timing_seed0": timing,
            "seeds": [m["seed"] for m in members],
            "collapsed": collapsed,
        }
    lines += ["", _dense_models_note(rows)]
    if collapsed_any:
        lines += ["", collapse_note(constant_floor(rows))]
    if noisy_any:
        lines += [
            "",
            "¶: `prunekit bench` warned that the timed rounds varied by more than 10% of their "
            "median (another job on the machine): re-time with `--retime` when it is quiet.",
        ]
    if any((r.get("options") or {}).get("attention_loss") == "probabilities" for r in rows):
        lines += [
            "",
            "`attention_loss=probabilities`: sparse-kd's first version, whose attention term "
            "compared the attention probabilities a model returns (on MiniLM it starts about "
            "300 times smaller than the hidden-state term, so it hardly counted). The other "
            "sparse-kd rows compare pre-softmax scores, as SparseBERT's code does.",
        ]
    unconverted = sorted(
        f"{r['task']} {r['sparsity']:.0%} {r['variant']}"
        for r in rows
        if r.get("sparse_linears_converted") == 0
    )
    if unconverted:
        lines += [
            "",
            f"No projection of {', '.join(unconverted)} runs sparse (below the break-even "
            "sparsity), so its sparse path is the dense model itself: its speed-up column is "
            "this machine's run-to-run timing noise, not a gain.",
        ]
    results.mkdir(parents=True, exist_ok=True)
    (results / "report.md").write_text("\n".join(lines) + "\n")
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument("--tasks")
    parser.add_argument("--sparsities")
    parser.add_argument("--seeds")
    parser.add_argument("--variants", help=f"default: {','.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--augment", type=int, default=0, help="copies for sparse-kd+aug")
    parser.add_argument("--augment-tasks", default="mrpc")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per model")
    add_device_argument(parser, "training")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--train-samples", type=int, help="seeded train subset (smoke runs)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--runs", type=Path, default=RUNS, help="where models go")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument(
        "--retime",
        action="store_true",
        help="only re-time finished models (those of --sparsities, --tasks and --variants, "
        "when given)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option for every variant (JSON value), e.g. final_warmup=0.2; part of the "
        "run's key",
    )
    args = parser.parse_args()
    args.extra_options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            args.extra_options[key] = json.loads(value)
        except json.JSONDecodeError:
            args.extra_options[key] = value  # a bare string, e.g. precision=bf16
    if args.retime:
        retime(args)
        return
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.results.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        variants = (args.variants or ",".join(VARIANTS)).split(",")
        if args.augment and task in args.augment_tasks.split(","):
            variants.append(f"sparse-kd+aug{args.augment}")
        for seed in (int(s) for s in args.seeds.split(",")):
            for sparsity in (float(s) for s in args.sparsities.split(",")):
                for variant in variants:
                    key = run_key(task, seed, sparsity, variant, args)
                    if key in done(args.results):
                        continue
                    print(f"run {key}", file=sys.stderr, flush=True)
                    row = one_run(task, seed, sparsity, variant, args)
                    append_row(args.results / "results.jsonl", row)
                    write_report(args.results)
    write_report(args.results)


if __name__ == "__main__":
    sys.exit(main())

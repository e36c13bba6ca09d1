"""Benchmark: the main job (`prunekit run`, what `make demo` runs) and its before/after table.

Runs fine-tune -> prune -> recover -> evaluate -> measure on the default MiniLM and writes
benchmarks/results/main_job_<task>.{json,md}. With --summary it only renders an existing
run's summary.json (e.g. the one `make demo` left in runs/demo/).

    python benchmarks/main_job.py [--task sst2] [--summary runs/demo/summary.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def to_markdown(summary: dict, wall_seconds: float | None) -> str:
    d, s, env = summary["dense"], summary["speedup"], summary["environment"]
    runs = [summary[n] for n in ("pruned", "floor") if n in summary]
    cfg = summary["config"]
    metric = summary["primary_metric"]
    header = " | ".join(
        r["method"] + (" (floor)" if r is summary.get("floor") else "") for r in runs
    )

    def row(label: str, dense: str, cells) -> str:
        return f"| {label} | {dense} | " + " | ".join(cells) + " |"

    lines = [
        f"# Main job: {summary['task']}, {cfg['heads']:.0%} of heads removed by "
        f"{summary['method']}, {summary.get('floor_method') or 'no floor'} beside it "
        f"(seed {summary['seed']})",
        "",
        f"Model `{cfg['model']}` (all-MiniLM-L6-v2 from PyPI), fine-tuned with the task's recipe "
        f"(`TASK_RECIPES`) on {d.get('train_examples', '?')} train examples"
        + (
            " (the job's cap, `--max-train-samples`: the dense reference trains on the whole split)"
            if cfg.get("max_train_samples") and cfg["max_train_samples"] == d.get("train_examples")
            else ""
        )
        + f" in {d.get('train_seconds', 0) / 60:.1f} min; each pruned model recovered 1 epoch on "
        f"{cfg['recover_max_samples']} examples, the same for both methods. "
        "Which method is strongest at 50% after recovery is the head comparison's question "
        "(benchmarks/results/head_baselines), not this one run's. Validation = split carved "
        "from train, "
        f"dev = GLUE dev. Timed on {env['cpu']}, {env['torch_threads']} threads, {env['dtype']}, "
        "seq 128.",
        "",
        f"| | dense | {header} |",
        "|---|---|" + "---|" * len(runs),
        row("attention heads", str(d["heads"]), (str(r["heads"]) for r in runs)),
        row("parameters", f"{d['parameters']:,}", (f"{r['parameters']:,}" for r in runs)),
        row(
            f"dev {metric}",
            f"{d['dev']:.2f}",
            (f"{r['dev']:.2f} (before recovery {r['dev_before_recovery']:.2f})" for r in runs),
        ),
        row(
            f"validation {metric}",
            f"{d['validation']:.2f}",
            (f"{r['validation']:.2f} (before {r['validation_before_recovery']:.2f})" for r in runs),
        ),
        row("latency b1", f"{d['latency_ms']:.1f} ms", (f"{r['latency_ms']:.1f} ms" for r in runs)),
        row(
            "throughput b32",
            f"{d['throughput']:.1f} seq/s",
            (f"{r['throughput']:.1f} seq/s" for r in runs),
        ),
        f"| speed-up measured b1 / b32 | 1 | {s['latency']:.2f}x / {s['throughput']:.2f}x |",
        f"| speed-up ideal (encoder MACs) | 1 | {s['ideal']:.2f}x |",
        f"| measured / ideal (b1 / b32) | | {s['latency_vs_ideal']:.2f} / "
        f"{s['throughput_vs_ideal']:.2f} |",
    ]
    if wall_seconds is not None:
        lines += ["", f"Wall time of the whole job: {wall_seconds / 60:.1f} min."]
    lines += ["", "Reproduce: `make demo` or `python benchmarks/main_job.py`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", type=Path, help="render this summary.json instead of running")
    parser.add_argument("--wall-seconds", type=float, help="wall time of that run, if known")
    args = parser.parse_args()
    wall = args.wall_seconds
    if args.summary is not None:
        summary = json.loads(args.summary.read_text())
    else:
        from prunekit.recipes.run import RunConfig, run_main_job

        started = time.perf_counter()
        summary = run_main_job(
            RunConfig(
                task=args.task,
                seed=args.seed,
                out=Path(f"runs/main_job_{args.task}"),
                overwrite=True,
            )
        )
        wall = time.perf_counter() - started
    if wall is not None:
        summary["wall_seconds"] = wall
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"main_job_{summary['task']}"
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(to_markdown(summary, wall))
    print(to_markdown(summary, wall))


if __name__ == "__main__":
    main()

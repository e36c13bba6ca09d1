"""Probe: the scale of peer's peer loss. methods.md §3(b) writes it as a squared norm per token,
``(1/|x|) Σ ||Σ_r o^S_{l,r} − Σ_h o^T_{l,h}||²``, summed over layers, with β = 1 (OUR CHOICE);
on MiniLM (384 features) that is ~60 with one head removed against ~0.3 for the hidden-state
MSE, ~0.2 for CE and ~0.1 for KD, so the peer term is ~99% of the loss. β = 1/384 makes it a
per-feature mean, the scale of the hidden-state term. This trains peer students at 50% of heads
(fixed fraction, one epoch, bf16, length-grouped, the benchmark's other settings) with both
betas from the same cached dense teachers and compares validation and dev.

    python benchmarks/peer_beta.py [--runs cola:1,2 mrpc:0,1]

Each run is one `prunekit prune --method peer` into ``runs/peer_beta/<name>`` (a finished one is
read back), one row per run in ``benchmarks/results/peer_beta/results.jsonl``, and
``report.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _rows import write_rows

from prunekit.device import cpu_name
from prunekit.train.task_recipes import cached_dense_model

RESULTS = Path(__file__).parent / "results" / "peer_beta"
RUNS = Path("runs/peer_beta")
BETAS = {"beta1": 1.0, "betamse": 0.0026}  # the default; ~1/384, a per-feature mean on MiniLM
OPTIONS = ("epochs=1", 'precision="bf16"', "group_by_length=true")


def command(task: str, seed: int, teacher: Path, beta: float, out: Path) -> list[str]:
    options = [*OPTIONS] + ([f"beta_peer={beta}"] if beta != 1.0 else [])
    return [
        str(Path(sys.executable).parent / "prunekit"),
        "prune",
        "--model", str(teacher),
        "--task", task,
        "--method", "peer",
        "--seed", str(seed),
        *[part for option in options for part in ("--method-option", option)],
        "--heads", "0.5",
        "--out", str(out),
    ]  # fmt: skip


def one_run(task: str, seed: int, name: str, beta: float, data_dir: str | None) -> dict:
    teacher = cached_dense_model("default", task, seed, data_dir=data_dir)
    out = RUNS / f"b50-{task}-s{seed}-{name}"
    if not (out / "metrics.json").is_file():
        # one thread each: two probes may share the two cores
        env = os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        subprocess.run(command(task, seed, teacher, beta, out), check=True, env=env)
    metrics = json.loads((out / "metrics.json").read_text())
    before, after = metrics["before"], metrics["after_pruning"]
    return {
        "task": task,
        "seed": seed,
        "beta_peer": beta,
        "name": name,
        "heads_after": metrics["heads"]["after"],
        "teacher_validation": before["validation"]["primary"],
        "teacher_dev": before["dev"]["primary"],
        "validation": after["validation"]["primary"],
        "dev": after["dev"]["primary"],
        "seconds": metrics["decision_seconds"],
        "cpu": cpu_name(),
    }


def write_report(rows: list[dict]) -> None:
    lines = [
        "# Peer: the peer loss as a squared norm (β = 1) or a per-feature mean (β = 1/384)",
        "",
        "Peer students at 50% of heads (HISP-located, one epoch, bf16, length-grouped batches) "
        "from the cached dense teacher of each task and seed, the two betas otherwise alike. "
        "Validation: the split carved from train that peer's lossless mode judges on.",
        "",
        "| task | seed | teacher validation / dev | β = 1 validation / dev | β = 1/384 "
        "validation / dev | Δ validation / Δ dev (1/384 − 1) |",
        "|---|---|---|---|---|---|",
    ]
    by_key = {(r["task"], r["seed"], r["name"]): r for r in rows}
    gains = []
    for task, seed in sorted({(r["task"], r["seed"]) for r in rows}):
        one, mean = by_key.get((task, seed, "beta1")), by_key.get((task, seed, "betamse"))
        if one is None or mean is None:
            continue
        gain = (mean["validation"] - one["validation"], mean["dev"] - one["dev"])
        gains.append(gain)
        lines.append(
            f"| {task} | {seed} | {one['teacher_validation']:.2f} / {one['teacher_dev']:.2f} | "
            f"{one['validation']:.2f} / {one['dev']:.2f} | {mean['validation']:.2f} / "
            f"{mean['dev']:.2f} | {gain[0]:+.2f} / {gain[1]:+.2f} |"
        )
    if gains:
        validation = [g[0] for g in gains]
        dev = [g[1] for g in gains]
        lines += [
            "",
            f"Over {len(gains)} runs, β = 1/384 minus β = 1: validation "
            f"{statistics.fmean(validation):+.2f} (ahead on {sum(v > 0 for v in validation)}), "
            f"dev {statistics.fmean(dev):+.2f} (ahead on {sum(d > 0 for d in dev)}).",
        ]
    lines += ["", f"Trained on {rows[0]['cpu']}." if rows else ""]
    (RESULTS / "report.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["cola:1,2", "mrpc:0,1"])
    parser.add_argument("--data-dir", default=os.environ.get("GLUE_DIR"))
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in args.runs:
        task, _, seeds = item.partition(":")
        for seed in (int(s) for s in seeds.split(",")):
            for name, beta in BETAS.items():
                rows.append(one_run(task, seed, name, beta, args.data_dir))
                write_rows(RESULTS / "results.jsonl", rows)
                write_report(rows)


if __name__ == "__main__":
    sys.exit(main())

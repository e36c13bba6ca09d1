"""Recipe: measured latency/throughput of a model (optionally against a baseline) vs the ideal."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prunekit.bench import environment, time_models
from prunekit.errors import ConfigError
from prunekit.models import load, model_stats
from prunekit.models.export import export_onnx, require_onnx

__all__ = ["RUNTIMES", "run_bench", "speed_table"]

RUNTIMES = ("torch", "onnxruntime")


def run_bench(
    model: str | Path,
    against: str | Path | None = None,
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
    runtime: str = "torch",
) -> dict[str, Any]:
    """Time ``model`` (and ``against``) in PyTorch, or in onnxruntime after a checked export."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    sources = {"model": Path(model)}
    if against is not None:
        sources["baseline"] = Path(against)
    models = {name: load(path) for name, path in sources.items()}
    if runtime == "torch":
        return speed_table(models, seq_len, latency_batch, throughput_batch, rounds, warmup)
    onnxruntime = require_onnx()
    with tempfile.TemporaryDirectory(prefix="prunekit-bench-") as tmp:
        sessions = {
            name: onnxruntime.InferenceSession(
                export_onnx(path, Path(tmp) / name).path, providers=["CPUExecutionProvider"]
            )
            for name, path in sources.items()
        }
        return speed_table(
            models, seq_len, latency_batch, throughput_batch, rounds, warmup, sessions
        )


def speed_table(
    models: dict[str, Any],
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
    sessions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Timings of each model; with a ``baseline`` entry also measured vs ideal speed-ups.

    With ``sessions`` (onnxruntime, same names) the exported graphs are timed instead.
    """
    timing = dict(seq_len=seq_len, rounds=rounds, warmup=warmup, sessions=sessions)
    latency = time_models(models, latency_batch, **timing)
    throughput = time_models(models, throughput_batch, **timing)
    runtime = "torch" if sessions is None else "onnxruntime"
    result: dict[str, Any] = {
        "environment": environment(),
        "runtime": runtime,
        "seq_len": seq_len,
        "models": {},
    }
    if sessions is not None:
        result["environment"]["onnxruntime"] = require_onnx().__version__
    for name, model in models.items():
        stats = model_stats(model, seq_len)
        result["models"][name] = {
            "heads": stats.heads_total,
            "parameters": stats.parameters,
            "encoder_macs": stats.encoder_macs,
            "latency": latency[name].to_dict(),
            "throughput": throughput[name].to_dict(),
        }
    if "baseline" in models:
        base = result["models"]["baseline"]
        for name, entry in result["models"].items():
            if name == "baseline":
                continue
            ideal = base["encoder_macs"] / entry["encoder_macs"]
            lat = base["latency"]["median_s"] / entry["latency"]["median_s"]
            thr = entry["throughput"]["sequences_per_s"] / base["throughput"]["sequences_per_s"]
            entry["speedup"] = {
                "ideal": ideal,
                "latency": lat,
                "throughput": thr,
                "latency_vs_ideal": lat / ideal,
                "throughput_vs_ideal": thr / ideal,
            }
    return result

"""Recipe: measured latency/throughput of a model (optionally against a baseline) vs the ideal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.bench import environment, time_models
from prunekit.models import load, model_stats

__all__ = ["run_bench", "speed_table"]


def run_bench(
    model: str | Path,
    against: str | Path | None = None,
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    models = {"model": load(model)}
    if against is not None:
        models["baseline"] = load(against)
    return speed_table(models, seq_len, latency_batch, throughput_batch, rounds, warmup)


def speed_table(
    models: dict[str, Any],
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
) -> dict[str, Any]:
    """Timings of each model; with a ``baseline`` entry also measured vs ideal speed-ups."""
    latency = time_models(models, latency_batch, seq_len, rounds, warmup)
    throughput = time_models(models, throughput_batch, seq_len, rounds, warmup)
    result: dict[str, Any] = {"environment": environment(), "seq_len": seq_len, "models": {}}
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

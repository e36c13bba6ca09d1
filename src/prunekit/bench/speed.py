"""The speed table: measured latency and throughput of named models against a ``baseline``,
beside the MAC-ideal speed-up, with a warning when the timings are too noisy to trust.

It reads sizes from the caller (``stats``: ``heads_total``, ``parameters``, ``encoder_macs`` per
model, as `prunekit.models.model_stats(...).to_dict()` gives them) so that timing needs nothing
from the model packages.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.bench.latency import environment, spread_warning, time_models

__all__ = ["TIMING_DTYPES", "speed_table", "timing_dtype"]


TIMING_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def timing_dtype(device: torch.device | str, name: str = "auto") -> torch.dtype:
    """The weights' dtype for a timing: ``name``, or for ``auto`` float16 on a GPU (where
    efficiency numbers are given in half precision) and float32 on the CPU."""
    if name == "auto":
        return torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return TIMING_DTYPES[name]


def speed_table(
    models: dict[str, nn.Module],
    stats: dict[str, dict[str, Any]],
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
    sessions: dict[str, Any] | None = None,
    runtime_version: str | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Timings of each model; with a ``baseline`` entry also measured vs ideal speed-ups.

    With ``sessions`` (onnxruntime sessions under names of ``models``) those models' exported
    graphs are timed instead, and ``runtime_version`` records onnxruntime's version. Each
    entry names the runtime it was timed in.
    """
    sessions = sessions or {}
    timing = dict(seq_len=seq_len, rounds=rounds, warmup=warmup, sessions=sessions, device=device)
    latency = time_models(models, latency_batch, **timing)
    throughput = time_models(models, throughput_batch, **timing)
    runtimes = {name: "onnxruntime" if name in sessions else "torch" for name in models}
    result: dict[str, Any] = {
        "environment": environment(models.values()),
        "runtime": "+".join(dict.fromkeys(runtimes.values())),
        "seq_len": seq_len,
        "models": {},
    }
    if runtime_version is not None:
        result["environment"]["onnxruntime"] = runtime_version
    for name in models:
        result["models"][name] = {
            "runtime": runtimes[name],
            "heads": stats[name]["heads_total"],
            "parameters": stats[name]["parameters"],
            "encoder_macs": stats[name]["encoder_macs"],
            "latency": latency[name].to_dict(),
            "throughput": throughput[name].to_dict(),
        }
    warning = spread_warning([*latency.values(), *throughput.values()])
    result["warnings"] = [warning] if warning else []
    if "baseline" in models:
        base = result["models"]["baseline"]
        for name, entry in result["models"].items():
            if name == "baseline":
                continue
            # a model left with no encoder MACs (every head and unit gone) counts one, as
            # compare does: an ideal that large, not a ZeroDivisionError
            ideal = base["encoder_macs"] / max(entry["encoder_macs"], 1)
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

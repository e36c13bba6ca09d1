"""Recipe `prunekit bench`: measured latency/throughput of a model (optionally against a
baseline) vs the MAC-ideal speed-up, in PyTorch or ONNX Runtime."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from prunekit.bench import speed_table
from prunekit.device import resolve_device
from prunekit.errors import ConfigError
from prunekit.models import load, model_stats
from prunekit.models.export import export_onnx, require_onnx
from prunekit.models.sources import resolve_model
from prunekit.models.sparse import break_even_sparsity, to_sparse_inference

__all__ = ["RUNTIMES", "run_bench"]

RUNTIMES = ("torch", "onnxruntime", "sparse")


def run_bench(
    model: str | Path,
    against: str | Path | None = None,
    seq_len: int = 128,
    latency_batch: int = 1,
    throughput_batch: int = 32,
    rounds: int = 10,
    warmup: int = 2,
    runtime: str = "torch",
    device: str = "auto",
) -> dict[str, Any]:
    """Time ``model`` (and ``against``) in PyTorch on ``device``, or in onnxruntime (CPU) after
    a checked export, or (``sparse``) the model dense in torch against its sparse CPU path
    (each linear converted where it is faster), with the break-even sparsity of this CPU."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    sources = {"model": Path(resolve_model(model))}
    if against is not None:
        sources["baseline"] = Path(resolve_model(against))
    models = {name: load(path) for name, path in sources.items()}
    stats = {name: model_stats(m, seq_len).to_dict() for name, m in models.items()}
    timing = dict(
        seq_len=seq_len,
        latency_batch=latency_batch,
        throughput_batch=throughput_batch,
        rounds=rounds,
        warmup=warmup,
    )
    if runtime == "torch":
        target = resolve_device(device)
        return speed_table({n: m.to(target) for n, m in models.items()}, stats, **timing)
    if runtime == "sparse":  # the model dense in torch against its sparse CPU path
        if against is not None or resolve_device(device).type == "cuda" and device != "auto":
            raise ConfigError(
                "--runtime sparse times one model on the CPU: drop --against/--device"
            )
        dense = models["model"]
        sparse = copy.deepcopy(dense)
        choices = to_sparse_inference(sparse, tokens=throughput_batch * seq_len)
        pair = {"baseline": dense, "model": sparse}
        table = speed_table(pair, {n: stats["model"] for n in pair}, **timing)
        table["runtime"] = "torch dense vs sparse (CPU)"
        table["sparse_linears"] = [c.to_dict() for c in choices]
        hidden, inner = dense.config.hidden_size, dense.config.intermediate_size
        table["break_even_sparsity"] = break_even_sparsity(
            hidden, inner, throughput_batch * seq_len
        )
        return table
    onnxruntime = require_onnx()
    with tempfile.TemporaryDirectory(prefix="prunekit-bench-") as tmp:
        sessions = {
            name: onnxruntime.InferenceSession(
                export_onnx(path, Path(tmp) / name).path, providers=["CPUExecutionProvider"]
            )
            for name, path in sources.items()
        }
        return speed_table(
            models, stats, **timing, sessions=sessions, runtime_version=onnxruntime.__version__
        )

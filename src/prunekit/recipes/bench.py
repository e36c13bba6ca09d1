"""Recipe `prunekit bench`: measured latency/throughput of a model (optionally against a
baseline) vs the MAC-ideal speed-up, in PyTorch or ONNX Runtime."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from prunekit.bench import TIMING_DTYPES, speed_table, timing_dtype
from prunekit.device import resolve_device
from prunekit.errors import ConfigError, ExportError, PrunekitError
from prunekit.models import load, model_stats
from prunekit.models.adapter import get_adapter
from prunekit.models.export import export_onnx, onnx_session, require_onnx
from prunekit.models.positions import max_sequence_length
from prunekit.models.sources import model_dir
from prunekit.models.sparse import break_even_sparsity, to_sparse_inference
from prunekit.models.sparse_encoder import feature_major_unsupported
from prunekit.recipes.common import at_least

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
    dtype: str = "auto",
) -> dict[str, Any]:
    """Time ``model`` (and ``against``) in PyTorch on ``device``, or in onnxruntime (CPU) after
    a checked export, or (``sparse``) the model dense in torch against its sparse CPU path
    (each linear converted where it is faster), with the break-even sparsity of this CPU.

    ``dtype`` (torch only): the weights' type while timed; ``auto`` is float16 on a GPU (as
    the spec's efficiency numbers are given) and float32 elsewhere."""
    at_least(1, seq_len=seq_len, latency_batch=latency_batch, throughput_batch=throughput_batch)
    at_least(1, rounds=rounds)
    at_least(0, warmup=warmup)
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime != "torch" and device not in ("auto", "cpu"):
        raise ConfigError(f"--runtime {runtime} times on the CPU: drop --device {device}")
    if dtype not in ("auto", *TIMING_DTYPES):
        raise ConfigError(f"unknown --dtype {dtype!r}; choose auto, {', '.join(TIMING_DTYPES)}")
    if runtime != "torch" and dtype not in ("auto", "float32"):
        raise ConfigError(f"--runtime {runtime} times float32 weights: drop --dtype {dtype}")
    sources = {"model": model_dir(model)}
    if against is not None:
        sources["baseline"] = model_dir(against)
    models = {name: load(path) for name, path in sources.items()}
    for name, loaded in models.items():
        longest = max_sequence_length(loaded)
        if seq_len > longest:
            raise ConfigError(
                f"--seq-len {seq_len} is longer than the {longest} positions "
                f"{sources[name].name} has; use at most {longest}"
            )
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
        cast = timing_dtype(target, dtype)
        return speed_table({n: m.to(target, cast) for n, m in models.items()}, stats, **timing)
    if runtime == "sparse":
        return _sparse_bench(sources, models, stats, timing)
    onnxruntime = require_onnx()
    with tempfile.TemporaryDirectory(prefix="prunekit-bench-") as tmp:
        exported, notes = {}, {}
        for name, path in sources.items():
            exported[name], note = _export_for_timing(path, Path(tmp) / name)
            notes |= {name: note} if note else {}
        if notes and len(sources) > 1:  # fused against unfused would misstate the speed-up
            for name in sources.keys() - notes.keys():
                exported[name] = export_onnx(
                    sources[name], Path(tmp) / f"{name}-plain", optimize=False
                )
            notes["all"] = "every model's unfused graph was timed, so that the ratios compare like"
        sessions = {name: onnx_session(report.path) for name, report in exported.items()}
        table = speed_table(
            models, stats, **timing, sessions=sessions, runtime_version=onnxruntime.__version__
        )
        table["warnings"] += [f"{name}: {note}" for name, note in notes.items()]
        return table


def _export_for_timing(source: Path, out: Path) -> tuple[Any, str | None]:
    """The fused (optimised) ONNX graph, or the plain one when the fused graph's outputs
    drift past the export's check: bench has no --optimize to turn off, so it falls back
    itself and says so. A failure of the plain export too is the error shown."""
    try:
        return export_onnx(source, out, optimize=True), None
    except ExportError as err:
        fused_error = str(err)
    exported = export_onnx(source, out.with_name(out.name + "-plain"), optimize=False)
    return exported, f"timed the unfused ONNX graph (the fused one failed: {fused_error})"


def _sparse_bench(
    sources: dict[str, Path],
    models: dict[str, Any],
    stats: dict[str, dict[str, Any]],
    timing: dict[str, int],
) -> dict[str, Any]:
    """The sparse CPU path of ``model`` against the dense reference (``baseline`` when given,
    else the model itself stored dense) in torch and, when installed, in onnxruntime, which is
    the faster dense runtime on many CPUs and so the bar a user compares against."""
    reference = "baseline" if "baseline" in models else "model"
    dense = models[reference]
    sparse = copy.deepcopy(models["model"])
    tokens = {b: timing[b] * timing["seq_len"] for b in ("latency_batch", "throughput_batch")}
    # Per linear and per batch size: CSR (or BSR) where it is timed faster on this machine.
    choices = to_sparse_inference(sparse, tokens=tuple(tokens.values()))
    timed = {"baseline": dense, "model": sparse}
    sizes = {"baseline": stats[reference], "model": stats["model"]}
    warnings = []
    with tempfile.TemporaryDirectory(prefix="prunekit-bench-") as tmp:
        sessions, version = {}, None
        try:  # the optional reference: without onnxruntime, or its export, the timing goes on
            onnxruntime = require_onnx()
            exported, note = _export_for_timing(sources[reference], Path(tmp) / "dense")
            warnings += [f"onnxruntime dense: {note}"] if note else []
        except PrunekitError as err:  # no onnxruntime, a failed check, no tokenizer saved
            warnings.append(f"no onnxruntime dense timing: {err}")
        else:
            # spinning threads stay on (the timing loop lets them settle between models)
            sessions["onnxruntime"] = onnx_session(exported.path)
            timed["onnxruntime"], sizes["onnxruntime"] = dense, sizes["baseline"]
            version = onnxruntime.__version__
        table = speed_table(
            timed, sizes, **timing, sessions=sessions, runtime_version=version, device="cpu"
        )
    table["runtime"] = "sparse (CPU) vs dense torch" + (" and onnxruntime" if sessions else "")
    table["models"]["model"]["runtime"] = "torch sparse"
    # The sparse path skips zero weights: its ideal counts only the nonzero weights' MACs.
    entry = table["models"]["model"]
    entry["encoder_macs_nonzero"] = stats["model"]["encoder_macs_nonzero"]
    speedup = entry["speedup"]
    speedup["ideal"] = table["models"]["baseline"]["encoder_macs"] / max(
        entry["encoder_macs_nonzero"], 1
    )
    speedup["latency_vs_ideal"] = speedup["latency"] / speedup["ideal"]
    speedup["throughput_vs_ideal"] = speedup["throughput"] / speedup["ideal"]
    if sessions:
        ort, entry = table["models"]["onnxruntime"], table["models"]["model"]
        entry["vs_onnxruntime"] = {
            "latency": ort["latency"]["median_s"] / entry["latency"]["median_s"],
            "throughput": entry["throughput"]["sequences_per_s"]
            / ort["throughput"]["sequences_per_s"],
        }
    table["warnings"] += warnings
    table["sparse_linears"] = [c.to_dict() for c in choices]
    # the shapes and layout of the model converted, whatever family --against names
    model = models["model"]
    adapter = get_adapter(model)  # DistilBERT names its FFN width hidden_dim
    hidden, inner = adapter.hidden_size(model.config), adapter.intermediate_size(model.config)
    feature_major = feature_major_unsupported(model) is None  # how CSR runs here

    def break_even(block: int | None = None) -> dict[str, float | None]:
        return {
            str(timing[b]): break_even_sparsity(
                hidden, inner, tokens[b], feature_major=feature_major, block=block
            )
            for b in ("latency_batch", "throughput_batch")
        }

    table["break_even_sparsity"] = break_even()
    # ...and, for the block sizes the model runs as BSR, with zeros in whole blocks
    blocks = sorted({c.block for c in choices if c.sparse and c.block})
    table["break_even_sparsity_bsr"] = {
        str(block): break_even(block)
        for block in blocks
        if hidden % block == 0 and inner % block == 0
    }
    return table

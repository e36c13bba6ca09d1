"""`prunekit compare`'s speed columns: each pruned model timed against the dense one, in torch
and (``--onnx-timing``) in ONNX Runtime, once per model and machine."""

from __future__ import annotations

import copy
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from prunekit.bench import speed_table, timing_dtype
from prunekit.device import cpu_name, describe_device, module_device
from prunekit.models import current_plan, model_stats, save
from prunekit.models.export import export_onnx, onnx_session
from prunekit.outputs import write_json

__all__ = ["pruned_speed"]


def pruned_speed(
    timing_dir: Path,
    name: str,
    dense: Any,
    model: Any,
    onnx: tuple[Path, Path, Any] | None = None,
) -> dict[str, Any]:
    """Speed columns of one pruned ``model`` against ``dense``, measured once: a later sweep of
    the same dir (R1 after R0, as benchmarks run them) reads them instead of timing the model
    again. ``onnx``: (the dense model's folder, where its export is kept, the tokenizer) to
    time both in ONNX Runtime too."""
    heads = json.dumps([list(layer) for layer in current_plan(model).kept_heads])
    # timings belong to the machine that made them: another one (a resumed sweep on another
    # CPU, a GPU, other threads) times again instead of reading them
    device = module_device(model)
    dtype = timing_dtype(device)  # float16 on a GPU, as the spec gives efficiency numbers
    where = f"{cpu_name()}|{describe_device(device)}|{torch.get_num_threads()}"
    where += f"|{dtype}" if dtype != torch.float32 else ""  # CPU keys as before
    digest = hashlib.sha256(f"{heads}|{onnx is not None}|{where}".encode()).hexdigest()[:12]
    path = timing_dir / f"{name}-{digest}.json"
    if path.is_file():
        return json.loads(path.read_text())
    models = {"baseline": dense, "model": model}
    sizes = {n: model_stats(m).to_dict() for n, m in models.items()}
    timed = (
        models
        if dtype == torch.float32
        else {  # copies: the sweep goes on with these
            n: copy.deepcopy(m).to(dtype) for n, m in models.items()
        }
    )
    timing = speed_table(timed, sizes, rounds=3, warmup=1)
    speed = {
        "measured_speedup": timing["models"]["model"]["speedup"]["throughput"],
        "timing_warnings": timing["warnings"],
    }
    if dtype != torch.float32:  # GPU rows say so (CPU rows, float32, stay as they were)
        speed["timing_dtype"] = str(dtype).removeprefix("torch.")
    if onnx is not None:
        speed |= _onnx_speed(dense, model, sizes, *onnx)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, speed)  # atomic: a kill never leaves half a file to read back
    return speed


def _onnx_speed(
    dense: Any, model: Any, sizes: dict, dense_dir: Path, onnx_dir: Path, tokenizer: Any
) -> dict[str, Any]:
    """Both models timed in ONNX Runtime (CPU): pruned vs dense inside ORT, and pruned-in-ORT
    against dense-in-torch (what a user switching runtime and pruning would see; a CPU claim).
    The torch dense model is timed again in the same call, in the block right before ORT's:
    taken from the earlier torch-only call, the ratio mixed two moments of a busy machine and
    ranged from 0.3x to 4x."""
    dense_onnx = onnx_dir / f"dense-{dense_dir.name}-fused"
    if not (dense_onnx / "model.onnx").is_file():
        export_onnx(dense_dir, dense_onnx, overwrite=True, optimize=True)
    with tempfile.TemporaryDirectory(prefix="prunekit-compare-") as tmp:
        save(model, Path(tmp) / "model", tokenizer)
        pruned_onnx = export_onnx(Path(tmp) / "model", Path(tmp) / "onnx", optimize=True).path
        sessions = {
            name: onnx_session(path)
            for name, path in (("baseline", dense_onnx / "model.onnx"), ("model", pruned_onnx))
        }
        # onnxruntime runs on the CPU, so torch's side of this timing does too (on a GPU run
        # the sweep's models stay where they are: CPU copies are timed)
        dense_cpu, pruned_cpu = _on_cpu(dense), _on_cpu(model)
        models = {"baseline": dense_cpu, "model": pruned_cpu, "torch_dense": dense_cpu}
        sizes = {**sizes, "torch_dense": sizes["baseline"]}
        ort = speed_table(models, sizes, rounds=3, warmup=1, sessions=sessions)
    torch_dense = ort["models"]["torch_dense"]["throughput"]["sequences_per_s"]
    ort_pruned = ort["models"]["model"]["throughput"]["sequences_per_s"]
    return {
        "onnx_speedup": ort["models"]["model"]["speedup"]["throughput"],
        "onnx_vs_torch_dense": ort_pruned / torch_dense,
        "onnx_timing_warnings": ort["warnings"],
    }


def _on_cpu(model: Any) -> Any:
    return model if module_device(model).type == "cpu" else copy.deepcopy(model).cpu()

"""Compact storage of sparse weights: a bitmask plus the nonzero values per tensor.

A model whose plan carries unstructured masks stores each masked linear's weight in
``model_sparse.safetensors`` as ``<name>::bitmask`` (the nonzero pattern, 8 entries a byte),
``<name>::values`` (the nonzeros in row-major order, in the weight's dtype) and
``<name>::shape``; ``model.safetensors`` keeps an empty placeholder under the same name, so
stock ``from_pretrained`` fails with a size mismatch instead of loading zeros, and
`prunekit.load` restores the weights exactly (zeros are written as +0.0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from prunekit.models.masks import masked_linears
from prunekit.plan import PruningPlan

__all__ = [
    "SPARSE_NAME",
    "MASKS_NAME",
    "sparse_parameters",
    "emptied",
    "write_sparse",
    "read_sparse",
    "storage_report",
]

SPARSE_NAME = "model_sparse.safetensors"
MASKS_NAME = "model_masks.safetensors"  # the plan's masks in a model directory (checkpoint.py)


def sparse_parameters(model: nn.Module, plan: PruningPlan) -> dict[str, nn.Parameter]:
    """``{state-dict name: parameter}`` of the weights the plan's masks cover."""
    if not plan.masks:
        return {}
    masked = {id(weight) for weight in masked_linears(model, plan).values()}
    return {name: p for name, p in model.named_parameters() if id(p) in masked}


@contextlib.contextmanager
def emptied(parameters: dict[str, nn.Parameter]) -> Iterator[dict[str, torch.Tensor]]:
    """Temporarily give the parameters empty data (the placeholders the weights file holds);
    yields their real data, restored on exit."""
    saved = {name: p.data for name, p in parameters.items()}
    for p in parameters.values():
        p.data = torch.empty(0, dtype=p.dtype, device=p.device)
    try:
        yield saved
    finally:
        for name, p in parameters.items():
            p.data = saved[name]


def write_sparse(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Bitmask + values + shape of each tensor into one safetensors file."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().flatten()
        nonzero = flat != 0
        out[f"{name}::bitmask"] = torch.from_numpy(np.packbits(nonzero.numpy()))
        out[f"{name}::values"] = flat[nonzero].clone()
        out[f"{name}::shape"] = torch.tensor(tensor.shape, dtype=torch.int64)
    safetensors.torch.save_file(out, str(path), metadata={"format": "prunekit-sparse-1"})


def read_sparse(path: Path) -> dict[str, torch.Tensor]:
    """The dense tensors written by `write_sparse`."""
    stored = safetensors.torch.load_file(str(path))
    dense = {}
    for key in stored:
        if not key.endswith("::shape"):
            continue
        name = key.removesuffix("::shape")
        shape = tuple(stored[key].tolist())
        count = int(np.prod(shape))
        bits = np.unpackbits(stored[f"{name}::bitmask"].numpy(), count=count).astype(bool)
        values = stored[f"{name}::values"]
        flat = torch.zeros(count, dtype=values.dtype)
        flat[torch.from_numpy(bits)] = values
        dense[name] = flat.view(shape)
    return dense


def storage_report(directory: Path) -> dict[str, Any]:
    """Bytes on disk per file, and for sparse tensors their dense fp32 size against storage."""
    files = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
    report: dict[str, Any] = {"files": files, "total": sum(files.values())}
    sparse = directory / SPARSE_NAME
    if sparse.is_file():
        with safetensors.safe_open(str(sparse), framework="pt") as handle:
            shapes = [handle.get_tensor(k) for k in handle.keys() if k.endswith("::shape")]  # noqa: SIM118
        dense = sum(int(np.prod(s.tolist())) * 4 for s in shapes)
        # What the sparse weights cost: their values and bitmask, and the plan's masks file.
        stored = files[SPARSE_NAME] + files.get(MASKS_NAME, 0)
        report["sparse_tensors"] = {
            "dense_fp32_bytes": dense,
            "stored_bytes": stored,
            "ratio": dense / max(stored, 1),
        }
    return report

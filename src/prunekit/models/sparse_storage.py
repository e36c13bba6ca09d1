"""Compact storage: sparse weights as a bitmask plus values, optionally half-precision values,
and optionally quantized word embeddings.

A model whose plan carries unstructured masks stores each masked linear's weight in
``model_sparse.safetensors`` as ``<name>::values`` (the entries the plan's mask keeps, in
row-major order, in the weight's dtype, or float16 with ``StorageOptions(sparse_values=
"float16")``), ``<name>::shape`` and ``<name>::pattern``: the mask itself, saved beside it in
``model_masks.safetensors`` (one bit per entry), says where the values go, so the pattern is
not stored twice. A weight with nonzeros outside its mask (which training never leaves) gets
its own ``<name>::bitmask`` of nonzeros instead (8 entries a byte), as every weight did in
earlier directories, which still load. With
``StorageOptions(embeddings="float16" | "int8")`` the word-embedding matrix (~47 MB of the
default MiniLM's ~90 MB, never pruned) goes to ``model_quantized.safetensors``: float16, or int8
with one float32 scale per row (symmetric, ``scale = max|row| / 127``). Either way
``model.safetensors`` keeps an empty placeholder under the same name, so stock
``from_pretrained`` fails with a size mismatch instead of loading zeros, and `prunekit.load`
restores exactly what was stored (-0.0 included; half or int8 values are rounded once, at
save).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from prunekit.errors import ConfigError
from prunekit.files import pack_bits, unpack_bits
from prunekit.models.masks import masked_linears, weight_masks
from prunekit.plan import PruningPlan

__all__ = [
    "SPARSE_NAME",
    "MASKS_NAME",
    "QUANTIZED_NAME",
    "StorageOptions",
    "compact_parameters",
    "sparse_parameters",
    "stored_sparse_names",
    "emptied",
    "write_compact",
    "read_compact",
    "write_sparse",
    "read_sparse",
    "kept_patterns",
    "storage_report",
]

SPARSE_NAME = "model_sparse.safetensors"
QUANTIZED_NAME = "model_quantized.safetensors"
MASKS_NAME = "model_masks.safetensors"  # the plan's masks in a model directory (checkpoint.py)
PLAN_PATTERN = 1  # ``<name>::pattern``: the stored entries are the plan mask's kept ones
_DTYPES = {"float32": None, "float16": torch.float16, "int8": torch.int8}


@dataclass(frozen=True)
class StorageOptions:
    """How a saved model stores what can be stored smaller.

    ``sparse_values``: ``float32`` (the weights' own dtype, exact) or ``float16`` for the
    nonzeros of sparse weights. ``embeddings``: ``float32`` (as the model holds them),
    ``float16`` or ``int8`` (per-row scales) for the word-embedding matrix.
    """

    sparse_values: str = "float32"
    embeddings: str = "float32"

    def __post_init__(self) -> None:
        if self.sparse_values not in ("float32", "float16"):
            raise ConfigError(
                f"sparse values {self.sparse_values!r} unknown; use float32 or float16"
            )
        if self.embeddings not in _DTYPES:
            raise ConfigError(
                f"embeddings storage {self.embeddings!r} unknown; use float32, float16 or int8"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StorageOptions:
        return cls(**(data or {}))

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def compact_parameters(
    model: nn.Module, plan: PruningPlan, storage: StorageOptions
) -> dict[str, nn.Parameter]:
    """``{state-dict name: parameter}`` of every weight stored outside ``model.safetensors``."""
    found = sparse_parameters(model, plan)
    if storage.embeddings != "float32":
        embedding = model.get_input_embeddings().weight
        found.update({n: p for n, p in model.named_parameters() if p is embedding})
    return found


def kept_patterns(model: nn.Module, plan: PruningPlan) -> dict[str, torch.Tensor]:
    """``{state-dict name: kept entries}`` of each masked weight, in its current shape."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(weight)]: ~drop for weight, drop in weight_masks(model, plan)}


def write_compact(
    directory: Path,
    tensors: dict[str, torch.Tensor],
    model: nn.Module,
    plan: PruningPlan,
    storage: StorageOptions,
) -> None:
    """The tensors `compact_parameters` named, into their files in ``directory`` (sparse ones
    by the plan's pattern, which `save` writes beside them)."""
    sparse_names = set(sparse_parameters(model, plan))
    sparse = {n: t for n, t in tensors.items() if n in sparse_names}
    quantized = {n: t for n, t in tensors.items() if n not in sparse_names}
    if storage.sparse_values == "float16":
        fix = "keep sparse_values float32, which stores them in their own dtype"
        _refuse_float16_from_16_bits(sparse, "sparse values", fix)
    if storage.embeddings == "float16":
        fix = "keep embeddings float32, their own dtype, or store them as int8"
        _refuse_float16_from_16_bits(quantized, "embeddings", fix)
    if sparse:
        write_sparse(
            directory / SPARSE_NAME,
            sparse,
            _DTYPES[storage.sparse_values],
            kept_patterns(model, plan),
        )
    if quantized:
        _write_quantized(directory / QUANTIZED_NAME, quantized, storage.embeddings)


def _refuse_float16_from_16_bits(tensors: dict[str, torch.Tensor], what: str, fix: str) -> None:
    """float16 storage is made from float32 weights: from bfloat16 it can overflow to inf and
    lose range, from float16 it saves nothing, and "rounded once" only holds from float32."""
    wider = {t.dtype for t in tensors.values()} - {torch.float32}
    if wider:
        dtypes = ", ".join(str(d).removeprefix("torch.") for d in wider)
        raise ConfigError(
            f"float16 {what} are made from float32 weights; these are {dtypes} ({fix})"
        )


def read_compact(directory: Path, model: nn.Module, plan: PruningPlan) -> dict[str, torch.Tensor]:
    """``{name: dense tensor}`` from whichever compact files ``directory`` holds (``model``
    built to ``plan``, whose masks give the patterns stored by reference)."""
    found: dict[str, torch.Tensor] = {}
    if (directory / SPARSE_NAME).is_file():
        found.update(read_sparse(directory / SPARSE_NAME, kept_patterns(model, plan)))
    if (directory / QUANTIZED_NAME).is_file():
        found.update(_read_quantized(directory / QUANTIZED_NAME))
    return found


def _write_quantized(path: Path, tensors: dict[str, torch.Tensor], kind: str) -> None:
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        rows = tensor.detach().cpu().float().contiguous()
        if kind == "int8":
            scale = rows.abs().amax(dim=1) / 127
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            out[f"{name}::int8"] = (
                torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
            )
            out[f"{name}::scale"] = scale
        else:
            out[f"{name}::float16"] = rows.half()
    safetensors.torch.save_file(out, str(path), metadata={"format": "prunekit-quantized-1"})


def _read_quantized(path: Path) -> dict[str, torch.Tensor]:
    stored = safetensors.torch.load_file(str(path))
    found = {}
    for key, tensor in stored.items():
        name, _, kind = key.rpartition("::")
        if kind == "int8":
            scale = stored[f"{name}::scale"]
            if tensor.dim() != 2 or tuple(scale.shape) != (tensor.shape[0],):
                raise ValueError(f"{name}: {list(scale.shape)} scales for {list(tensor.shape)}")
            found[name] = tensor.float() * scale[:, None]
        elif kind == "float16":
            found[name] = tensor
    return found


def sparse_parameters(model: nn.Module, plan: PruningPlan) -> dict[str, nn.Parameter]:
    """``{state-dict name: parameter}`` of the weights the plan's masks cover (a prunable
    linear without a mask stays in ``model.safetensors``: float16 values would round it)."""
    if not plan.masks:
        return {}
    linears = masked_linears(model, plan)
    masked = {id(weight) for key, weight in linears.items() if key in plan.masks}
    return {name: p for name, p in model.named_parameters() if id(p) in masked}


def stored_sparse_names(directory: Path) -> set[str]:
    """The weights ``directory``'s sparse file holds (empty without one). Before 0.2.0 a plan
    with masks on some linears stored every prunable linear there, the others too."""
    path = directory / SPARSE_NAME
    if not path.is_file():
        return set()
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return {k.removesuffix("::shape") for k in handle.keys() if k.endswith("::shape")}  # noqa: SIM118


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


def write_sparse(
    path: Path,
    tensors: dict[str, torch.Tensor],
    values_dtype: torch.dtype | None = None,
    patterns: dict[str, torch.Tensor] | None = None,
) -> None:
    """Values (in ``values_dtype``, default the tensor's) + shape of each tensor into one
    safetensors file, with the pattern of stored entries: a bitmask of the nonzeros, or, where
    ``patterns`` gives a tensor's kept entries (the plan's mask, already on disk) and every
    entry outside it is 0, that pattern by reference (``::pattern`` = "plan"), which saves
    the bitmask's bit per weight."""
    out: dict[str, torch.Tensor] = {}
    patterns = patterns or {}
    for name, tensor in tensors.items():
        flat = tensor.detach().cpu().contiguous().flatten()
        kept = patterns.get(name)
        if kept is not None and not _entries(flat[~kept.cpu().flatten()]).any():
            stored = kept.cpu().flatten()
            out[f"{name}::pattern"] = torch.tensor(PLAN_PATTERN, dtype=torch.uint8)
        else:
            stored = _entries(flat)
            out[f"{name}::bitmask"] = pack_bits(stored)
        values = flat[stored]
        # A nonzero that rounds to 0 in half precision stays a stored (zero) entry: the bitmask
        # keeps the pattern, so the plan's masks and the stored weights still agree.
        out[f"{name}::values"] = values.to(values_dtype) if values_dtype else values.clone()
        out[f"{name}::shape"] = torch.tensor(tensor.shape, dtype=torch.int64)
    safetensors.torch.save_file(out, str(path), metadata={"format": "prunekit-sparse-1"})


def _entries(flat: torch.Tensor) -> torch.Tensor:
    """The entries that must be stored: nonzeros and -0.0 (a reload is bit-identical, not
    merely equal)."""
    return (flat != 0) | torch.signbit(flat)


def read_sparse(
    path: Path, patterns: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The dense tensors written by `write_sparse`; ``patterns`` must give the kept entries of
    every tensor stored with the plan's pattern."""
    stored = safetensors.torch.load_file(str(path))
    dense = {}
    for key in stored:
        if not key.endswith("::shape"):
            continue
        name = key.removesuffix("::shape")
        shape = tuple(stored[key].tolist())
        if any(n < 0 for n in shape):
            raise ValueError(f"{name}: negative shape {list(shape)}")
        count = math.prod(shape)
        if f"{name}::pattern" in stored:
            if patterns is None or name not in patterns:
                raise KeyError(f"{name} is stored by the plan's mask, which was not given")
            where = patterns[name].cpu().flatten().bool()
        else:
            where = unpack_bits(stored[f"{name}::bitmask"], shape, name).flatten()
        values = stored[f"{name}::values"]
        if int(where.sum()) != values.numel() or where.numel() != count:
            raise ValueError(f"{name}: {values.numel()} values for {int(where.sum())} entries")
        flat = torch.zeros(count, dtype=values.dtype)
        flat[where] = values
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
        # What the sparse weights cost: their values and bitmask, and the plan's masks file.
        report["sparse_tensors"] = _against_fp32(
            [s.tolist() for s in shapes], files[SPARSE_NAME] + files.get(MASKS_NAME, 0)
        )
    quantized = directory / QUANTIZED_NAME
    if quantized.is_file():
        with safetensors.safe_open(str(quantized), framework="pt") as handle:
            shapes = [
                handle.get_slice(k).get_shape()
                for k in handle.keys()  # noqa: SIM118
                if k.endswith(("::int8", "::float16"))
            ]
        report["quantized_tensors"] = _against_fp32(shapes, files[QUANTIZED_NAME])
    return report


def _against_fp32(shapes: list, stored: int) -> dict[str, Any]:
    """What tensors of ``shapes`` take as dense fp32, against the ``stored`` bytes."""
    dense = sum(int(np.prod(shape)) * 4 for shape in shapes)
    return {"dense_fp32_bytes": dense, "stored_bytes": stored, "ratio": dense / max(stored, 1)}

"""A plan's unstructured masks: their keys and shapes checked against the plan, and their file
form (packed bits with their shapes), apart from `PruningPlan` itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from prunekit.errors import PlanError
from prunekit.files import pack_bits, unpack_bits

__all__ = ["MASK_SLOTS", "MaskSet", "bad_file_name", "check_masks", "pack_masks", "unpack_masks"]

MASK_SLOTS = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")

# Which dense dimension each weight axis has: "attn" = heads * head_size, "ffn" = FFN width,
# "hidden" = model width. Used to check that masks agree with each other and with the plan.
_MASK_AXES = {
    "query": ("attn", "hidden"),
    "key": ("attn", "hidden"),
    "value": ("attn", "hidden"),
    "attn_out": ("hidden", "attn"),
    "ffn_in": ("ffn", "hidden"),
    "ffn_out": ("hidden", "ffn"),
}


class MaskSet:
    """A plan's mask tensors, wrapped because pydantic compares private attributes with ``==``."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MaskSet):
            return NotImplemented
        return self.tensors.keys() == other.tensors.keys() and all(
            torch.equal(mask, other.tensors[key]) for key, mask in self.tensors.items()
        )

    __hash__ = None  # type: ignore[assignment]


def check_masks(
    masks: Mapping[str, torch.Tensor], num_layers: int, num_heads: int, intermediate_size: int
) -> dict[str, torch.Tensor]:
    """Validated CPU masks in layer/slot order; `PlanError` names the first offending mask."""
    dims: dict[str, int] = {"ffn": intermediate_size}
    checked: dict[tuple[int, int], tuple[str, torch.Tensor]] = {}
    for key, mask in masks.items():
        layer_text, _, slot = str(key).partition(".")
        if not layer_text.isdigit() or slot not in MASK_SLOTS:
            raise PlanError(f"mask key {key!r} is not '<layer>.<slot>' with slot in {MASK_SLOTS}")
        layer = int(layer_text)
        if layer >= num_layers:
            raise PlanError(f"mask {key!r} is for layer {layer}; the plan has {num_layers}")
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2:
            what = f"{mask.dtype} {list(mask.shape)}" if isinstance(mask, torch.Tensor) else mask
            raise PlanError(
                f"mask {key!r} must be a 2-D bool tensor, got {type(mask).__name__} {what}"
            )
        for axis, size in zip(_MASK_AXES[slot], mask.shape, strict=True):
            expected = dims.setdefault(axis, size)
            if size != expected or (axis == "attn" and size % num_heads):
                raise PlanError(
                    f"mask {key!r} has shape {list(mask.shape)}, which does not fit the plan "
                    f"(FFN {intermediate_size}, {num_heads} heads) or the other masks"
                )
        checked[(layer, MASK_SLOTS.index(slot))] = (f"{layer}.{slot}", mask)  # "01." -> "1."
    # Sorted, contiguous CPU tensors: safetensors needs contiguity, and sorting keeps files stable.
    return {key: mask.detach().to("cpu").contiguous() for _, (key, mask) in sorted(checked.items())}


def bad_file_name(name: str) -> bool:
    # A bare file name only: a config.json must not be able to point reads or writes elsewhere.
    return Path(name).name != name or name.startswith(".") or not name.endswith(".safetensors")


def pack_masks(masks: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks as packed bits (8 entries a byte) plus their shapes: a 95%-sparse model's masks
    must not outweigh its values."""
    packed = {}
    for key, mask in masks.items():
        packed[key] = pack_bits(mask)
        packed[f"{key}::shape"] = torch.tensor(mask.shape, dtype=torch.int64)
    return packed


def unpack_masks(stored: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    masks = {}
    for key, value in stored.items():
        if key.endswith("::shape"):
            continue
        if value.dtype == torch.bool:  # written unpacked (before packing existed)
            masks[key] = value
            continue
        shape = tuple(stored[f"{key}::shape"].tolist())
        masks[key] = unpack_bits(value, shape, key)
    return masks

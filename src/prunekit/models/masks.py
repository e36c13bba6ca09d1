"""Unstructured masks on a live model: where they are kept and how they zero the weights.

A plan's masks are bool tensors in the *dense* shape of each linear (original indices), so that
they mean the same thing before and after heads or FFN neurons are cut. To zero a pruned model's
weights, `zero_masked_weights` slices each mask with the same head rows and FFN indices that
surgery uses for the weight.

The masks of the model's current plan are kept as a plain Python attribute (`MASKS_ATTR`) on the
model, next to the JSON plan in ``config.prunekit``. Not a buffer: buffers go into the state dict,
so ``model.safetensors`` would gain keys that stock loaders and our strict load reject. Not the
config: configs are serialised to JSON. A plain attribute survives ``copy.deepcopy`` and costs
one bool per dense weight entry (85 MB for BERT-base).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from prunekit.errors import PlanError
from prunekit.models.adapter import get_adapter
from prunekit.plan import PruningPlan

__all__ = [
    "MASKS_ATTR",
    "model_masks",
    "store_masks",
    "check_mask_shapes",
    "weight_masks",
    "masked_linears",
    "prunable_linears",
    "dense_masks",
    "zero_dropped",
    "top_fraction",
    "expand_blocks",
    "any_in_blocks",
    "zero_masked_weights",
    "head_rows",
]

MASKS_ATTR = "_prunekit_masks"


def model_masks(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The masks stored on ``model`` by `apply_plan`, or None."""
    return getattr(model, MASKS_ATTR, None)


def store_masks(model: nn.Module, plan: PruningPlan) -> None:
    """Keep ``plan.masks`` on ``model`` (or drop what was there when the plan has none)."""
    masks = plan.masks
    if masks:
        setattr(model, MASKS_ATTR, masks)
    elif hasattr(model, MASKS_ATTR):
        delattr(model, MASKS_ATTR)


def check_mask_shapes(model: nn.Module, plan: PruningPlan) -> None:
    """`PlanError` unless every mask has the dense shape of its linear in ``model``'s family.

    ``[A, d]`` for query/key/value, ``[d, A]`` for attn_out, ``[F, d]`` for ffn_in and ``[d, F]``
    for ffn_out, with ``A = heads * head_size``, ``d`` the hidden size and ``F`` the FFN width.
    """
    adapter = get_adapter(model)
    config = model.config
    d = adapter.hidden_size(config)
    width = adapter.num_heads(config) * adapter.head_size(config)
    ffn = adapter.intermediate_size(config)
    dense = {"query": (width, d), "key": (width, d), "value": (width, d)}
    dense |= {"attn_out": (d, width), "ffn_in": (ffn, d), "ffn_out": (d, ffn)}
    for key, mask in plan.masks.items():
        expected = dense[key.split(".", 1)[1]]
        if tuple(mask.shape) != expected:
            raise PlanError(
                f"mask {key!r} has shape {list(mask.shape)} but the dense model's weight is "
                f"{list(expected)}"
            )


def _slot_indices(model: nn.Module, plan: PruningPlan, layer: int) -> dict[str, tuple]:
    """``{slot: (dim, kept original indices)}`` of one layer's six linears: which rows or
    columns of the dense weight the model's current weight still has."""
    head_size = get_adapter(model).head_size(model.config)
    ffn = torch.tensor(plan.ffn_kept(layer), dtype=torch.long)
    index: dict[str, tuple] = {"ffn_in": (0, ffn), "ffn_out": (1, ffn)}
    # A layer without heads has no Q/K/V, and its output projection has no columns.
    if plan.kept_heads[layer]:
        rows = head_rows(list(plan.kept_heads[layer]), head_size)
        index |= {"query": (0, rows), "key": (0, rows), "value": (0, rows)}
        index["attn_out"] = (1, rows)
    return index


def prunable_linears(model: nn.Module, plan: PruningPlan) -> dict[str, nn.Linear]:
    """``{"{layer}.{slot}": linear}``: the six prunable linears of every layer (the layers' Q/K/V
    are absent when no head is left)."""
    adapter = get_adapter(model)
    linears = {}
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        for slot in _slot_indices(model, plan, layer):
            linears[f"{layer}.{slot}"] = getattr(parts, slot).get()
    return linears


def masked_linears(model: nn.Module, plan: PruningPlan) -> dict[str, torch.Tensor]:
    """The weights of `prunable_linears`, in their current shapes."""
    return {key: linear.weight for key, linear in prunable_linears(model, plan).items()}


def dense_masks(model: nn.Module, plan: PruningPlan, masks: dict[str, torch.Tensor]):
    """Masks in the model's current shapes -> the dense shapes a `PruningPlan` holds (entries
    of rows or columns the model no longer has are kept: they are cut anyway)."""
    adapter = get_adapter(model)
    config = model.config
    head_width = adapter.num_heads(config) * adapter.head_size(config)
    sizes = {
        "query": (head_width, None), "key": (head_width, None), "value": (head_width, None),
        "attn_out": (None, head_width), "ffn_in": (plan.intermediate_size, None),
        "ffn_out": (None, plan.intermediate_size),
    }  # fmt: skip
    out = {}
    for key, mask in masks.items():
        layer, slot = key.split(".")
        dim, keep = _slot_indices(model, plan, int(layer))[slot]
        shape = list(mask.shape)
        shape[dim] = sizes[slot][dim]
        dense = torch.ones(shape, dtype=torch.bool)
        dense.index_copy_(dim, keep, mask.bool().cpu())
        out[key] = dense
    return out


def weight_masks(model: nn.Module, plan: PruningPlan) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, drop)`` pairs: each masked weight of ``model`` and the boolean entries that
    ``plan.masks`` drops, sliced to the model's current (pruned) shape, on the weight's device.

    ``plan`` must be the model's current plan (its kept heads and FFN neurons say which rows and
    columns of each dense mask the weights still have).
    """
    masks = plan.masks
    if not masks:
        return []
    adapter = get_adapter(model)
    pairs = []
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        for slot, (dim, keep) in _slot_indices(model, plan, layer).items():
            mask = masks.get(f"{layer}.{slot}")
            if mask is not None:
                module = getattr(parts, slot).get()
                # a parametrized weight (movement's top-k) is computed, with its graph, on
                # every read: its stored original is the tensor that holds the values
                weight = (
                    module.parametrizations.weight.original
                    if parametrize.is_parametrized(module, "weight")
                    else module.weight
                )
                pairs.append((weight, ~mask.index_select(dim, keep).to(weight.device)))
    return pairs


def zero_masked_weights(model: nn.Module, plan: PruningPlan) -> int:
    """Set to 0 the weights that ``plan.masks`` drops (see `weight_masks`). Returns how many
    entries the masks drop among the remaining weights (already-zero ones included)."""
    dropped = 0
    for weight, drop in weight_masks(model, plan):
        zero_dropped(weight, drop)
        dropped += int(drop.sum())
    return dropped


def head_rows(head_positions: list[int], head_size: int) -> torch.Tensor:
    """Row indices of the given head positions in a ``[heads*head_size, ...]`` projection."""
    if not head_positions:
        return torch.empty(0, dtype=torch.long)
    offsets = torch.arange(head_size)
    return torch.cat([offsets + p * head_size for p in head_positions])


def top_fraction(values: torch.Tensor, keep: float) -> torch.Tensor:
    """Boolean mask of the ``round(keep * n)`` largest ``values`` (ties: lower index first, so
    the same values give the same mask everywhere).

    The cut is found with ``kthvalue`` (linear time) rather than a full sort: movement pruning
    calls this for every weight matrix at every forward pass, where sorting took 11 ms per
    384 x 384 matrix and 50 ms per 384 x 1536 one on this project's CPU, 5-8 times longer."""
    total = values.numel()
    count = round(keep * total)
    if count >= total:  # all (movement's warm-up, before its first cut): no sort needed
        return torch.ones_like(values, dtype=torch.bool)
    if count <= 0:
        return torch.zeros_like(values, dtype=torch.bool)
    flat = values.flatten()
    # CPU only: CUDA's kthvalue refuses deterministic mode, MPS lacks it before torch 2.9
    if values.device.type == "cpu" and not bool(torch.isnan(flat).any()):
        cut = torch.kthvalue(flat, total - count + 1).values  # the count-th largest value
        mask = flat > cut
        missing = count - int(mask.sum())
        if missing:  # values equal to the cut, lowest indices first
            mask[(flat == cut).nonzero().flatten()[:missing]] = True
        return mask.view_as(values)
    # other devices, or NaN among the values (which a sort places first, as before)
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(total, dtype=torch.bool, device=values.device)
    mask[order[:count]] = True
    return mask.view_as(values)


def expand_blocks(values: torch.Tensor, block: int) -> torch.Tensor:
    """``[rows, cols]`` per-block values -> ``[rows * block, cols * block]`` (each value over
    its square block; differentiable, so a block score's gradient is its block's sum)."""
    if block == 1:
        return values
    return values.repeat_interleave(block, 0).repeat_interleave(block, 1)


def any_in_blocks(mask: torch.Tensor, block: int) -> torch.Tensor:
    """Per ``block`` x ``block`` block of a 2-D boolean ``mask`` (dimensions divisible by
    ``block``): whether any of its entries is set."""
    rows, cols = mask.shape
    return mask.view(rows // block, block, cols // block, block).any(3).any(1)


def zero_dropped(weight: torch.Tensor, drop: torch.Tensor) -> None:
    # masked_fill_, not mul_: 0 * inf is nan, and -w * 0 is -0.0, which differ from a stored 0.
    with torch.no_grad():
        weight.masked_fill_(drop, 0.0)

"""Surgery: the only code that changes tensor shapes.

`apply_plan` slices the Q/K/V rows and output-projection columns of removed heads and the
FFN rows/columns of removed neurons, updates the attention modules' bookkeeping, swaps in
`EmptyAttention` for layers left without heads, zeroes what the plan's unstructured masks drop,
and records the plan in ``config.prunekit`` (masks beside it, see `models/masks.py`) so that
`prunekit.load` can rebuild the shapes. ``config.num_attention_heads`` and
``config.intermediate_size`` keep their dense values on purpose: the plan is the truth.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from prunekit.errors import PlanError, PrunekitError
from prunekit.models.adapter import get_adapter
from prunekit.models.masks import (
    check_mask_shapes,
    model_masks,
    store_masks,
    zero_masked_weights,
)
from prunekit.models.masks import head_rows as _head_rows
from prunekit.plan import MASKS_FILE, PLAN_FORMAT_VERSION, PruningPlan

__all__ = [
    "apply_plan",
    "current_plan",
    "dense_plan",
    "install_head_mask_guard",
    "reapply_masks",
    "HeadMaskNotSupportedError",
    "CONFIG_KEY",
]

CONFIG_KEY = "prunekit"


class HeadMaskNotSupportedError(PrunekitError, TypeError):
    """``head_mask=`` was passed; transformers 5 would silently ignore it."""


def dense_plan(model_or_config) -> PruningPlan:
    """The keep-everything plan for a model's dense architecture."""
    config = getattr(model_or_config, "config", model_or_config)
    adapter = get_adapter(config)
    return PruningPlan.dense(
        adapter.num_layers(config), adapter.num_heads(config), adapter.intermediate_size(config)
    )


def current_plan(model_or_config) -> PruningPlan:
    """What the model keeps now: ``config.prunekit['plan']``, or the dense plan.

    The plan's masks come from the model (`models/masks.py`); given only a config, a plan that
    names a masks file comes back without its tensors, and reading ``.masks`` raises `PlanError`.
    """
    config = getattr(model_or_config, "config", model_or_config)
    section = getattr(config, CONFIG_KEY, None)
    if not section:
        return dense_plan(config)
    if not isinstance(section, dict) or "plan" not in section:
        raise PlanError(f"config.{CONFIG_KEY} has no 'plan' entry; the checkpoint is corrupt")
    plan = PruningPlan.build(**section["plan"])
    masks = model_masks(model_or_config) if plan.sparse_masks is not None else None
    return plan if masks is None else plan.with_masks(masks, plan.sparse_masks)


def check_weights_match(model: nn.Module, plan: PruningPlan) -> None:
    """Refuse a model whose weights are not shaped as ``plan`` (its recorded plan) says: the
    config object that records it was shared with a model pruned since (transformers' model
    classes keep the config they are given), so slicing by it would cut the wrong rows."""
    adapter = get_adapter(model)
    head_size = adapter.head_size(model.config)
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        attn_out, ffn_in = parts.attn_out.get(), parts.ffn_in.get()
        found = {
            "heads": attn_out.in_features // head_size if isinstance(attn_out, nn.Linear) else None,
            "FFN neurons": ffn_in.out_features if isinstance(ffn_in, nn.Linear) else None,
        }
        planned = {"heads": len(plan.kept_heads[layer]), "FFN neurons": len(plan.ffn_kept(layer))}
        for unit, count in found.items():
            if count is not None and count != planned[unit]:
                raise PlanError(
                    f"layer {layer} has {count} {unit} in its weights but {planned[unit]} in "
                    "the plan its config records: is the config object shared with another "
                    "model, pruned since? Give each model its own (copy.deepcopy(config))"
                )


def apply_plan(model: nn.Module, plan: PruningPlan) -> nn.Module:
    """Physically remove what ``plan`` does not keep. Modifies ``model`` in place and returns it.

    ``plan`` is in original indices and may be applied to a model that is already pruned,
    provided it keeps no head or FFN neuron that is already gone; the result equals applying
    ``current_plan(model).then(plan)`` to the dense model. Masks compose by AND: weights that
    earlier masks zeroed stay zero (and are zeroed again if training moved them).

    A layer left without heads has no entry in ``outputs.attentions`` on BERT-style families
    (transformers records maps with hooks on the attention class it no longer has): use
    `prunekit.scoring.maps.attention_maps` for one map per layer.

    Raises:
        PlanError: the plan does not match the model's shape or keeps removed units.
    """
    adapter = get_adapter(model)
    before = current_plan(model)
    check_weights_match(model, before)
    if not plan.same_shape_as(before):
        raise PlanError(
            f"plan is for {plan.num_layers} layers x {plan.num_heads} heads, FFN "
            f"{plan.intermediate_size}, but the model has {before.num_layers} x "
            f"{before.num_heads}, FFN {before.intermediate_size}"
        )
    # Masks are left out: masked weights still exist (as zeros), so a plan may keep them.
    if not plan.is_subset_of(before, masks=False):
        raise PlanError("plan keeps heads or FFN neurons that were already removed from this model")
    check_mask_shapes(model, plan)

    head_size = adapter.head_size(model.config)
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        old_heads, new_heads = before.kept_heads[layer], plan.kept_heads[layer]
        if new_heads != old_heads:
            rows = _head_rows([old_heads.index(h) for h in new_heads], head_size)
            parts.attn_out.set(_slice_linear(parts.attn_out.get(), rows, dim=1))
            if new_heads:
                for slot in (parts.query, parts.key, parts.value):
                    slot.set(_slice_linear(slot.get(), rows, dim=0))
                adapter.set_head_count(model, layer, len(new_heads))
            else:
                adapter.remove_attention(model, layer)
        old_ffn, new_ffn = before.ffn_kept(layer), plan.ffn_kept(layer)
        if new_ffn != old_ffn:
            position = {n: i for i, n in enumerate(old_ffn)}
            keep = torch.tensor([position[n] for n in new_ffn], dtype=torch.long)
            parts.ffn_in.set(_slice_linear(parts.ffn_in.get(), keep, dim=0))
            parts.ffn_out.set(_slice_linear(parts.ffn_out.get(), keep, dim=1))
    adapter.after_surgery(model, [list(h) for h in plan.kept_heads])

    record = plan.model_copy(update={"meta": {}})  # provenance stays in plan.json, not config
    masks = before.then(plan).masks
    name = plan.sparse_masks or before.sparse_masks or MASKS_FILE
    record = record.with_masks(masks, name) if masks else record.without_masks()
    zero_masked_weights(model, record)
    store_masks(model, record)
    setattr(
        model.config,
        CONFIG_KEY,
        {"format_version": PLAN_FORMAT_VERSION, "plan": record.to_dict()},
    )
    install_head_mask_guard(model)
    return model


def reapply_masks(model: nn.Module) -> int:
    """Zero again what the model's masks drop, e.g. after an optimizer step moved those weights.

    Returns the number of weight entries the masks drop (0 for a model without masks).
    """
    return zero_masked_weights(model, current_plan(model))


def install_head_mask_guard(model: nn.Module) -> None:
    """Make ``model(..., head_mask=...)`` raise instead of being silently ignored by v5."""
    for hook in model._forward_pre_hooks.values():
        if getattr(hook, "_prunekit_head_mask_guard", False):
            return
    model.register_forward_pre_hook(_reject_head_mask, with_kwargs=True)


def _reject_head_mask(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    if kwargs.get("head_mask") is not None:
        raise HeadMaskNotSupportedError(
            "head_mask= is silently ignored by transformers>=5; use "
            "prunekit.HeadGates(model, gates) to mask heads, or prunekit.apply_plan to remove them"
        )


_reject_head_mask._prunekit_head_mask_guard = True  # type: ignore[attr-defined]


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new ``nn.Linear`` keeping rows (``dim=0``, output units) or columns (``dim=1``)."""
    index = index.to(linear.weight.device)
    weight = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias
    if bias is not None and dim == 0:
        bias = bias.detach().index_select(0, index).clone()
    elif bias is not None:
        bias = bias.detach().clone()
    out_features, in_features = weight.shape
    with warnings.catch_warnings():
        # nn.Linear warns that initialising a zero-width weight is a no-op; we overwrite it anyway.
        warnings.simplefilter("ignore", UserWarning)
        new = nn.Linear(
            in_features, out_features, bias=bias is not None, device="meta", dtype=weight.dtype
        )
    new.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if bias is not None:
        new.bias = nn.Parameter(bias, requires_grad=linear.bias.requires_grad)
    new.train(linear.training)
    return new

"""The attention maps of one forward, for scorers that read them (SMP, head similarity)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunekit.errors import ModelLoadError
from prunekit.models.surgery import current_plan

__all__ = ["attention_maps", "per_layer_maps"]


def attention_maps(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Per layer ``[B, heads, T, T]`` attention probabilities, one entry for every layer (a
    layer without heads gets ``[B, 0, T, T]``); the model must run eager attention (others
    return none)."""
    attentions = model(**inputs, output_attentions=True).attentions
    kept_heads = current_plan(model).kept_heads
    if any(a is None for a in attentions or ()) or (not attentions and any(kept_heads)):
        raise ModelLoadError(
            "the model returned no attention maps; load it with attn_implementation='eager'"
        )
    return per_layer_maps(attentions, kept_heads, inputs["attention_mask"])


def per_layer_maps(
    attentions: Sequence[torch.Tensor],
    kept_heads: Sequence[Sequence[int]],
    attention_mask: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """``attentions`` of a forward, one entry per layer. transformers collects BERT-style maps
    with hooks on the attention modules, so a layer without heads (`EmptyAttention`) returns
    none and later maps would shift onto it; MPNet's layers return ``[B, 0, T, T]`` there."""
    present = [a for a in attentions if a.shape[1]]
    if len(present) != sum(1 for heads in kept_heads if heads):
        raise ModelLoadError(
            f"the model returned {len(present)} attention maps with heads for "
            f"{sum(1 for heads in kept_heads if heads)} layers with heads"
        )
    batch, length = attention_mask.shape
    empty = attention_mask.new_zeros(batch, 0, length, length, dtype=torch.float32)
    maps = iter(present)
    return tuple(next(maps) if heads else empty for heads in kept_heads)

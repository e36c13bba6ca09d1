"""The attention maps of one forward, for scorers that read them (SMP, head similarity)."""

from __future__ import annotations

import torch
from torch import nn

from prunekit.errors import ModelLoadError

__all__ = ["attention_maps"]


def attention_maps(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Per layer ``[B, heads, T, T]`` attention probabilities; the model must run eager
    attention (others return none)."""
    attentions = model(**inputs, output_attentions=True).attentions
    if not attentions or any(a is None for a in attentions):
        raise ModelLoadError(
            "the model returned no attention maps; load it with attn_implementation='eager'"
        )
    return attentions

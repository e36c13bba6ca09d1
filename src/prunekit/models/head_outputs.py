"""Per-head decomposition of attention outputs, beside the gates.

A layer's attention output (its output projection, before dropout, residual and LayerNorm) is
``sum_h o_{l,h} + b_O``, where head h's contribution ``o_{l,h} = context_h @ W_O[:, block_h].T``
is its context times its column block of the output projection. `AttentionOutputs` records, per
layer, that sum without the bias (what the heads say together) and, with ``per_head``, each
``o_{l,h}`` in original head indices. It hooks the output projection the adapter names, so it
works for every family and on pruned models (heads removed are simply absent), and it composes
with `HeadGates` (the gates scale the context first, so gated heads contribute their share).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan

__all__ = ["AttentionOutputs"]


class AttentionOutputs:
    """Context manager recording attention outputs per layer during forwards.

    Attributes (filled by each forward; cleared with `clear`):
        sums: ``{layer: [B, T, d]}``, the heads' summed contribution (output minus bias).
        heads: with ``per_head``: ``{layer: [B, T, n_kept, d]}``; ``kept[layer]`` gives the
            original index of each of the n_kept heads.
    """

    def __init__(self, model: nn.Module, per_head: bool = False) -> None:
        self.model = model
        self.per_head = per_head
        self.adapter = get_adapter(model)
        self.kept = current_plan(model).kept_heads
        self.sums: dict[int, torch.Tensor] = {}
        self.heads: dict[int, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def clear(self) -> None:
        self.sums.clear()
        self.heads.clear()

    def __enter__(self) -> AttentionOutputs:
        head_size = self.adapter.head_size(self.model.config)
        for layer in range(len(self.kept)):
            out_proj = self.adapter.layer_modules(self.model, layer).attn_out.get()
            hook = self._make_hook(layer, len(self.kept[layer]), head_size)
            self._handles.append(out_proj.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, layer: int, count: int, head_size: int):
        def record(module: nn.Linear, args: tuple, output: torch.Tensor) -> None:
            bias = module.bias if module.bias is not None else 0.0
            self.sums[layer] = output - bias
            if self.per_head:
                context = args[0].unflatten(-1, (count, head_size))  # [B, T, n, dh]
                blocks = module.weight.unflatten(1, (count, head_size))  # [d, n, dh]
                self.heads[layer] = torch.einsum("btnk,dnk->btnd", context, blocks)

        return record

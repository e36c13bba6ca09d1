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

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan

__all__ = ["AttentionOutputs", "attention_dropout_off"]


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


@contextlib.contextmanager
def attention_dropout_off(model: nn.Module) -> Iterator[None]:
    """No dropout on the attention probabilities of ``model`` inside the block.

    Attention maps returned by a model in train mode are the probabilities *after* dropout
    (random zeros, the rest scaled by 1/(1-p)); a loss that matches them to a teacher's would
    chase noise and pull the maps towards (1-p)·target. Losses on attention maps therefore
    train with it off; dropout elsewhere (hidden states, classifier) stays.
    """
    adapter = get_adapter(model)
    changed: list[tuple[nn.Dropout, float]] = []
    for layer in range(len(current_plan(model).kept_heads)):
        attention = adapter.layer_modules(model, layer).query.parent
        dropout = getattr(attention, "dropout", None)
        if isinstance(dropout, nn.Dropout):
            changed.append((dropout, dropout.p))
            dropout.p = 0.0
    try:
        yield
    finally:
        for dropout, p in changed:
            dropout.p = p

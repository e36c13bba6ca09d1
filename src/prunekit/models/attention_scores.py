"""Pre-softmax attention scores per layer, which transformers 5 does not return.

A model called with ``output_attentions=True`` returns attention *probabilities*, after the
softmax (and, in train mode, after dropout). Distillation in SparseBERT and TinyBERT matches the
raw scores ``Q_h K_h^T / sqrt(d_h)`` instead. `AttentionScores` rebuilds them from the query and
key projections the adapter names (forward hooks, so any attention implementation works and the
forward itself is unchanged): ``[B, n_kept, T, T]`` per layer with heads, in the order of the
layers, the order `output_attentions` uses. Terms a family adds inside its attention are not in
them: MPNet's relative-position bias is left out, equally for student and teacher.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan

__all__ = ["AttentionScores"]


class AttentionScores:
    """Context manager that records each layer's query and key projections during a forward.

    `scores` then gives the pre-softmax scores of the last forward, one ``[B, n, T, T]`` tensor
    per layer that has heads (gradients flow through them to the projections).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.adapter = get_adapter(model)
        kept_heads = current_plan(model).kept_heads
        self.layers = [i for i, kept in enumerate(kept_heads) if kept]
        self.counts = {i: len(kept_heads[i]) for i in self.layers}
        self.head_size = self.adapter.head_size(model.config)
        self._queries: dict[int, torch.Tensor] = {}
        self._keys: dict[int, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> AttentionScores:
        for layer in self.layers:
            modules = self.adapter.layer_modules(self.model, layer)
            for slot, store in ((modules.query, self._queries), (modules.key, self._keys)):
                self._handles.append(slot.get().register_forward_hook(self._recorder(layer, store)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()  # the last forward's projections stay readable by `scores`

    @staticmethod
    def _recorder(layer: int, store: dict[int, torch.Tensor]):
        def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            store[layer] = output

        return record

    def scores(self) -> list[torch.Tensor]:
        """``Q_h K_h^T / sqrt(d_h)`` of every layer with heads, in float32 (bf16 autocast
        included: a squared error of scores in the tens wants the precision)."""
        out = []
        for layer in self.layers:
            shape = (self.counts[layer], self.head_size)
            query = self._queries[layer].float().unflatten(-1, shape).transpose(1, 2)
            key = self._keys[layer].float().unflatten(-1, shape).transpose(1, 2)
            with torch.autocast(query.device.type, enabled=False):  # else bf16 again
                out.append(query @ key.transpose(-1, -2) * self.head_size**-0.5)
        return out

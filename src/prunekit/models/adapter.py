"""Architecture adapters: where each encoder family keeps its heads and FFN.

Surgery, gates and scoring never hard-code module names; they ask the adapter of the model's
``config.model_type``. An adapter is a plain object (no inheritance) registered under the model
types it serves. Each family lives in its own file (`bert.py`, `roberta.py`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from prunekit.errors import ConfigError, UnsupportedModelError

__all__ = [
    "Slot",
    "LayerModules",
    "Adapter",
    "register_adapter",
    "get_adapter",
    "list_architectures",
    "EmptyAttention",
]


@dataclass(frozen=True)
class Slot:
    """A module held as ``parent.<name>``, so surgery can swap in a resized replacement."""

    parent: nn.Module
    name: str

    def get(self) -> nn.Module:
        return getattr(self.parent, self.name)

    def set(self, module: nn.Module) -> None:
        setattr(self.parent, self.name, module)


@dataclass(frozen=True)
class LayerModules:
    """The prunable linears of one encoder layer.

    ``query``/``key``/``value`` rows and ``attn_out`` columns are grouped per head
    (head h owns ``[h*head_size, (h+1)*head_size)``); ``ffn_in`` rows and ``ffn_out``
    columns are the FFN neurons.
    """

    query: Slot
    key: Slot
    value: Slot
    attn_out: Slot
    ffn_in: Slot
    ffn_out: Slot


class Adapter(Protocol):
    """What prunekit needs to know about one architecture family."""

    family: str

    def num_layers(self, config) -> int: ...
    def num_heads(self, config) -> int: ...
    def head_size(self, config) -> int: ...
    def hidden_size(self, config) -> int: ...
    def intermediate_size(self, config) -> int: ...
    def layer_modules(self, model: nn.Module, layer: int) -> LayerModules: ...

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        """The encoder's layers, in order (for activation caching)."""

    def set_head_count(self, model: nn.Module, layer: int, count: int) -> None:
        """Update the attention module's bookkeeping (head count, all_head_size)."""

    def remove_attention(self, model: nn.Module, layer: int) -> None:
        """Replace the attention of a layer whose heads are all gone (see `EmptyAttention`)."""

    def after_surgery(self, model: nn.Module, kept_heads: list[list[int]]) -> None:
        """Re-slice anything head-shaped that is not a linear (MPNet's position bias)."""


_ADAPTERS: dict[str, Adapter] = {}


def register_adapter(*model_types: str) -> Callable[[Adapter], Adapter]:
    """Register an adapter instance for the given ``config.model_type`` values."""

    def add(adapter: Adapter) -> Adapter:
        for model_type in model_types:
            if model_type in _ADAPTERS:
                raise ValueError(f"an adapter for model_type {model_type!r} is already registered")
            _ADAPTERS[model_type] = adapter
        return adapter

    return add


def list_architectures() -> list[str]:
    """Supported ``config.model_type`` values."""
    _import_families()
    return sorted(_ADAPTERS)


def get_adapter(model_or_config) -> Adapter:
    """The adapter for a model (or its config); `UnsupportedModelError` lists the supported ones."""
    _import_families()
    if getattr(model_or_config, "runs_sparse_path", False):  # its layers hold other modules
        raise ConfigError(
            "this model was converted to the sparse inference path (to_sparse_inference), "
            "which only runs it: prune, gate, measure or save the model before the conversion "
            "(load it again)"
        )
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in _ADAPTERS:
        raise UnsupportedModelError(
            f"architecture {model_type!r} is not supported; prunekit supports "
            f"{', '.join(sorted(_ADAPTERS))}"
        )
    return _ADAPTERS[model_type]


def _import_families() -> None:
    # Imported lazily so that `adapter.py` stays importable by the family modules themselves.
    from prunekit.models import bert, distilbert, electra, mpnet, roberta  # noqa: F401


class EmptyAttention(nn.Module):
    """Stands in for an attention block whose heads were all removed.

    The gated model computes ``attn_out(0) = attn_out.bias`` for such a layer, so this module
    produces a zero-width context and, where the family keeps the output projection inside the
    attention module (DistilBERT, MPNet), applies that zero-column projection to it. The output
    projection stays a real ``nn.Linear`` with its original state-dict name.

    Args:
        returns_tuple_len: how many outputs the replaced module returned (2 for BERT-style
            ``(context, weights)``; MPNet returns ``(output,)``, and ``(output, probs)`` when
            asked for attentions: then an empty ``[B, 0, T, T]`` map).
        out_proj_name: attribute name of the output projection when it lives here, else None.
        out_proj: that projection, already sliced to zero input columns.
    """

    def __init__(
        self,
        returns_tuple_len: int = 2,
        out_proj_name: str | None = None,
        out_proj: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        self.returns_tuple_len = returns_tuple_len
        self.out_proj_name = out_proj_name
        if out_proj_name is not None:
            self.add_module(out_proj_name, out_proj)
        self.num_attention_heads = 0

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs):
        context = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)
        if self.out_proj_name is not None:
            context = getattr(self, self.out_proj_name)(context)
        if self.returns_tuple_len == 1:
            if kwargs.get("output_attentions"):  # MPNet's layer then reads a map from slot 1
                batch, length = hidden_states.shape[:2]
                return (context, hidden_states.new_zeros(batch, 0, length, length))
            return (context,)
        return (context,) + (None,) * (self.returns_tuple_len - 1)

"""BERT layout (also used by RoBERTa and ELECTRA, whose v5 modeling files copy BERT's blocks).

Per layer ``encoder.layer[i]``:
``attention.self.{query,key,value}`` -> ``attention.output.dense`` (heads),
``intermediate.dense`` -> ``output.dense`` (FFN). all-MiniLM-L6-v2 is a ``BertModel``.
"""

from __future__ import annotations

from torch import nn

from prunekit.models.adapter import EmptyAttention, LayerModules, Slot, register_adapter

__all__ = ["BertStyleAdapter", "BERT"]


class BertStyleAdapter:
    """Adapter for encoders laid out like ``modeling_bert.BertLayer``."""

    def __init__(self, family: str) -> None:
        self.family = family

    def num_layers(self, config) -> int:
        return config.num_hidden_layers

    def num_heads(self, config) -> int:
        return config.num_attention_heads

    def hidden_size(self, config) -> int:
        return config.hidden_size

    def head_size(self, config) -> int:
        return config.hidden_size // config.num_attention_heads

    def intermediate_size(self, config) -> int:
        return config.intermediate_size

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        return model.base_model.encoder.layer

    def _layer(self, model: nn.Module, layer: int) -> nn.Module:
        return self.layer_list(model)[layer]

    def layer_modules(self, model: nn.Module, layer: int) -> LayerModules:
        block = self._layer(model, layer)
        attention = block.attention.self
        return LayerModules(
            query=Slot(attention, "query"),
            key=Slot(attention, "key"),
            value=Slot(attention, "value"),
            attn_out=Slot(block.attention.output, "dense"),
            ffn_in=Slot(block.intermediate, "dense"),
            ffn_out=Slot(block.output, "dense"),
        )

    def set_head_count(self, model: nn.Module, layer: int, count: int) -> None:
        attention = self._layer(model, layer).attention.self
        attention.num_attention_heads = count
        attention.all_head_size = count * attention.attention_head_size

    def remove_attention(self, model: nn.Module, layer: int) -> None:
        # BertSelfOutput applies attention.output.dense (now zero columns) to our empty context.
        self._layer(model, layer).attention.self = EmptyAttention(returns_tuple_len=2)

    def after_surgery(self, model: nn.Module, kept_heads: list[list[int]]) -> None:
        return None


BERT = register_adapter("bert")(BertStyleAdapter("bert"))

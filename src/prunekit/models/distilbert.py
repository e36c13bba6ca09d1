"""DistilBERT: ``attention.{q_lin,k_lin,v_lin,out_lin}`` and ``ffn.{lin1,lin2}`` per layer.

The output projection lives inside the attention module, so a layer without heads keeps
``attention.out_lin`` inside `EmptyAttention` to preserve its state-dict name.
"""

from __future__ import annotations

from torch import nn

from prunekit.models.adapter import EmptyAttention, LayerModules, Slot, register_adapter

__all__ = ["DistilBertAdapter", "DISTILBERT"]


class DistilBertAdapter:
    family = "distilbert"

    def num_layers(self, config) -> int:
        return config.n_layers

    def num_heads(self, config) -> int:
        return config.n_heads

    def hidden_size(self, config) -> int:
        return config.dim

    def head_size(self, config) -> int:
        return config.dim // config.n_heads

    def intermediate_size(self, config) -> int:
        return config.hidden_dim

    def layer_list(self, model: nn.Module) -> nn.ModuleList:
        return model.base_model.transformer.layer

    def _layer(self, model: nn.Module, layer: int) -> nn.Module:
        return self.layer_list(model)[layer]

    def layer_modules(self, model: nn.Module, layer: int) -> LayerModules:
        block = self._layer(model, layer)
        return LayerModules(
            query=Slot(block.attention, "q_lin"),
            key=Slot(block.attention, "k_lin"),
            value=Slot(block.attention, "v_lin"),
            attn_out=Slot(block.attention, "out_lin"),
            ffn_in=Slot(block.ffn, "lin1"),
            ffn_out=Slot(block.ffn, "lin2"),
        )

    def set_head_count(self, model: nn.Module, layer: int, count: int) -> None:
        self._layer(model, layer).attention.n_heads = count

    def remove_attention(self, model: nn.Module, layer: int) -> None:
        block = self._layer(model, layer)
        block.attention = EmptyAttention(
            returns_tuple_len=2, out_proj_name="out_lin", out_proj=block.attention.out_lin
        )

    def after_surgery(self, model: nn.Module, kept_heads: list[list[int]]) -> None:
        return None


DISTILBERT = register_adapter("distilbert")(DistilBertAdapter())

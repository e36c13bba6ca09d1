"""MPNet: ``encoder.layer[i].attention.attn.{q,k,v,o}``, FFN as in BERT, plus a relative
position bias ``[B, H, T, T]`` computed once by the encoder for all heads.

After surgery each layer's attention sees only the bias rows of the heads it kept: a forward
pre-hook on ``attention.attn`` slices the bias (original head indices) before it is added.
MPNet runs eager attention only in transformers 5.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.models.adapter import EmptyAttention, LayerModules, Slot, register_adapter
from prunekit.models.bert import BertStyleAdapter

__all__ = ["MPNetAdapter", "MPNET"]

_HOOK_MARK = "_prunekit_position_bias_slicer"


class MPNetAdapter(BertStyleAdapter):
    """BERT's config and layer list; MPNet names its projections ``attention.attn.{q,k,v,o}``
    and hands every layer a relative-position bias with one row per head."""

    def __init__(self) -> None:
        super().__init__("mpnet")

    def layer_modules(self, model: nn.Module, layer: int) -> LayerModules:
        block = self._layer(model, layer)
        attention = block.attention.attn
        return LayerModules(
            query=Slot(attention, "q"),
            key=Slot(attention, "k"),
            value=Slot(attention, "v"),
            attn_out=Slot(attention, "o"),
            ffn_in=Slot(block.intermediate, "dense"),
            ffn_out=Slot(block.output, "dense"),
        )

    def set_head_count(self, model: nn.Module, layer: int, count: int) -> None:
        attention = self._layer(model, layer).attention.attn
        attention.num_attention_heads = count
        attention.all_head_size = count * attention.attention_head_size

    def remove_attention(self, model: nn.Module, layer: int) -> None:
        attention = self._layer(model, layer).attention
        attention.attn = EmptyAttention(
            returns_tuple_len=1, out_proj_name="o", out_proj=attention.attn.o
        )

    def after_surgery(self, model: nn.Module, kept_heads: list[list[int]]) -> None:
        num_heads = model.config.num_attention_heads
        for layer, kept in enumerate(kept_heads):
            attention = self._layer(model, layer).attention.attn
            # Remove our earlier slicer by marker, not by handle: handles do not survive deepcopy.
            for key, hook in list(attention._forward_pre_hooks.items()):
                if getattr(hook, _HOOK_MARK, False):
                    del attention._forward_pre_hooks[key]
                    attention._forward_pre_hooks_with_kwargs.pop(key, None)
            if 0 < len(kept) < num_heads:
                attention.register_forward_pre_hook(_BiasSlicer(kept), with_kwargs=True)


class _BiasSlicer:
    """A forward pre-hook that keeps the position-bias rows of the kept heads. A class, not a
    closure, so a pruned MPNet pickles (``torch.save(model)``, multiprocessing) as others do."""

    def __init__(self, kept: list[int]) -> None:
        self.index = torch.tensor(kept, dtype=torch.long)

    def __call__(self, module, args, kwargs):
        # MPNetAttention calls attn(hidden_states, attention_mask, position_bias, ...).
        if len(args) >= 3 and args[2] is not None:
            bias = args[2].index_select(1, self.index.to(args[2].device))
            return (*args[:2], bias, *args[3:]), kwargs
        if kwargs.get("position_bias") is not None:
            bias = kwargs["position_bias"]
            kwargs = {**kwargs, "position_bias": bias.index_select(1, self.index.to(bias.device))}
            return args, kwargs
        return None


setattr(_BiasSlicer, _HOOK_MARK, True)


MPNET = register_adapter("mpnet")(MPNetAdapter())

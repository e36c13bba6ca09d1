"""A feature-major encoder for the sparse CPU path of BERT-style models (BERT, RoBERTa, ELECTRA).

PyTorch's CSR kernel computes ``W @ X``: sparse weight times a dense matrix with one column per
token. A model stored token-major (``[tokens, hidden]``, as transformers keeps it) must
transpose into and out of every sparse linear, and those transposing copies cost as much as
the sparse products they wrap (measured on the 2-core CPU of this project: a 95%-sparse
384→1536 product on 4,096 tokens takes 10 ms, making its output row-major takes 23 ms more).
`FeatureMajorEncoder` instead keeps the hidden states as ``[hidden, tokens]`` through the whole
encoder, so every linear, sparse or dense, is one ``addmm(bias, W, X)`` with no copy, and
transposes once on the way in and once on the way out. It also fuses each layer's query, key
and value projections into one product (one kernel call instead of three).

Each projection is timed dense and sparse (CSR; BSR too where its weights are block-sparse) in
this layout on this machine and runs sparse where that is faster, per input size
(`FeatureMajorLinear`). Dropout is ignored: inference only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions as EncoderOutput

from prunekit.errors import ConfigError
from prunekit.models.adapter import get_adapter
from prunekit.models.masks import any_in_blocks

__all__ = [
    "FEATURE_MAJOR_FAMILIES",
    "weight_block_size",
    "sparse_weight",
    "FeatureMajorLinear",
    "FeatureMajorEncoder",
    "feature_major_unsupported",
]

# Families whose layers are transformers' BertLayer (or a copy of it).
FEATURE_MAJOR_FAMILIES = ("bert", "roberta", "electra")


# Square block sizes tried for BSR, largest first, and how full a weight's nonzero blocks must
# be for it to count as block-sparse at that size (BSR stores every entry of a kept block).
BLOCK_SIZES = (32, 16, 8, 4)
MIN_BLOCK_FILL = 0.5


def weight_block_size(
    weight: torch.Tensor, sizes: Sequence[int] = BLOCK_SIZES, min_fill: float = MIN_BLOCK_FILL
) -> int | None:
    """The largest square block size of ``sizes`` (dividing both dimensions) at which the
    weight's nonzeros gather in blocks: its nonzero blocks are at least ``min_fill`` full, and
    at least twice as full as the weight is dense (block movement pruning's weights are full
    blocks at their size). None for weights without that structure: unstructured masks
    scatter their nonzeros over every block (at 50% sparsity each 32 x 32 block is about half
    full, no fuller than the weight), and BSR would store their zeros."""
    nonzero = weight.detach() != 0
    count = int(nonzero.sum())
    rows, cols = weight.shape
    if count == 0:
        return None
    density = count / nonzero.numel()
    for block in sorted(sizes, reverse=True):
        if rows % block or cols % block:
            continue
        fill = count / (int(any_in_blocks(nonzero, block).sum()) * block * block)
        if fill >= max(min_fill, 2 * density):
            return block
    return None


def sparse_weight(weight: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """``weight`` as CSR, or as BSR of ``block`` x ``block`` blocks, with int32 indices (MKL's
    own: int64 ones are converted at every product); ``torch.addmm(bias, it, x)`` computes
    ``W x + b`` either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        weight = weight.detach()
        if block is not None:
            bsr = weight.to_sparse_bsr((block, block))
            return torch.sparse_bsr_tensor(
                bsr.crow_indices().to(torch.int32),
                bsr.col_indices().to(torch.int32),
                bsr.values(),
                bsr.shape,
            )
        csr = weight.to_sparse_csr()
        return torch.sparse_csr_tensor(
            csr.crow_indices().to(torch.int32),
            csr.col_indices().to(torch.int32),
            csr.values(),
            csr.shape,
        )


class FeatureMajorLinear(nn.Module):
    """``Y = W X + b`` on feature-major inputs ``X: [in, tokens]``.

    ``sparse_up_to``: run the sparse weight (CSR, or BSR of ``block`` x ``block`` blocks) for
    inputs of at most that many tokens (None: never; ``float('inf')``: always), the dense
    weight above it. Only the weights that can run are kept.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        sparse_up_to: float | None,
        block: int | None = None,
    ):
        super().__init__()
        weight = weight.detach()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.sparse_up_to, self.block = sparse_up_to, block
        self.sparse = sparse_weight(weight, block) if sparse_up_to is not None else None
        self.dense = weight if sparse_up_to != float("inf") else None  # shared, not copied
        bias = bias.detach() if bias is not None else torch.zeros(weight.shape[0])
        self.bias_column = bias[:, None].clone()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``W x + b``, plus ``residual`` when given: it then seeds the product's output, which
        saves the copy of the bias that ``addmm`` makes and the add after it."""
        tokens = x.shape[1]
        check_built_for(self.sparse if self.sparse is not None else self.bias_column, x)
        if self.in_features == 0:  # every head or FFN unit removed: the bias alone
            bias = self.bias_column.expand(-1, tokens)
            return bias if residual is None else residual + bias
        use_sparse = self.sparse_up_to is not None and tokens <= self.sparse_up_to
        weight = self.sparse if use_sparse else self.dense
        if residual is None:
            return torch.addmm(self.bias_column, weight, x)
        out = residual + self.bias_column
        return torch.addmm(out, weight, x, out=out)


def _norm_columns(norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """A LayerNorm's weight and bias as ``[hidden, 1]`` views (shared, not copied), its eps, and
    the ``[1, hidden]`` row of 1/hidden that averages over features."""
    weight = norm.weight.detach()
    averaging = torch.full((1, weight.shape[0]), 1.0 / weight.shape[0], dtype=weight.dtype)
    return weight[:, None], norm.bias.detach()[:, None], norm.eps, averaging


def _layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, averaging: torch.Tensor
) -> torch.Tensor:
    """LayerNorm over the feature axis (dim 0) of ``[hidden, tokens]``. The two means are
    products with a row of 1/hidden: a reduction over dim 0 (``mean`` or ``var_mean``) was
    1.4-2.8x slower at batch 1 on this project's CPU, where the written-out LayerNorms cost as
    much as the layer's sparse products."""
    centred = x - averaging @ x
    scale = (averaging @ centred.square()).add_(eps).rsqrt_()
    return torch.addcmul(bias, centred.mul_(scale), weight)


class FeatureMajorLayer(nn.Module):
    """One BertLayer in feature-major form (post-LN; query/key/value fused)."""

    def __init__(self, block: nn.Module, qkv: FeatureMajorLinear, linears: dict[str, nn.Module]):
        super().__init__()
        attention = getattr(block.attention, "self", None)
        self.heads = getattr(attention, "num_attention_heads", 0) if qkv is not None else 0
        self.head_size = getattr(attention, "attention_head_size", 1)
        self.qkv = qkv
        self.attn_out, self.ffn_in, self.ffn_out = (
            linears["attn_out"],
            linears["ffn_in"],
            linears["ffn_out"],
        )
        self.attention_norm = _norm_columns(block.attention.output.LayerNorm)
        self.activation = block.intermediate.intermediate_act_fn
        self.output_norm = _norm_columns(block.output.LayerNorm)

    def forward(self, x: torch.Tensor, batch: int, length: int, mask: Any) -> torch.Tensor:
        if self.heads:
            width = self.heads * self.head_size
            # [3 * width, tokens] -> three [batch, heads, head_size, length] views, no copy
            q, k, v = (
                part.view(self.heads, self.head_size, batch, length).permute(2, 0, 1, 3)
                for part in self.qkv(x).split(width)
            )
            # Written out rather than SDPA: on these strided views SDPA takes its math path
            # with a NaN guard that costs more than the products.
            # 1/sqrt(head_size) is folded into the query rows of qkv (build_feature_major)
            scores = torch.matmul(q.transpose(-1, -2), k)
            if mask is not None:
                scores += mask
            probabilities = scores.softmax(-1)
            # context^T per head: [head_size, length] = v [head_size, length] @ P^T
            context = torch.matmul(v, probabilities.transpose(-1, -2))
            context = context.permute(1, 2, 0, 3).reshape(width, batch * length)
        else:
            context = x.new_zeros(0, batch * length)
        x = _layer_norm(self.attn_out(context, residual=x), *self.attention_norm)
        inner = self.activation(self.ffn_in(x))
        return _layer_norm(self.ffn_out(inner, residual=x), *self.output_norm)


class FeatureMajorEncoder(nn.Module):
    """Drop-in for a BERT-style encoder (same call, same output type) that runs
    `FeatureMajorLayer` s; attention masks are those transformers builds for SDPA or eager.

    Inputs of more than ``up_to`` tokens, where every projection runs dense anyway, go to the
    ``original`` encoder: dense products are as fast either way, and its fused attention and
    LayerNorm kernels beat the written-out ones on large batches. So do calls that ask for
    per-layer hidden states or attention maps (transformers collects them with hooks on the
    original layers) and masks of other forms than the 4-D ones of SDPA and eager attention."""

    def __init__(self, layers: Sequence[FeatureMajorLayer], original: nn.Module, up_to: float):
        super().__init__()
        self.layer = nn.ModuleList(layers)
        self.original, self.up_to = original, up_to

    @torch.no_grad()
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> EncoderOutput:
        batch, length, hidden = hidden_states.shape
        config = self.original.config
        if (
            batch * length > self.up_to
            or kwargs.get("output_hidden_states")
            or config.output_hidden_states
            or kwargs.get("output_attentions")
            or config.output_attentions
            or not (attention_mask is None or attention_mask.dim() == 4)
        ):
            return self.original(hidden_states, attention_mask=attention_mask, **kwargs)
        mask = attention_mask  # as built for SDPA (boolean, True = attend) or eager (additive)
        if mask is not None and mask.dtype == torch.bool:
            blocked = torch.finfo(hidden_states.dtype).min
            mask = torch.zeros(mask.shape, dtype=hidden_states.dtype).masked_fill_(~mask, blocked)
        x = hidden_states.reshape(batch * length, hidden).T.contiguous()
        for layer in self.layer:
            x = layer(x, batch, length, mask)
        return EncoderOutput(last_hidden_state=x.T.reshape(batch, length, hidden))


def check_built_for(weight: torch.Tensor, x: torch.Tensor) -> None:
    """A `ConfigError` when ``x`` is of another dtype or device than the sparse ``weight``:
    its tensors are plain attributes, which ``model.to`` and ``model.double()`` leave as they
    were, and torch's own error would come from deep inside a product."""
    if x.dtype != weight.dtype or x.device != weight.device:
        raise ConfigError(
            f"the sparse path was built for {weight.dtype} on {weight.device} and got "
            f"{x.dtype} on {x.device}; convert the model after changing its dtype or device"
        )


def feature_major_unsupported(model: nn.Module) -> str | None:
    """Why ``model`` cannot run the feature-major encoder, or None when it can."""
    family = get_adapter(model).family
    if family not in FEATURE_MAJOR_FAMILIES:
        return (
            f"the feature-major encoder supports {', '.join(FEATURE_MAJOR_FAMILIES)}, not {family}"
        )
    attention = model.config._attn_implementation
    if attention not in ("eager", "sdpa"):
        return f"the feature-major encoder needs eager or sdpa attention, not {attention}"
    if getattr(model.config, "add_cross_attention", False):
        return "the feature-major encoder has no cross-attention"
    if getattr(model.config, "is_decoder", False):
        return "the feature-major encoder attends both ways; this model is a causal decoder"
    return None


def build_feature_major(model: nn.Module, choose: Any) -> FeatureMajorEncoder | None:
    """The feature-major encoder of a BERT-style ``model``; ``choose(name, weight, bias)``
    returns each projection's `FeatureMajorLinear` (it decides CSR or dense). None when every
    projection chose dense: the model is best left as it is."""
    adapter = get_adapter(model)
    layers, up_to = [], -1.0
    for index, block in enumerate(adapter.layer_list(model)):
        parts = adapter.layer_modules(model, index)
        linears = {}
        for slot in ("attn_out", "ffn_in", "ffn_out"):
            linear = getattr(parts, slot).get()
            linears[slot] = choose(f"{index}.{slot}", linear.weight, linear.bias)
        attention = getattr(block.attention, "self", None)
        query = getattr(attention, "query", None)
        qkv = None
        if isinstance(query, nn.Linear) and query.out_features > 0:
            # The attention's 1/sqrt(head_size) scales the query rows once, here, rather
            # than every score matrix at every call.
            scale = attention.attention_head_size**-0.5
            key, value = attention.key, attention.value
            weight = torch.cat([query.weight * scale, key.weight, value.weight]).detach()
            bias = torch.cat([query.bias * scale, key.bias, value.bias]).detach()
            qkv = choose(f"{index}.qkv", weight, bias)
        for projection in (qkv, *linears.values()):
            if projection is not None and projection.sparse_up_to is not None:
                up_to = max(up_to, projection.sparse_up_to)
        layers.append(FeatureMajorLayer(block, qkv, linears))
    if up_to < 0:
        return None
    return FeatureMajorEncoder(layers, model.base_model.encoder, up_to)

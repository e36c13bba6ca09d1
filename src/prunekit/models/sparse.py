"""A sparse CPU inference path for pruned linears (opt-in; surgery never uses it).

`SparseLinear` keeps a weight in CSR with int32 indices and computes ``addmm(bias, W, x.T).T``
(PyTorch's MKL CSR kernel; ``F.linear`` with a CSR weight is several times slower), over chunks
of tokens so large batches stay in cache. A block-sparse weight (whole square blocks zero, as
block movement pruning leaves it: `weight_block_size`) can also run as BSR, whose kernel
multiplies dense blocks (issue 12 found it much faster than CSR at equal sparsity; the
conversion times both on the machine rather than assuming either). `to_sparse_inference` times,
per linear and at each of a few input sizes (by default a batch-1 and a batch-32 sequence of
128 tokens), the dense module against its sparse forms on this machine (CSR; BSR too where the
weight is block-sparse: the sparse kernel is the one with the lower summed sparse/dense time
ratio over the sizes) and keeps whichever wins: sparse everywhere, dense everywhere, or (when
sparse wins only on smaller inputs, as it often does at batch 1 but not at batch 32) a
`SparseLinear` that also keeps the dense weight and runs it above a token threshold. Every
choice is reported. Inference only: no gradients flow through a `SparseLinear`.

BERT-style models (BERT, RoBERTa, ELECTRA) go further by default (``layout="auto"``): their
encoder is replaced by a feature-major one (`models/sparse_encoder.py`) in which no sparse
product needs a transposing copy and query/key/value run as one product; each projection is
chosen the same way, timed in that layout. Other families replace linears one by one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.errors import ConfigError
from prunekit.models.adapter import get_adapter
from prunekit.models.sparse_encoder import (
    FeatureMajorEncoder,
    FeatureMajorLinear,
    build_feature_major,
    check_built_for,
    feature_major_unsupported,
    sparse_weight,
    weight_block_size,
)
from prunekit.models.surgery import current_plan

__all__ = [
    "SparseLinear",
    "LinearChoice",
    "to_sparse_inference",
    "time_linear",
    "break_even_sparsity",
    "is_converted",
]

CHUNK = 512  # tokens per addmm


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with W stored as CSR (int32 indices), or as BSR of ``block`` x
    ``block`` blocks; for inference on CPU.

    With ``dense_above`` it also keeps the dense weight and uses it for inputs of more than
    that many tokens (where dense was timed faster), at the memory cost of that copy.
    """

    def __init__(
        self,
        linear: nn.Linear,
        chunk: int = CHUNK,
        dense_above: int | None = None,
        block: int | None = None,
    ) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.dense_above, self.block = dense_above, block
        self.dense_weight = weight.clone() if dense_above is not None else None
        self.weight = sparse_weight(weight, block)
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(weight.shape[0])
        self.register_buffer("bias_column", bias[:, None].clone())
        self.in_features, self.out_features, self.chunk = linear.in_features, weight.shape[0], chunk

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_built_for(self.weight, x)
        flat = x.reshape(-1, self.in_features)
        if self.dense_weight is not None and flat.shape[0] > self.dense_above:
            return F.linear(x, self.dense_weight, self.bias_column[:, 0])
        parts = [
            torch.addmm(self.bias_column, self.weight, piece.T).T
            for piece in flat.split(self.chunk)
        ]
        return torch.cat(parts).reshape(*x.shape[:-1], self.out_features)


@dataclass(frozen=True)
class LinearChoice:
    """What `to_sparse_inference` chose for one linear, and the timings it chose from (one
    per input size in ``tokens``; ``sparse_ms`` is None when the linear was not tried)."""

    name: str
    sparsity: float
    tokens: tuple[int, ...]
    dense_ms: tuple[float, ...]
    sparse_ms: tuple[float, ...] | None
    sparse: bool  # the sparse kernel runs for some inputs
    dense_above: int | None = None  # ...for inputs up to this many tokens (None: all)
    block: int | None = None  # the sparse kernel's BSR block size (None: CSR)
    csr_ms: tuple[float, ...] | None = None  # CSR's timings where BSR was timed too

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def time_linear(module: nn.Module, x: torch.Tensor, rounds: int = 5) -> float:
    """Median seconds of ``module(x)`` after one warm-up call."""
    with torch.no_grad():
        module(x)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            module(x)
            samples.append(time.perf_counter() - start)
    return sorted(samples)[len(samples) // 2]


def to_sparse_inference(
    model: nn.Module,
    tokens: int | Sequence[int] = (128, 32 * 128),
    min_sparsity: float = 0.5,
    rounds: int = 5,
    always: bool = False,
    layout: str = "auto",
) -> list[LinearChoice]:
    """Replace each of the six linears of every layer by a `SparseLinear` where it is timed
    faster on random inputs of ``tokens`` rows (each size given). The sparse kernel is CSR, or
    BSR where the weight is block-sparse and BSR was timed faster than CSR. Sparse faster at
    every size: sparse only; at the smaller sizes only: sparse up to a threshold halfway
    (geometrically) to the first size where dense won, dense above it; at the smallest size
    not: dense. Linears below ``min_sparsity`` are neither tried nor timed; ``always``
    converts every tried one to sparse only.
    ``layout``: ``feature`` (BERT-style only), ``token``, or ``auto`` (feature where supported).
    Modifies ``model`` in place (float32, CPU); returns the choice made for every linear (for
    the feature-major encoder, query/key/value are one fused ``<layer>.qkv``)."""
    if is_converted(model):
        raise ConfigError(
            "this model already runs the sparse path; convert a fresh copy (load it again)"
        )
    sizes = sorted({tokens} if isinstance(tokens, int) else set(tokens))
    if not sizes or min(sizes) < 1:  # no size: every linear "won" without a timing
        raise ConfigError(f"time the sparse path at 1 or more token counts >= 1, got {tokens!r}")
    # an unsupported family, or a corrupt plan record, fails before anything is timed
    get_adapter(model)
    current_plan(model)
    parameter = next(model.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        raise ConfigError(
            f"the sparse path runs float32 models on the CPU; this one is {parameter.dtype} on "
            f"{parameter.device} (use --device cpu, and a float32 model)"
        )
    if layout not in ("auto", "feature", "token"):
        raise ConfigError(f"unknown sparse layout {layout!r}; choose auto, feature or token")
    unsupported = feature_major_unsupported(model)
    if layout == "feature" and unsupported:
        raise ConfigError(f"{unsupported}; use layout='token'")
    supported = unsupported is None
    generator = torch.Generator().manual_seed(0)
    if layout == "feature" or (layout == "auto" and supported):
        choices = _feature_major(model, sizes, min_sparsity, rounds, always, generator)
    else:
        choices = _linear_by_linear(model, sizes, (min_sparsity, rounds, always), generator)
    # stats, surgery and gates walk a family's layers, which now hold these modules: refused
    model.runs_sparse_path = is_converted(model)
    return choices


def _linear_by_linear(
    model: nn.Module, sizes: list[int], decide: tuple, generator: torch.Generator
) -> list[LinearChoice]:
    """Each linear replaced in place where its `SparseLinear` was timed faster."""
    adapter, plan = get_adapter(model), current_plan(model)
    choices = []
    for layer in range(plan.num_layers):
        parts = adapter.layer_modules(model, layer)
        # a layer without heads has no Q/K/V (only an output projection with no inputs)
        attention = ("query", "key", "value", "attn_out") if plan.kept_heads[layer] else ()
        for slot_name in (*attention, "ffn_in", "ffn_out"):
            slot = getattr(parts, slot_name)
            linear = slot.get()
            if not isinstance(linear, nn.Linear) or 0 in linear.weight.shape:
                continue
            inputs = [torch.randn(size, linear.in_features, generator=generator) for size in sizes]
            choice = _decide(
                f"{layer}.{slot_name}",
                linear.weight,
                sizes,
                inputs,
                linear,
                lambda block, linear=linear: SparseLinear(linear, block=block),
                decide,
            )
            choices.append(choice)
            if choice.sparse:
                slot.set(SparseLinear(linear, dense_above=choice.dense_above, block=choice.block))
    return choices


def _decide(
    name: str,
    weight: torch.Tensor,
    sizes: list[int],
    inputs: list[torch.Tensor],
    dense: nn.Module,
    build: Any,
    rule: tuple[float, int, bool],
) -> LinearChoice:
    """Time ``dense`` and the sparse kernels of ``weight`` (``build(block)``: CSR for None,
    BSR where `weight_block_size` finds blocks) on ``inputs`` (one per size) and choose.
    ``rule``: (min_sparsity, rounds, always)."""
    min_sparsity, rounds, always = rule
    sparsity = float((weight == 0).float().mean()) if weight.numel() else 0.0
    if sparsity < min_sparsity or weight.numel() == 0:
        return LinearChoice(name, sparsity, tuple(sizes), (), None, False)
    dense_ms = [time_linear(dense, x, rounds) * 1e3 for x in inputs]
    kernels = [None] + [b for b in [weight_block_size(weight)] if b is not None]
    timed = {}
    for block in kernels:
        try:
            module = build(block)
            timed[block] = [time_linear(module, x, rounds) * 1e3 for x in inputs]
        except RuntimeError:
            # BSR products on the CPU need MKL (Linux x86 builds); CSR has a fallback
            if block is None:
                raise
    # one sparse kernel per linear: the one closest to (or furthest ahead of) dense overall
    block = min(timed, key=lambda b: sum(s / d for s, d in zip(timed[b], dense_ms, strict=True)))
    up_to = _sparse_up_to(sizes, dense_ms, timed[block], always)
    return LinearChoice(
        name,
        sparsity,
        tuple(sizes),
        tuple(dense_ms),
        tuple(timed[block if up_to is not None else None]),  # a dense linear: CSR's timing
        up_to is not None,
        up_to if up_to not in (None, float("inf")) else None,
        block if up_to is not None else None,  # a linear left dense runs no kernel
        tuple(timed[None]) if block is not None and up_to is not None else None,
    )


def _sparse_up_to(
    sizes: list[int], dense_ms: list[float], sparse_ms: list[float], always: bool
) -> float | None:
    """The largest input (tokens) to run sparse, from timings at each of ``sizes``: all of
    them (``inf``) where sparse won at every size (or ``always``); a threshold halfway
    (geometrically) to the first size where dense won, where sparse won only the smaller ones;
    None (dense) where it lost at the smallest."""
    wins = [s < d for s, d in zip(sparse_ms, dense_ms, strict=True)]
    if always or all(wins):
        return float("inf")
    if not wins[0]:
        return None
    first_loss = wins.index(False)
    return int((sizes[first_loss - 1] * sizes[first_loss]) ** 0.5)


def is_converted(model: nn.Module) -> bool:
    """Whether `to_sparse_inference` has converted ``model`` (it is then inference-only)."""
    return any(isinstance(m, SparseLinear | FeatureMajorEncoder) for m in model.modules())


def _feature_major(
    model: nn.Module,
    sizes: list[int],
    min_sparsity: float,
    rounds: int,
    always: bool,
    generator: torch.Generator,
) -> list[LinearChoice]:
    """Swap in the feature-major encoder, each projection sparse or dense as timed in that
    layout (same rule as the token-major path)."""
    choices = []

    def choose(name: str, weight: torch.Tensor, bias: torch.Tensor | None) -> FeatureMajorLinear:
        dense = FeatureMajorLinear(weight, bias, None)
        if 0 in weight.shape:
            return dense
        inputs = [torch.randn(weight.shape[1], size, generator=generator) for size in sizes]
        choice = _decide(
            name,
            weight,
            sizes,
            inputs,
            dense,
            lambda block: FeatureMajorLinear(weight, bias, float("inf"), block),
            (min_sparsity, rounds, always),
        )
        choices.append(choice)
        if not choice.sparse:
            return dense
        up_to = float("inf") if choice.dense_above is None else choice.dense_above
        return FeatureMajorLinear(weight, bias, up_to, choice.block)

    encoder = build_feature_major(model, choose)
    if encoder is not None:
        model.base_model.encoder = encoder
    return choices


def break_even_sparsity(
    in_features: int,
    out_features: int,
    tokens: int,
    grid: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98),
    rounds: int = 5,
    feature_major: bool = True,
    block: int | None = None,
) -> float | None:
    """The lowest sparsity of ``grid`` at which a random ``in x out`` sparse product beats the
    dense linear on ``tokens`` rows on this machine (None: never). The dense one runs
    token-major (``nn.Linear``); the sparse one as the sparse path runs it for the model:
    feature-major (BERT-style encoders) or a token-major `SparseLinear` (other families); CSR
    with random zeros, or with ``block`` BSR with random zero ``block`` x ``block`` blocks."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, in_features, generator=generator)
    x_sparse = x.T.contiguous() if feature_major else x
    size = block or 1
    if out_features % size or in_features % size:
        raise ConfigError(f"block {block} does not divide a {out_features}x{in_features} weight")
    for sparsity in grid:
        linear = nn.Linear(in_features, out_features)
        with torch.no_grad():
            keep = torch.rand(out_features // size, in_features // size, generator=generator)
            keep = (keep >= sparsity).repeat_interleave(size, 0).repeat_interleave(size, 1)
            linear.weight.mul_(keep)
        sparse = (
            FeatureMajorLinear(linear.weight, linear.bias, float("inf"), block)
            if feature_major
            else SparseLinear(linear, block=block)
        )
        if time_linear(sparse, x_sparse, rounds) < time_linear(linear, x, rounds):
            return sparsity
    return None

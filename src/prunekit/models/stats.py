"""Size and cost accounting: parameters and encoder multiply-accumulates, now and when dense.

Beside the sizes of the (physically pruned) weights, the ``*_nonzero`` counts say what remains
once the zeros left by unstructured masks are skipped, which is what a sparse backend pays for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import current_plan
from prunekit.plan import PruningPlan

__all__ = [
    "ModelStats",
    "model_stats",
    "encoder_macs",
    "nonzero_encoder_macs",
    "count_parameters",
    "count_nonzero_parameters",
]


@dataclass(frozen=True)
class ModelStats:
    architecture: str
    layers: int
    heads_per_layer: list[int]
    heads_total: int
    heads_original: int
    ffn_per_layer: list[int]
    parameters: int
    parameters_original: int
    encoder_macs: int
    encoder_macs_original: int
    seq_len: int
    parameters_nonzero: int
    encoder_macs_nonzero: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_parameters(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def count_nonzero_parameters(model: nn.Module) -> int:
    """Nonzero entries of the unique parameters (tied weights counted once).

    Exact zeros anywhere count as absent, not only masked ones: zero-initialised biases too.
    """
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += int(torch.count_nonzero(param.detach()))
    return total


def encoder_macs(plan: PruningPlan, hidden_size: int, head_size: int, seq_len: int = 128) -> int:
    """Multiply-accumulates of the encoder layers for one sequence of ``seq_len`` tokens.

    Per layer with k heads and f FFN neurons: Q/K/V/O projections ``4*n*d*k*dh``, attention
    scores and context ``2*n^2*k*dh``, FFN ``2*n*d*f``. Embeddings, layer norms, softmax and
    the task head are left out: they do not change with pruning and are small.
    """
    n, d = seq_len, hidden_size
    total = 0
    for layer in range(plan.num_layers):
        width = len(plan.kept_heads[layer]) * head_size
        total += 4 * n * d * width + 2 * n * n * width + 2 * n * d * len(plan.ffn_kept(layer))
    return total


def nonzero_encoder_macs(model: nn.Module, seq_len: int = 128) -> int:
    """`encoder_macs` of ``model`` with each of the six linears costing only its nonzero weights.

    Per layer: ``n * nnz(Q, K, V, O, W_in, W_out)`` plus the unchanged scores and context
    ``2*n^2*k*dh`` (they multiply activations, which masks do not make sparse).
    """
    adapter = get_adapter(model)
    plan = current_plan(model)
    head_size = adapter.head_size(model.config)
    total = 0
    for layer in range(plan.num_layers):
        kept_heads = len(plan.kept_heads[layer])
        parts = adapter.layer_modules(model, layer)
        slots = [parts.attn_out, parts.ffn_in, parts.ffn_out]
        if kept_heads:  # a layer without heads has no Q/K/V modules left
            slots += [parts.query, parts.key, parts.value]
        nonzero = sum(int(torch.count_nonzero(s.get().weight.detach())) for s in slots)
        total += seq_len * nonzero + 2 * seq_len * seq_len * kept_heads * head_size
    return total


def model_stats(model: nn.Module, seq_len: int = 128) -> ModelStats:
    """Heads, FFN widths, parameters and encoder MACs of ``model`` and of its dense original.

    ``parameters_nonzero`` and ``encoder_macs_nonzero`` count only nonzero weights (see
    `count_nonzero_parameters`, `nonzero_encoder_macs`); the other fields count dense sizes.
    """
    config = model.config
    adapter = get_adapter(config)
    plan = current_plan(model)
    dense = PruningPlan.dense(plan.num_layers, plan.num_heads, plan.intermediate_size)
    d, dh = adapter.hidden_size(config), adapter.head_size(config)

    # What one removed unit owned: a head its Q/K/V rows and biases plus its W_O columns;
    # an FFN neuron its W_in row and bias plus its W_out column.
    per_head = 3 * (d * dh + dh) + dh * d
    per_neuron = 2 * d + 1
    removed_heads = dense.heads_kept - plan.heads_kept
    removed_neurons = sum(dense.ffn_per_layer) - sum(plan.ffn_per_layer)
    parameters = count_parameters(model)
    return ModelStats(
        architecture=type(model).__name__,
        layers=plan.num_layers,
        heads_per_layer=plan.heads_per_layer,
        heads_total=plan.heads_kept,
        heads_original=plan.heads_total,
        ffn_per_layer=plan.ffn_per_layer,
        parameters=parameters,
        parameters_original=parameters + removed_heads * per_head + removed_neurons * per_neuron,
        encoder_macs=encoder_macs(plan, d, dh, seq_len),
        encoder_macs_original=encoder_macs(dense, d, dh, seq_len),
        seq_len=seq_len,
        parameters_nonzero=count_nonzero_parameters(model),
        encoder_macs_nonzero=nonzero_encoder_macs(model, seq_len),
    )

"""Random head pruning: the floor every method must beat.

Global mode keeps ``target.keep`` heads drawn uniformly from those the model still has;
``per_layer`` keeps the same number in every layer. Seeded: the same seed gives the same plan.
"""

from __future__ import annotations

import torch

from prunekit.methods.registry import (
    MethodConfig,
    MethodResult,
    PruneRequest,
    register_method,
    select_top_heads,
)

__all__ = ["Config", "prune_random"]


class Config(MethodConfig):
    """Random takes no settings: ``--seed`` is its only input."""


@register_method(
    "random",
    config=Config,
    summary="uniformly random heads (global or --per-layer): the floor to beat",
    needs_data=(),
)
def prune_random(request: PruneRequest, config: Config) -> MethodResult:
    plan = request.plan
    generator = torch.Generator().manual_seed(request.seed)
    # Random scores + the shared selector = uniform sampling that honours every target mode.
    scores = torch.rand(plan.num_layers, plan.num_heads, generator=generator)
    result = select_top_heads(scores, plan, request.target)
    return MethodResult(result.model_copy(update={"meta": {"seed": request.seed}}))

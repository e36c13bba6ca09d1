"""Random head pruning: the floor every method must beat.

Global mode keeps ``target.keep`` heads drawn uniformly from those the model still has;
``per_layer`` keeps the same number in every layer. Seeded: the same seed gives the same plan.
"""

from __future__ import annotations

import torch

from prunekit.errors import ConfigError
from prunekit.methods.registry import PruneRequest, register_method, select_top_heads
from prunekit.plan import PruningPlan

__all__ = ["prune_random"]


@register_method("random")
def prune_random(request: PruneRequest) -> PruningPlan:
    if request.options:
        raise ConfigError(f"random takes no options, got {', '.join(sorted(request.options))}")
    plan = request.plan
    generator = torch.Generator().manual_seed(request.seed)
    # Random scores + the shared selector = uniform sampling that honours every target mode.
    scores = torch.rand(plan.num_layers, plan.num_heads, generator=generator)
    result = select_top_heads(scores, plan, request.target)
    return result.model_copy(update={"method": "random", "meta": {"seed": request.seed}})

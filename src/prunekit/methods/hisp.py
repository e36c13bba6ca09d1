"""HISP: head importance score pruning (Michel, Levy, Neubig, NeurIPS 2019).

Scores every head by the expected absolute gradient of the task loss through its gate
(`prunekit.scoring.head_importance`, Michel's per-token estimator) on the validation split carved
from train, normalises per layer (L2), and keeps the highest-scoring heads. ``iterative``
(the paper's "exact pruning") re-scores after every 10 % of the original heads, with the heads
pruned so far gated to zero. Options (``PruneRequest.options``): ``iterative`` (bool),
``normalize_layers`` (bool, default True), ``step_fraction`` (float, default 0.1).
"""

from __future__ import annotations

import torch

from prunekit.errors import ConfigError
from prunekit.methods.registry import (
    HeadTarget,
    PruneRequest,
    register_method,
    select_top_heads,
)
from prunekit.plan import PruningPlan
from prunekit.scoring import head_importance, normalize_per_layer

__all__ = ["prune_hisp"]


def _scores(request: PruneRequest, plan: PruningPlan, normalize: bool) -> torch.Tensor:
    gates = torch.zeros(plan.num_layers, plan.num_heads)
    for layer, kept in enumerate(plan.kept_heads):
        gates[layer, list(kept)] = 1.0
    scores = head_importance(request.model, request.batches(), gates=gates)
    return normalize_per_layer(scores) if normalize else scores


@register_method("hisp")
def prune_hisp(request: PruneRequest) -> PruningPlan:
    if request.batches is None:
        raise ConfigError("hisp needs labelled validation batches to score heads")
    options = dict(request.options)
    iterative = bool(options.pop("iterative", False))
    normalize = bool(options.pop("normalize_layers", True))
    step = float(options.pop("step_fraction", 0.1))
    if options:
        raise ConfigError(f"unknown hisp options: {', '.join(sorted(options))}")

    plan, target = request.plan, request.target
    if not iterative:
        scores = _scores(request, plan, normalize)
        chosen = select_top_heads(scores, plan, target)
    else:
        # Per-layer mode steps every layer down together so no layer undershoots its quota.
        unit = plan.num_layers if target.per_layer else 1
        per_step = unit * max(1, round(step * plan.heads_total / unit))
        chosen = plan
        while chosen.heads_kept > target.keep:
            keep = max(target.keep, chosen.heads_kept - per_step)
            scores = _scores(request, chosen, normalize)
            interim = HeadTarget(keep, target.per_layer, target.min_per_layer)
            chosen = select_top_heads(scores, chosen, interim)
    meta = {"iterative": iterative, "normalize_layers": normalize}
    return chosen.model_copy(update={"method": "hisp", "meta": meta})

"""HISP: head importance score pruning (Michel, Levy, Neubig, NeurIPS 2019).

Scores every head by the expected absolute gradient of the task loss through its gate
(`prunekit.scoring.head_importance`, Michel's per-token estimator) on the validation split carved
from train, normalises per layer (L2), and keeps the highest-scoring heads. ``iterative``
(the paper's "exact pruning") re-scores after every ``step_fraction`` of the original heads,
with the heads pruned so far gated to zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from prunekit.device import module_device
from prunekit.errors import ConfigError
from prunekit.methods.registry import (
    HeadTarget,
    MethodConfig,
    MethodResult,
    PruneRequest,
    register_method,
    select_top_heads,
)
from prunekit.methods.targets import check_per_layer_quota, select_per_layer
from prunekit.models.gates import plan_gates
from prunekit.plan import PruningPlan
from prunekit.scoring import head_importance, normalize_per_layer

__all__ = ["Config", "head_order", "prune_hisp"]


class Config(MethodConfig):
    read_only_with: ClassVar[dict[str, str]] = {"step_fraction": "iterative"}

    iterative: bool = Field(False, description="re-score after every step_fraction of heads")
    normalize_layers: bool = Field(True, description="L2-normalise scores per layer")
    step_fraction: float = Field(0.1, gt=0, le=1, description="iterative step, share of heads")


def _plan_scores(
    model: nn.Module, batches: Iterable[dict], plan: PruningPlan, normalize: bool = True
) -> torch.Tensor:
    scores = head_importance(model, batches, gates=plan_gates(plan, module_device(model)))
    return normalize_per_layer(scores) if normalize else scores


def head_order(
    model: nn.Module, batches: Iterable[dict], plan: PruningPlan
) -> list[tuple[int, int]]:
    """The plan's kept heads by layer-normalised importance, least important first (ties by
    index): the order in which HISP removes them (A* starts from it)."""
    scores = _plan_scores(model, batches, plan)
    heads = [(layer, h) for layer, kept in enumerate(plan.kept_heads) for h in kept]
    return sorted(heads, key=lambda h: (float(scores[h]), h))


@register_method(
    "hisp",
    config=Config,
    summary="Michel et al. 2019: gradient head importance, layer-normalised, lowest pruned",
)
def prune_hisp(request: PruneRequest, config: Config) -> MethodResult:
    if request.batches is None:
        raise ConfigError("hisp needs labelled validation batches to score heads")
    plan, target = request.plan, request.target
    if not config.iterative:
        chosen = select_top_heads(
            _plan_scores(request.model, request.batches(), plan, config.normalize_layers),
            plan,
            target,
        )
    elif target.per_layer:
        # Every layer steps down by its share of the step, none below the quota: on a model
        # pruned unevenly before, layers reach it at different steps.
        per = target.keep // plan.num_layers
        check_per_layer_quota(plan, per)
        step = max(1, round(config.step_fraction * plan.num_heads))
        chosen = plan
        while any(len(kept) > per for kept in chosen.kept_heads):
            scores = _plan_scores(request.model, request.batches(), chosen, config.normalize_layers)
            counts = [max(per, len(kept) - step) for kept in chosen.kept_heads]
            chosen = select_per_layer(scores, chosen, counts)
    else:
        per_step = max(1, round(config.step_fraction * plan.heads_total))
        chosen = plan
        while chosen.heads_kept > target.keep:
            keep = max(target.keep, chosen.heads_kept - per_step)
            scores = _plan_scores(request.model, request.batches(), chosen, config.normalize_layers)
            chosen = select_top_heads(scores, chosen, HeadTarget(keep, False, target.min_per_layer))
    meta = {"iterative": config.iterative, "normalize_layers": config.normalize_layers}
    return MethodResult(chosen.model_copy(update={"meta": meta}))

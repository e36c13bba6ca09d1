"""Head targets: how many heads stay, the one selector every score-based method shares, and
the search budget mode uses over a grid of fractions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from prunekit.errors import ConfigError
from prunekit.models.gates import plan_gates
from prunekit.plan import PruningPlan

__all__ = [
    "HeadTarget",
    "check_per_layer_quota",
    "head_target",
    "largest_feasible",
    "select_per_layer",
    "select_top_heads",
]


@dataclass(frozen=True)
class HeadTarget:
    """How many heads stay. ``per_layer`` asks for the same count in every layer."""

    keep: int
    per_layer: bool = False
    min_per_layer: int = 0


def head_target(
    plan: PruningPlan,
    heads: float | None = None,
    keep_heads: int | None = None,
    per_layer: bool = False,
    min_per_layer: int = 0,
) -> HeadTarget:
    """Turn ``--heads`` (fraction of all original heads removed) or ``--keep-heads`` into a target.

    With ``per_layer``, ``--heads r`` removes ``floor(H * r)`` heads of every layer (methods.md
    §1: 0.3 of 12 heads is 3 per layer), not a rounded share of all heads.

    Raises:
        ConfigError: both or neither given, or a value out of range.
    """
    if (heads is None) == (keep_heads is None):
        raise ConfigError("give exactly one of --heads (fraction removed) or --keep-heads N")
    total = plan.heads_total
    if heads is not None:
        if not 0 <= heads < 1:
            raise ConfigError(f"--heads must be in [0, 1) (fraction of heads removed), got {heads}")
        if per_layer:  # SMP's rule: the floor(H * r) lowest heads of each layer go
            per = math.floor(heads * plan.num_heads + 1e-9)
            if heads > 0 and per == 0:
                raise ConfigError(
                    f"--heads {heads} --per-layer removes no head of a layer of "
                    f"{plan.num_heads}; ask for at least {1 / plan.num_heads:.4g}"
                )
            keep = plan.num_layers * (plan.num_heads - per)
        else:
            keep = total - round(heads * total)
    else:
        keep = int(keep_heads)  # type: ignore[arg-type]
    if not 1 <= keep <= plan.heads_kept:
        raise ConfigError(
            f"cannot keep {keep} heads: the model has {plan.heads_kept} of {total} heads left"
        )
    if per_layer and keep % plan.num_layers:
        raise ConfigError(
            f"--per-layer needs a head count divisible by {plan.num_layers} layers, got {keep}"
        )
    if min_per_layer * plan.num_layers > keep:
        raise ConfigError(
            f"--at-least-heads-per-layer {min_per_layer} x {plan.num_layers} layers exceeds "
            f"the {keep} heads to keep"
        )
    return HeadTarget(keep=keep, per_layer=per_layer, min_per_layer=min_per_layer)


def select_top_heads(scores: torch.Tensor, plan: PruningPlan, target: HeadTarget) -> PruningPlan:
    """Keep the highest-scoring heads (``scores [L, H]``, original indices) meeting ``target``.

    Only heads the model still has are eligible. Ties break towards lower (layer, head) indices
    so the result is deterministic. Shared by every score-based method.
    """
    num_layers, num_heads = scores.shape
    if target.per_layer:
        per = target.keep // num_layers
        check_per_layer_quota(plan, per)
        return select_per_layer(scores, plan, [per] * num_layers)
    scores = scores.detach().float().cpu()
    eligible = plan_gates(plan).bool()
    masked = torch.where(eligible, scores, torch.full_like(scores, -torch.inf))
    chosen: set[tuple[int, int]] = set()
    for layer in range(num_layers):  # the per-layer floor first
        order = _stable_desc(masked[layer])
        chosen |= {(layer, h) for h in order[: target.min_per_layer] if eligible[layer, h]}
    for index in _stable_desc(masked.flatten()):
        if len(chosen) >= target.keep:
            break
        layer, head = divmod(index, num_heads)
        if eligible[layer, head]:
            chosen.add((layer, head))
    kept = [sorted(h for (li, h) in chosen if li == layer) for layer in range(num_layers)]
    return plan.model_copy(update={"kept_heads": tuple(tuple(k) for k in kept)})


def check_per_layer_quota(plan: PruningPlan, per: int) -> None:
    """Refuse a per-layer target that a layer pruned before cannot keep."""
    for layer, kept in enumerate(plan.kept_heads):
        if len(kept) < per:
            raise ConfigError(
                f"layer {layer} has {len(kept)} heads left, fewer than the {per} that "
                "--per-layer keeps in every layer: keep fewer heads or drop --per-layer"
            )


def select_per_layer(scores: torch.Tensor, plan: PruningPlan, counts: Sequence[int]) -> PruningPlan:
    """Keep the ``counts[layer]`` highest-scoring heads the plan still has in each layer (all
    of them where it has fewer); ties towards lower indices."""
    masked = torch.where(plan_gates(plan).bool(), scores.detach().float().cpu(), -torch.inf)
    kept = [
        sorted(h for h in _stable_desc(masked[layer])[: counts[layer]] if h in heads)
        for layer, heads in enumerate(plan.kept_heads)
    ]
    return plan.model_copy(update={"kept_heads": tuple(tuple(k) for k in kept)})


def _stable_desc(values: torch.Tensor) -> list[int]:
    return torch.sort(values, descending=True, stable=True).indices.tolist()


def largest_feasible(
    grid: list[float],
    feasible: Callable[[float], bool],
    search: Literal["bisect", "descend"] = "bisect",
) -> float | None:
    """The largest value of the sorted ``grid`` with ``feasible(value)``; None when none is.

    ``bisect`` assumes feasibility is monotone (a value fails when a smaller one does) and may
    miss a feasible value above an infeasible one; ``descend`` tests from the top down and
    always finds the largest, at up to ``len(grid)`` calls."""
    if search == "descend":
        return next((value for value in reversed(grid) if feasible(value)), None)
    if search != "bisect":
        raise ValueError(f"search is 'bisect' or 'descend', not {search!r}")
    low, high, best = 0, len(grid) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if feasible(grid[middle]):
            best, low = grid[middle], middle + 1
        else:
            high = middle - 1
    return best

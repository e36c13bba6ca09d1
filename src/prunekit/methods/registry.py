"""Method registry: every pruning method is one module with one registered entry function.

All methods share one signature, ``fn(request: PruneRequest) -> PruningPlan``, so the CLI,
`compare` and the tests treat them alike. Registering a name twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from prunekit.data import TaskSpec
from prunekit.errors import ConfigError
from prunekit.plan import PruningPlan

__all__ = [
    "HeadTarget",
    "PruneRequest",
    "PruneMethod",
    "register_method",
    "get_method",
    "list_methods",
    "head_target",
    "select_top_heads",
]


@dataclass(frozen=True)
class HeadTarget:
    """How many heads stay. ``per_layer`` asks for the same count in every layer."""

    keep: int
    per_layer: bool = False
    min_per_layer: int = 0


@dataclass
class PruneRequest:
    """Everything a method may use to decide. Methods must not touch ``dev`` data.

    Attributes:
        model: the (fine-tuned) model to prune; methods do not modify it.
        plan: what the model keeps now (methods choose among these heads).
        target: the head budget.
        seed: the only source of randomness.
        batches: callable returning an iterable of validation-split batches (labels included),
            or None for data-free methods.
        train_batches: callable returning shuffled train-split batches, for methods that train
            (L0 gates); each call starts a new pass.
        full_batches: the whole validation split when ``batches`` is a subsample of it (for
            methods that re-verify a decision), else None.
        task: the task being pruned for (its primary metric), when known.
        options: method-specific settings from the CLI/config.
        on_progress: optional callback for long-running methods (e.g. ``{"step", "loss"}``).
    """

    model: nn.Module
    plan: PruningPlan
    target: HeadTarget
    seed: int = 0
    batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    train_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    full_batches: Callable[[], Iterable[dict[str, torch.Tensor]]] | None = None
    task: TaskSpec | None = None
    options: dict[str, Any] = field(default_factory=dict)
    on_progress: Callable[[dict[str, float]], None] | None = None


PruneMethod = Callable[[PruneRequest], PruningPlan]
_METHODS: dict[str, PruneMethod] = {}


def register_method(name: str) -> Callable[[PruneMethod], PruneMethod]:
    def add(fn: PruneMethod) -> PruneMethod:
        if name in _METHODS:
            raise ValueError(f"pruning method {name!r} is already registered")
        _METHODS[name] = fn
        return fn

    return add


def _import_methods() -> None:
    from prunekit.methods import astar, hisp, l0, random  # noqa: F401


def list_methods() -> list[str]:
    _import_methods()
    return sorted(_METHODS)


def get_method(name: str) -> PruneMethod:
    _import_methods()
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(_METHODS))}")
    return _METHODS[name]


def head_target(
    plan: PruningPlan,
    heads: float | None = None,
    keep_heads: int | None = None,
    per_layer: bool = False,
    min_per_layer: int = 0,
) -> HeadTarget:
    """Turn ``--heads`` (fraction of all original heads removed) or ``--keep-heads`` into a target.

    Raises:
        ConfigError: both or neither given, or a value out of range.
    """
    if (heads is None) == (keep_heads is None):
        raise ConfigError("give exactly one of --heads (fraction removed) or --keep-heads N")
    total = plan.heads_total
    if heads is not None:
        if not 0 <= heads < 1:
            raise ConfigError(f"--heads must be in [0, 1) (fraction of heads removed), got {heads}")
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
    eligible = torch.zeros_like(scores, dtype=torch.bool)
    for layer, kept in enumerate(plan.kept_heads):
        eligible[layer, list(kept)] = True
    masked = torch.where(eligible, scores.float(), torch.full_like(scores.float(), -torch.inf))
    num_layers, num_heads = scores.shape
    chosen: set[tuple[int, int]] = set()
    if target.per_layer:
        per = target.keep // num_layers
        for layer in range(num_layers):
            order = _stable_desc(masked[layer])
            if int(eligible[layer].sum()) < per:
                raise ConfigError(f"layer {layer} has fewer than {per} heads left")
            chosen |= {(layer, h) for h in order[:per]}
    else:
        for layer in range(num_layers):  # the per-layer floor first
            order = _stable_desc(masked[layer])
            chosen |= {(layer, h) for h in order[: target.min_per_layer] if eligible[layer, h]}
        flat = _stable_desc(masked.flatten())
        for index in flat:
            if len(chosen) >= target.keep:
                break
            layer, head = divmod(index, num_heads)
            if eligible[layer, head]:
                chosen.add((layer, head))
    kept = [sorted(h for (li, h) in chosen if li == layer) for layer in range(num_layers)]
    return plan.model_copy(update={"kept_heads": tuple(tuple(k) for k in kept)})


def _stable_desc(values: torch.Tensor) -> list[int]:
    return torch.sort(values, descending=True, stable=True).indices.tolist()

"""What a training-time method plugs into the one loop (`prunekit.train.finetune`) instead of
writing its own: a step-aware loss, extra parameter groups, after-step hooks and state that is
checkpointed with the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

__all__ = [
    "GeneratorState",
    "LossFn",
    "LossOutput",
    "ParamGroup",
    "Stateful",
    "StepCallback",
    "TrainExtras",
    "param_groups",
]

LossOutput = torch.Tensor | dict[str, torch.Tensor]
LossFn = Callable[[nn.Module, dict[str, torch.Tensor], int], LossOutput]
# (step, total_steps, values): values holds "loss" (the sum), each named part and any status.
StepCallback = Callable[[int, int, dict[str, float]], None]


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass
class ParamGroup:
    """Parameters outside the model's weights, with their own optimiser settings.

    ``ascent`` trains them to *maximise* the loss (Lagrange multipliers): their gradient is
    negated before the step. ``scheduled`` makes them follow the weights' warm-up/decay.
    """

    params: Sequence[torch.Tensor]
    lr: float
    weight_decay: float = 0.0
    ascent: bool = False
    scheduled: bool = False

    def __post_init__(self) -> None:
        self.params = list(self.params)  # a generator (module.parameters()) would run dry


@dataclass
class TrainExtras:
    """What a training-time method plugs into `finetune` (see the module docstring)."""

    param_groups: Sequence[ParamGroup] = ()
    after_step: Sequence[Callable[[int], None]] = ()
    state: Mapping[str, Stateful] = field(default_factory=dict)
    status: Callable[[], dict[str, float]] | None = None


class GeneratorState:
    """A `torch.Generator` as checkpointable state, so resumed sampling continues exactly."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])


def param_groups(
    model: nn.Module, weight_decay: float, extra: Iterable[ParamGroup]
) -> tuple[list[dict[str, Any]], list[bool]]:
    """Optimizer groups (model weights first) and whether each follows the weights' schedule."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # Biases and LayerNorm weights are not decayed (BERT recipe).
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    schedules = [True, True]
    for group in extra:
        groups.append(
            {"params": list(group.params), "lr": group.lr, "weight_decay": group.weight_decay}
        )
        schedules.append(group.scheduled)
    kept = [i for i, g in enumerate(groups) if g["params"]]  # frozen weights leave groups empty
    if not kept:
        raise ValueError("nothing to train: no parameter requires grad")
    return [groups[i] for i in kept], [schedules[i] for i in kept]

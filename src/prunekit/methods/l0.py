"""L0 head gates (Voita, Talbot, Moiseev, Sennrich, Titov, ACL 2019).

Each head gets a Hard Concrete gate with parameter log alpha, sampled during training
(``u ~ U(0,1)``, ``s = sigmoid((log u - log(1-u) + log alpha) / beta)``, stretched to
(gamma, zeta) = (-0.1, 1.1) and clipped to [0, 1]) and applied through `HeadGates`. The gates
are trained with the task loss on the fine-tuned model, through the package's one training loop
(`prunekit.train.finetune`): checkpoints, ``--resume`` and the loss curve come with it.
Reference: lena-voita/the-story-of-heads, ``lib/layers/concrete_gate.py``.

Deviations (OUR CHOICE, methods.md §5.3):
- log alpha starts at 3 (gates open) and beta = 2/3 (Louizos et al.; Voita's code uses 0.33).
- Instead of sweeping the L0 weight lambda, an exact head budget t is reached with a Lagrangian
  ``lambda1 (E - t) + lambda2 (E - t)^2`` on the expected number of open heads
  ``E = sum sigmoid(log alpha - beta log(-gamma/zeta))`` (normalised by the head count), with the
  multipliers trained by gradient ascent, as in CoFi; then the top-t heads by log alpha are kept.
- Only the gates train by default (``train_weights=False``): the model is already fine-tuned and
  recovery is a separate, equal-budget step for every method. With ``train_weights=True`` a copy
  of the model trains too (constant learning rate ``weight_lr``) and is returned as the result;
  its steps are then capped at the request's ``train_budget_steps`` (compare's recovery budget).
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar

import torch
from pydantic import Field

from prunekit.device import module_device
from prunekit.methods.registry import (
    MethodResult,
    PruneRequest,
    TrainingMethodConfig,
    register_method,
    select_top_heads,
)
from prunekit.models.gates import HeadGates, plan_gates
from prunekit.train import GeneratorState, ParamGroup, TrainConfig, TrainExtras
from prunekit.train.schedules import linear_ramp

__all__ = ["Config", "prune_l0", "HardConcrete"]

GAMMA, ZETA = -0.1, 1.1


class Config(TrainingMethodConfig):
    read_only_with: ClassVar[dict[str, str]] = {"weight_lr": "train_weights"}

    steps: int = Field(150, ge=1, description="gate-training steps")
    batch_size: int = Field(32, ge=1, description="train sequences per step")
    gate_lr: float = Field(0.05, gt=0, description="Adam learning rate of log alpha")
    lagrangian_lr: float = Field(0.05, gt=0, description="learning rate of the multipliers")
    beta: float = Field(2 / 3, gt=0, description="Hard Concrete temperature")
    init_log_alpha: float = Field(3.0, description="initial log alpha (gates open)")
    train_weights: bool = Field(False, description="also train the model's weights")
    weight_lr: float = Field(2e-5, gt=0, description="weights' learning rate (train_weights)")
    warmup_fraction: float = Field(
        0.3, gt=0, le=1, description="share of steps over which the budget ramps down"
    )
    checkpoint_every: int = Field(25, ge=1, description="steps between resumable checkpoints")


class HardConcrete(torch.nn.Module):
    """Hard Concrete gates ``[L, H]``; heads the model no longer has stay closed."""

    def __init__(self, available: torch.Tensor, beta: float, init_log_alpha: float) -> None:
        super().__init__()
        self.register_buffer("available", available.float())
        self.log_alpha = torch.nn.Parameter(torch.full(available.shape, init_log_alpha))
        self.beta = beta

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(self.log_alpha.shape, generator=generator)
        u = u.to(self.log_alpha.device).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((u.log() - (-u).log1p() + self.log_alpha) / self.beta)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0) * self.available

    def expected_open(self) -> torch.Tensor:
        """``sum P(gate != 0)`` over available heads."""
        shift = self.beta * math.log(-GAMMA / ZETA)
        return (torch.sigmoid(self.log_alpha - shift) * self.available).sum()


class _Multipliers(torch.nn.Module):
    """The Lagrange multipliers (lambda1, lambda2), a module so they checkpoint with the run."""

    def __init__(self) -> None:
        super().__init__()
        self.values = torch.nn.Parameter(torch.zeros(2))


@register_method(
    "l0",
    config=Config,
    summary="Voita et al. 2019: Hard Concrete head gates trained to an exact budget (Lagrangian)",
    trains_weights=True,
    needs_data=("train",),
)
def prune_l0(request: PruneRequest, config: Config) -> MethodResult:
    plan, target = request.plan, request.target
    model = copy.deepcopy(request.model) if config.train_weights else request.model
    device = module_device(model)
    available = plan_gates(plan, device)
    total = float(available.sum())
    gates = HardConcrete(available, config.beta, config.init_log_alpha).to(device)
    multipliers = _Multipliers().to(device)
    generator = torch.Generator().manual_seed(request.seed)
    steps = config.steps
    if config.train_weights and request.train_budget_steps is not None:
        # Training weights counts against the recovery budget every other method gets.
        steps = min(steps, request.train_budget_steps)
    warmup = max(1, int(config.warmup_fraction * steps))

    def budget(step: int) -> float:
        return linear_ramp(step, total, float(target.keep), warmup)

    def loss_fn(model, batch, step: int) -> dict[str, torch.Tensor]:
        head_gates.set(gates.sample(generator))
        gap = (gates.expected_open() - budget(step + 1)) / total
        lambdas = multipliers.values
        return {"task": model(**batch).loss, "lagrangian": lambdas[0] * gap + lambdas[1] * gap**2}

    extras = TrainExtras(
        param_groups=[
            ParamGroup(gates.parameters(), lr=config.gate_lr),
            ParamGroup(multipliers.parameters(), lr=config.lagrangian_lr, ascent=True),
        ],
        state={"gates": gates, "multipliers": multipliers, "sampler": GeneratorState(generator)},
        status=lambda: {"expected_open_heads": float(gates.expected_open().detach())},
    )
    train = TrainConfig(
        learning_rate=config.weight_lr,
        max_steps=steps,
        batch_size=config.batch_size,
        warmup_ratio=0.0,
        lr_schedule="constant",
        checkpoint_every=config.checkpoint_every,
        seed=request.seed,
        device=str(device),
        **config.loop_options(),
    )
    weights = list(model.parameters())
    flags = [p.requires_grad for p in weights]
    if not config.train_weights:
        for p in weights:
            p.requires_grad_(False)

    try:
        with HeadGates(model, gates.sample(generator)) as head_gates:
            trained = request.train(
                model, train, loss_fn, extras, report=lambda step: {"budget": budget(step)}
            )
    finally:
        for p, flag in zip(weights, flags, strict=True):
            p.requires_grad_(flag)

    chosen = select_top_heads(gates.log_alpha.detach(), plan, target)
    meta = {
        "expected_open_heads": float(gates.expected_open().detach()),
        "steps": steps,
        "train_weights": config.train_weights,
    }
    record = {"loss_curve": trained.log, "train_steps": trained.steps, "seconds": trained.seconds}
    return MethodResult(
        chosen.model_copy(update={"meta": meta}),
        model=model if config.train_weights else None,
        record=record,
    )

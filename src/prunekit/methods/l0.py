"""L0 head gates (Voita, Talbot, Moiseev, Sennrich, Titov, ACL 2019).

Each head gets a Hard Concrete gate with parameter log alpha, sampled during training
(``u ~ U(0,1)``, ``s = sigmoid((log u - log(1-u) + log alpha) / beta)``, stretched to
(gamma, zeta) = (-0.1, 1.1) and clipped to [0, 1]) and applied through `HeadGates`. The gates
are trained with the task loss on the fine-tuned model. Reference: lena-voita/the-story-of-heads,
``lib/layers/concrete_gate.py``.

Deviations (OUR CHOICE, methods.md §5.3):
- log alpha starts at 3 (gates open) and beta = 2/3 (Louizos et al.; Voita's code uses 0.33).
- Instead of sweeping the L0 weight lambda, an exact head budget t is reached with a Lagrangian
  ``lambda1 (E - t) + lambda2 (E - t)^2`` on the expected number of open heads
  ``E = sum sigmoid(log alpha - beta log(-gamma/zeta))`` (normalised by the head count), with the
  multipliers trained by gradient ascent, as in CoFi; then the top-t heads by log alpha are kept.
- Only the gates train by default (``train_weights=False``): the model is already fine-tuned and
  recovery is a separate, equal-budget step for every method.

Options: ``steps`` (default 150), ``batch_size`` is the train loader's, ``gate_lr`` (0.05),
``lagrangian_lr`` (0.05), ``beta`` (2/3), ``init_log_alpha`` (3.0), ``train_weights`` (False),
``weight_lr`` (2e-5), ``warmup_fraction`` (0.3: the budget ramps linearly from all heads to t).
"""

from __future__ import annotations

import itertools
import math

import torch

from prunekit.errors import ConfigError
from prunekit.methods.registry import PruneRequest, register_method, select_top_heads
from prunekit.models.gates import HeadGates
from prunekit.plan import PruningPlan

__all__ = ["prune_l0", "HardConcrete"]

GAMMA, ZETA = -0.1, 1.1
DEFAULTS = {
    "steps": 150,
    "gate_lr": 0.05,
    "lagrangian_lr": 0.05,
    "beta": 2 / 3,
    "init_log_alpha": 3.0,
    "train_weights": False,
    "weight_lr": 2e-5,
    "warmup_fraction": 0.3,
}


class HardConcrete(torch.nn.Module):
    """Hard Concrete gates ``[L, H]``; heads the model no longer has stay closed."""

    def __init__(self, available: torch.Tensor, beta: float, init_log_alpha: float) -> None:
        super().__init__()
        self.register_buffer("available", available.float())
        self.log_alpha = torch.nn.Parameter(torch.full(available.shape, init_log_alpha))
        self.beta = beta

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand(self.log_alpha.shape, generator=generator).clamp(1e-6, 1 - 1e-6)
        s = torch.sigmoid((u.log() - (-u).log1p() + self.log_alpha) / self.beta)
        return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0) * self.available

    def expected_open(self) -> torch.Tensor:
        """``sum P(gate != 0)`` over available heads."""
        shift = self.beta * math.log(-GAMMA / ZETA)
        return (torch.sigmoid(self.log_alpha - shift) * self.available).sum()


@register_method("l0")
def prune_l0(request: PruneRequest) -> PruningPlan:
    if request.train_batches is None:
        raise ConfigError("l0 trains its gates and needs train batches")
    unknown = set(request.options) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown l0 options: {', '.join(sorted(unknown))}")
    cfg = {**DEFAULTS, **request.options}
    plan, target, model = request.plan, request.target, request.model
    available = torch.zeros(plan.num_layers, plan.num_heads)
    for layer, kept in enumerate(plan.kept_heads):
        available[layer, list(kept)] = 1.0
    total = float(available.sum())

    torch.manual_seed(request.seed)
    generator = torch.Generator().manual_seed(request.seed)
    gates = HardConcrete(available, cfg["beta"], cfg["init_log_alpha"])
    lambdas = torch.zeros(2, requires_grad=True)
    optimizers = [
        torch.optim.Adam(gates.parameters(), lr=cfg["gate_lr"]),
        # maximise over the multipliers: ascent via a negated learning rate is not allowed,
        # so their gradient is negated before the step
        torch.optim.Adam([lambdas], lr=cfg["lagrangian_lr"]),
    ]
    weights = [p for p in model.parameters() if p.requires_grad]
    original_flags = [p.requires_grad for p in weights]
    if cfg["train_weights"]:
        optimizers.append(torch.optim.AdamW(weights, lr=cfg["weight_lr"]))
    else:
        for p in weights:
            p.requires_grad_(False)

    steps = int(cfg["steps"])
    warmup = max(1, int(cfg["warmup_fraction"] * steps))
    batches = itertools.chain.from_iterable(request.train_batches() for _ in itertools.count())
    model.train()
    try:
        with HeadGates(model, gates.sample(generator)) as head_gates:
            for step, batch in zip(range(1, steps + 1), batches, strict=False):
                head_gates.set(gates.sample(generator))
                budget = total - (total - target.keep) * min(1.0, step / warmup)
                gap = (gates.expected_open() - budget) / total
                task_loss = model(**batch).loss
                loss = task_loss + lambdas[0] * gap + lambdas[1] * gap**2
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss.backward()
                lambdas.grad.neg_()
                for optimizer in optimizers:
                    optimizer.step()
                if request.on_progress is not None:
                    request.on_progress(
                        {
                            "step": step,
                            "steps": steps,
                            "loss": task_loss.item(),
                            "expected_open_heads": float(gates.expected_open().detach()),
                            "budget": budget,
                        }
                    )
    finally:
        model.eval()
        for p, flag in zip(weights, original_flags, strict=True):
            p.requires_grad_(flag)

    chosen = select_top_heads(gates.log_alpha.detach(), plan, target)
    meta = {
        "expected_open_heads": float(gates.expected_open().detach()),
        "steps": steps,
        "train_weights": bool(cfg["train_weights"]),
    }
    return chosen.model_copy(update={"method": "l0", "meta": meta})

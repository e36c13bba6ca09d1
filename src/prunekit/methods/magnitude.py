"""Gradual magnitude pruning of the fine-tuned model (Zhu & Gupta 2017), with optional KD.

Unstructured: the weights of the six linears of every layer (Q, K, V, attention output, both
FFN matrices) are masked per tensor (local top-k by |w|); biases, LayerNorms, embeddings and
the classifier are not pruned (as SparseBERT's code, methods.md §4(b), §5.4). A copy of the
model trains on the task through the shared loop while the sparsity follows the cubic schedule
to ``sparsity`` over ``events`` mask updates (`prunekit.train.schedules.cubic_sparsity_events`;
OUR CHOICE: a last update at the final step hits the target exactly; ``initial_warmup`` and
``final_warmup``, methods.md §5.4's t_i and t_f, default to 0 as in SparseBERT's code). The
masks are re-applied after every optimizer step (the loop's hook, on every process) and
checkpointed with the run, so a killed run resumes to the same masks. With ``distill`` the
loss is KD from the unpruned model (``alpha_kd``, ``temperature``) plus CE. The result is a
`PruningPlan` with masks (the heads all stay) and the trained weights.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from prunekit.device import module_device
from prunekit.errors import ConfigError
from prunekit.methods.registry import (
    MethodResult,
    PruneRequest,
    TrainingMethodConfig,
    register_method,
)
from prunekit.models.masks import dense_masks, masked_linears, top_fraction, zero_dropped
from prunekit.train import DistillConfig, LossFn, TrainConfig, TrainExtras
from prunekit.train.distill import make_distillation_loss, note_unused_temperature
from prunekit.train.schedules import cubic_sparsity_events, epoch_steps, sparsity_at

__all__ = [
    "Config",
    "GradualConfig",
    "prune_magnitude",
    "gradual_magnitude",
    "magnitude_masks",
    "planned_steps",
    "distillation",
    "refuse_lower_sparsity",
]


class GradualConfig(TrainingMethodConfig):
    """What every gradual (cubic-schedule) sparsifier shares."""

    sparsity: float = Field(0.95, gt=0, lt=1, description="share of the linears' weights at 0")
    events: int = Field(100, ge=1, description="mask updates over the run (cubic schedule)")
    initial_warmup: float = Field(
        0.0, ge=0, lt=1, description="share of the steps held dense before pruning starts"
    )
    final_warmup: float = Field(
        0.0, ge=0, lt=1, description="share of the steps that train at the final mask"
    )
    epochs: int = Field(3, ge=1, description="training epochs (without a step budget)")
    learning_rate: float = Field(3e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    lr_schedule: Literal["linear", "constant"] = Field("linear", description="weights' schedule")
    checkpoint_every: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _leaves_steps_to_prune(self) -> GradualConfig:
        if self.initial_warmup + self.final_warmup >= 1:
            raise ValueError("initial_warmup + final_warmup must stay below 1 (the whole run)")
        return self


class Config(GradualConfig):
    distill: bool = Field(False, description="KD from the unpruned model (needs the teacher)")
    alpha_kd: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(2.0, gt=0)
    read_only_with: ClassVar[dict[str, str]] = {"alpha_kd": "distill", "temperature": "distill"}

    def reads_teacher(self) -> bool:
        return self.distill


def planned_steps(request: PruneRequest, config: GradualConfig) -> int:
    """The request's step budget (compare's recovery budget), else ``epochs`` of train in
    this process's share of the batches."""
    if request.train_budget_steps is not None:
        return request.train_budget_steps
    return config.epochs * epoch_steps(len(request.train_set), config.batch_size)


def distillation(request: PruneRequest, config: Config, method: str) -> LossFn | None:
    """Logit KD from the request's teacher when ``config.distill``, else None (task loss)."""
    if not config.distill:
        return None
    distill = DistillConfig(temperature=config.temperature, alpha_kd=config.alpha_kd)
    regression = request.task is not None and request.task.is_regression
    note_unused_temperature(method, "temperature" in config.model_fields_set, request.task)
    return make_distillation_loss(request.teacher, distill, regression)


class _Masks(nn.Module):
    """The current boolean masks as buffers, so they are checkpointed with the run."""

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.names = sorted(weights)
        for i, name in enumerate(self.names):
            # a weight an earlier plan dropped (a stored 0) starts dropped and stays dropped
            self.register_buffer(f"mask_{i}", weights[name].detach() != 0)

    def items(self):
        return [(name, getattr(self, f"mask_{i}")) for i, name in enumerate(self.names)]


def magnitude_masks(weights: dict[str, torch.Tensor], masks: _Masks, sparsity: float) -> None:
    """Per tensor, keep the ``round((1 - sparsity) * n)`` largest |w * mask|; already pruned
    weights stay pruned (a count above the weights left would otherwise keep zeros)."""
    for name, mask in masks.items():
        magnitude = (weights[name].detach() * mask).abs()
        mask.copy_(top_fraction(magnitude, 1.0 - sparsity) & mask)


def refuse_lower_sparsity(weights: dict[str, torch.Tensor], sparsity: float) -> None:
    """Pruned weights never grow back, so a model already sparser than the target cannot reach
    it: say so instead of returning a plan whose sparsity is not what it claims."""
    # per tensor, as the masks keep their counts: refused only where the count to keep is
    # above the weights left (the same target again passes, whatever its rounding)
    for name, weight in sorted(weights.items()):
        left = int((weight != 0).sum())
        if left < round((1.0 - sparsity) * weight.numel()):
            share = 1.0 - left / weight.numel()
            least = math.ceil(share * 1e4) / 1e4  # rounded up: the value asked for passes
            raise ConfigError(
                f"the model's linear {name} is already {share:.1%} sparse, above --sparsity "
                f"{sparsity}; pruned weights stay pruned: ask for at least {least:.4f}"
            )


@register_method(
    "magnitude",
    config=Config,
    summary="gradual magnitude pruning (Zhu & Gupta 2017) of the linears' weights to a "
    "sparsity, cubic schedule, optional KD",
    targets=("sparsity",),
    per_layer=False,
    trains_weights=True,
    needs_teacher=True,
    needs_data=("train",),
)
def prune_magnitude(request: PruneRequest, config: Config) -> MethodResult:
    result = gradual_magnitude(
        request, config, copy.deepcopy(request.model), distillation(request, config, "magnitude")
    )
    result.plan = result.plan.model_copy(
        update={"meta": {**result.plan.meta, "distill": config.distill}}
    )
    return result


def gradual_magnitude(
    request: PruneRequest, config: GradualConfig, student: nn.Module, loss_fn: LossFn | None
) -> MethodResult:
    """Train ``student`` with ``loss_fn`` while per-tensor magnitude masks follow the cubic
    schedule to ``config.sparsity`` (re-applied after every step, checkpointed); the result
    carries the masks in its plan and the trained student. Shared with `sparse-kd`."""
    weights = masked_linears(student, request.plan)
    refuse_lower_sparsity(weights, config.sparsity)
    masks = _Masks(weights).to(module_device(student))
    steps = planned_steps(request, config)
    events = cubic_sparsity_events(
        steps, config.events, config.sparsity, config.initial_warmup, config.final_warmup
    )

    def after_step(step: int) -> None:
        if step in events:
            magnitude_masks(weights, masks, events[step])
        for name, mask in masks.items():  # masked_fill_: +0.0, where a product gives -0.0
            zero_dropped(weights[name], ~mask)

    train = TrainConfig(
        learning_rate=config.learning_rate,
        max_steps=steps,
        batch_size=config.batch_size,
        lr_schedule=config.lr_schedule,
        warmup_ratio=0.0 if config.lr_schedule == "constant" else 0.1,
        checkpoint_every=config.checkpoint_every,
        seed=request.seed,
        device=str(module_device(student)),
        **config.loop_options(),
    )

    result = request.train(
        student,
        train,
        loss_fn,
        TrainExtras(after_step=[after_step], state={"masks": masks}),
        report=lambda step: {"sparsity": sparsity_at(events, step)},
    )
    current = {name: mask.cpu() for name, mask in masks.items()}
    plan = request.plan.with_masks(dense_masks(student, request.plan, current))
    kept = sum(int(m.sum()) for m in current.values())
    total = sum(m.numel() for m in current.values())
    meta = {"sparsity": 1.0 - kept / total, "target": config.sparsity}
    record = {"loss_curve": result.log, "train_steps": result.steps, "seconds": result.seconds}
    return MethodResult(plan.model_copy(update={"meta": meta}), model=student, record=record)

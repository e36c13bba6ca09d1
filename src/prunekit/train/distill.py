"""Logit distillation for recovery: a pruned student learns from its unpruned teacher.

Classification: ``alpha_kd * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + alpha_ce * CE``
(Hinton et al.; movement-pruning defaults T = 2, 0.5 / 0.5). Regression (STS-B, OUR CHOICE from
methods.md §6.5, applied to every KD method): ``alpha_kd * MSE(student, teacher) +
alpha_ce * MSE(student, gold)``. The two terms are returned as named parts (``kd``, ``ce``) so
the training loop shows and logs each.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from prunekit.errors import ConfigError
from prunekit.train.extras import LossFn

__all__ = [
    "DistillConfig",
    "check_teacher_shape",
    "note_unused_temperature",
    "distillation_loss",
    "distillation_parts",
    "make_distillation_loss",
    "peer_loss",
    "hidden_state_loss",
    "attention_pairing_loss",
]

log = logging.getLogger(__name__)


def note_unused_temperature(method: str, given: bool, task) -> None:
    """Say that a ``temperature`` set for a regression task is not read (its KD is the MSE to
    the teacher's score). A warning, not a refusal: `compare` runs one method's settings over
    several tasks, and the temperature counts on the classification ones."""
    if given and task is not None and task.is_regression:
        log.warning(
            "%s: temperature is not used on %s, a regression task (its KD is the MSE to the "
            "teacher's score)",
            method,
            task.name,
        )


def check_teacher_shape(method: str, teacher: nn.Module, student: nn.Module) -> None:
    """Refuse, in one line, a teacher of another shape than ``student`` where ``method`` pairs
    layers, heads and hidden states by position: it would be matched wrongly, then fail deep
    inside a loss. (Logit-only KD takes any teacher of the task's labels.)"""
    fields = ("num_hidden_layers", "hidden_size", "num_attention_heads")
    differ = [
        f"{f} {getattr(teacher.config, f, None)} vs {getattr(student.config, f, None)}"
        for f in fields
        if getattr(teacher.config, f, None) != getattr(student.config, f, None)
    ]
    if differ:
        raise ConfigError(
            f"{method} distils layer by layer: the teacher must have the student's layers, "
            f"heads and width ({', '.join(differ)}); give a --teacher fine-tuned from the same "
            "pre-trained model"
        )


class DistillConfig(BaseModel):
    """Logit distillation from the unpruned model during recovery."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(2.0, gt=0)
    alpha_kd: float = Field(0.5, ge=0, le=1)

    @property
    def alpha_ce(self) -> float:
        return 1.0 - self.alpha_kd


def distillation_parts(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha_kd: float = 0.5,
    alpha_ce: float = 0.5,
    is_regression: bool = False,
) -> dict[str, torch.Tensor]:
    """The weighted ``kd`` and ``ce`` terms for one batch; logits ``[B, C]`` (``[B, 1]``)."""
    if is_regression:  # in fp32: bf16 would round the gold scores (3.8 -> 3.797) and teacher
        student = student_logits.squeeze(-1).float()
        teacher = teacher_logits.squeeze(-1).to(student.device).float()
        return {
            "kd": alpha_kd * F.mse_loss(student, teacher),
            "ce": alpha_ce * F.mse_loss(student, labels.to(student.device).float()),
        }
    t = temperature
    kd = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.softmax(teacher_logits.to(student_logits.device) / t, dim=-1),
        reduction="batchmean",
    ) * (t * t)
    return {"kd": alpha_kd * kd, "ce": alpha_ce * F.cross_entropy(student_logits, labels)}


def distillation_loss(*args, **kwargs) -> torch.Tensor:
    """The combined loss (``kd + ce``) of `distillation_parts`."""
    parts = distillation_parts(*args, **kwargs)
    return parts["kd"] + parts["ce"]


def make_distillation_loss(
    teacher: nn.Module, config: DistillConfig, is_regression: bool = False
) -> LossFn:
    """A ``loss_fn(student, batch, step)`` for `finetune` that runs the teacher frozen.

    The teacher is only run under ``no_grad`` in eval mode; its parameters are left as they
    are, since callers share it (compare copies its dense model for every run).
    """
    teacher.eval()

    def loss_fn(student: nn.Module, batch: dict[str, torch.Tensor], step: int):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        device = next(teacher.parameters()).device
        with torch.no_grad():
            teacher_logits = teacher(**{k: v.to(device) for k, v in inputs.items()}).logits
        student_logits = student(**inputs).logits
        return distillation_parts(
            student_logits,
            teacher_logits.to(student_logits.device),
            batch["labels"],
            config.temperature,
            config.alpha_kd,
            config.alpha_ce,
            is_regression,
        )

    return loss_fn


def peer_loss(
    student_sums: dict[int, torch.Tensor],
    teacher_sums: dict[int, torch.Tensor],
    attention_mask: torch.Tensor,
    reduction: str = "sum",
) -> torch.Tensor:
    """Peer distillation (methods.md §3(b), OUR CHOICE): per layer, the student's retained
    heads together reproduce the teacher's *whole* attention output, the pruned heads' share
    included: ``sum_l mean over tokens ||sum_r o^S_{l,r} - sum_h o^T_{l,h}||^2`` (padding left
    out). Inputs are `AttentionOutputs.sums` of both models (bias excluded). ``reduction``
    "sum" sums the squares over the features (the spec's squared norm), "mean" averages them
    (an MSE, the scale of `hidden_state_loss`: the norm is ~hidden-size times larger)."""
    weights = attention_mask.to(next(iter(student_sums.values())).dtype)
    tokens = weights.sum().clamp_min(1.0)
    total = 0.0
    for layer, student in student_sums.items():
        difference = (student - teacher_sums[layer].to(student.device)).pow(2)
        squared = difference.sum(-1) if reduction == "sum" else difference.mean(-1)
        total = total + (squared * weights).sum() / tokens
    return total


def hidden_state_loss(
    student: tuple[torch.Tensor, ...],
    teacher: tuple[torch.Tensor, ...],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Sum over the embeddings and every layer of the MSE between student and teacher hidden
    states ``[B, T, d]`` (TinyBERT-style), over real tokens only."""
    weights = attention_mask[..., None].to(student[0].dtype)
    count = (weights.sum() * student[0].shape[-1]).clamp_min(1.0)
    return sum(
        ((s - t.to(s.device)).pow(2) * weights).sum() / count
        for s, t in zip(student, teacher, strict=True)
    )


def attention_pairing_loss(
    student_attentions: tuple[torch.Tensor, ...],
    teacher_attentions: tuple[torch.Tensor, ...],
    pairs: list[tuple[int, int, int]],
    attention_mask: torch.Tensor,
) -> torch.Tensor:
    """Peer Distillation's optional pairing term (methods.md §3(b), OUR CHOICE): for each
    ``(layer, student head position, teacher head position)`` the retained student head's
    attention map matches the pruned teacher head's, ``sum over pairs of MSE`` over real
    (query, key) entries. Positions index the heads each model has (its attention tensor)."""
    mask = attention_mask.to(student_attentions[0].dtype)
    weights = mask[:, :, None] * mask[:, None, :]  # [B, T, T]
    entries = weights.sum().clamp_min(1.0)
    total = student_attentions[0].new_zeros(())
    for layer, mine, theirs in pairs:
        s = student_attentions[layer][:, mine]
        t = teacher_attentions[layer][:, theirs].to(s.device)
        total = total + ((s - t).pow(2) * weights).sum() / entries
    return total

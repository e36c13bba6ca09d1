"""Logit distillation for recovery: a pruned student learns from its unpruned teacher.

Classification: ``alpha_kd * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + alpha_ce * CE``
(Hinton et al.; movement-pruning defaults T = 2, 0.5 / 0.5). Regression (STS-B, OUR CHOICE from
methods.md §6.5, applied to every KD method): ``alpha_kd * MSE(student, teacher) +
alpha_ce * MSE(student, gold)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.train.finetune import LossFn

__all__ = ["distillation_loss", "make_distillation_loss"]


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 2.0,
    alpha_kd: float = 0.5,
    alpha_ce: float = 0.5,
    is_regression: bool = False,
) -> torch.Tensor:
    """Combined loss for one batch; logits ``[B, C]`` (``[B, 1]`` for regression)."""
    if is_regression:
        student = student_logits.squeeze(-1)
        return alpha_kd * F.mse_loss(student, teacher_logits.squeeze(-1)) + alpha_ce * F.mse_loss(
            student, labels.to(student.dtype)
        )
    t = temperature
    kd = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.softmax(teacher_logits / t, dim=-1),
        reduction="batchmean",
    ) * (t * t)
    return alpha_kd * kd + alpha_ce * F.cross_entropy(student_logits, labels)


def make_distillation_loss(
    teacher: nn.Module,
    temperature: float = 2.0,
    alpha_kd: float = 0.5,
    alpha_ce: float = 0.5,
    is_regression: bool = False,
) -> LossFn:
    """A ``loss_fn(student, batch)`` for `finetune` that runs the frozen teacher on each batch."""
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)

    def loss_fn(student: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        device = next(teacher.parameters()).device
        with torch.no_grad():
            teacher_logits = teacher(**{k: v.to(device) for k, v in inputs.items()}).logits
        student_logits = student(**inputs).logits
        return distillation_loss(
            student_logits,
            teacher_logits.to(student_logits.device),
            batch["labels"],
            temperature,
            alpha_kd,
            alpha_ce,
            is_regression,
        )

    return loss_fn

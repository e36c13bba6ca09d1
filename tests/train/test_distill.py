"""Distillation loss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from prunekit.train import distillation_loss, distillation_parts


def test_kd_loss_matches_hand_computation():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    labels = torch.tensor([0])
    t = 2.0
    # teacher at T=2: softmax([1, 0]); student at T=2: [0.5, 0.5]
    p = [math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    ce = math.log(2.0)
    expected = 0.3 * kl * t * t + 0.7 * ce
    got = distillation_loss(student, teacher, labels, temperature=t, alpha_kd=0.3, alpha_ce=0.7)
    assert abs(got.item() - expected) < 1e-6


def test_regression_uses_mse_to_teacher_and_gold():
    student = torch.tensor([[1.0], [3.0]])
    teacher = torch.tensor([[2.0], [3.0]])
    gold = torch.tensor([1.0, 5.0])
    # MSE(student, teacher) = (1 + 0)/2 = 0.5 ; MSE(student, gold) = (0 + 4)/2 = 2
    got = distillation_loss(student, teacher, gold, alpha_kd=0.5, alpha_ce=0.5, is_regression=True)
    assert abs(got.item() - (0.5 * 0.5 + 0.5 * 2.0)) < 1e-6


def test_regression_targets_are_not_rounded_to_a_bf16_student():
    from types import SimpleNamespace

    from prunekit.methods.sparse_kd import sparse_kd_parts

    student = torch.tensor([[3.796875]], dtype=torch.bfloat16)  # bf16's nearest to 3.8
    gold = torch.tensor([3.8])
    miss = (3.8 - 3.796875) ** 2  # rounded to bf16, gold would equal the student: loss 0
    parts = distillation_parts(student, gold[:, None], gold, is_regression=True, alpha_kd=1.0,
                               alpha_ce=1.0)  # fmt: skip
    assert parts["ce"].dtype == torch.float32
    assert parts["ce"].item() == pytest.approx(miss, rel=1e-3)
    assert parts["kd"].item() == pytest.approx(miss, rel=1e-3)
    mask = torch.ones(1, 2, dtype=torch.long)
    out = SimpleNamespace(logits=student, attentions=(), hidden_states=())
    teacher = SimpleNamespace(logits=gold[:, None], attentions=(), hidden_states=())
    maps = ([torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 1, 2, 2)])
    sparse = sparse_kd_parts(out, teacher, mask, gold, True, maps=maps)
    assert sparse["prediction"].item() == pytest.approx(miss, rel=1e-3)

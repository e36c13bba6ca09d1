"""Distillation loss against values computed by hand."""

from __future__ import annotations

import math

import torch

from prunekit.train import distillation_loss


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

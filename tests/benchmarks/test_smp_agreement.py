"""benchmarks/smp_agreement.py: how two head scorings are compared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import smp_agreement  # noqa: E402


def test_scorings_agree_fully_with_themselves_and_not_at_all_with_their_reverse():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.7], [1.0, 0.2, 0.8, 0.4]])
    assert smp_agreement.kept_half(scores) == [{1, 3}, {0, 2}]
    assert smp_agreement.compare(scores, scores * 2) == {"spearman": 1.0, "shared_half": 1.0}
    reverse = smp_agreement.compare(scores, -scores)
    assert reverse["shared_half"] == 0.0 and reverse["spearman"] == pytest.approx(-1.0)
    one_swap = scores.clone()
    one_swap[0, [1, 2]] = one_swap[0, [2, 1]]  # layer 0 keeps {2, 3}: one of four heads differs
    assert smp_agreement.compare(scores, one_swap)["shared_half"] == 0.75

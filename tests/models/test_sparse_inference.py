"""The sparse CPU path: CSR linears match dense outputs, and conversion keeps the model's
outputs while reporting a choice for every linear."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import apply_plan, current_plan
from prunekit.errors import ConfigError
from prunekit.models.masks import masked_linears
from prunekit.models.sparse import SparseLinear, to_sparse_inference

L = TINY["layers"]


def test_a_csr_linear_matches_the_dense_one():
    linear = torch.nn.Linear(32, 37)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(37, 32, generator=torch.Generator().manual_seed(0)) > 0.9)
    x = torch.randn(3, 700, 32)  # more rows than one chunk
    with torch.no_grad():
        assert torch.allclose(SparseLinear(linear)(x), linear(x), atol=1e-5)


def test_converting_a_sparse_model_keeps_its_outputs():
    model = tiny_model("bert")
    plan = current_plan(model)
    generator = torch.Generator().manual_seed(1)
    masks = {
        k: torch.rand(w.shape, generator=generator) > 0.95
        for k, w in masked_linears(model, plan).items()
    }
    apply_plan(model, plan.with_masks(masks))
    with torch.no_grad():
        expected = model(**tiny_batch()).logits
    chosen = to_sparse_inference(copy.deepcopy(model), tokens=(16, 256), rounds=2)
    assert len(chosen) == 6 * L and all(c.sparsity > 0.9 for c in chosen)
    assert all(len(c.sparse_ms) == len(c.dense_ms) == 2 for c in chosen)  # both sizes timed
    choices = to_sparse_inference(model, tokens=256, rounds=2, always=True)
    assert all(c.sparse for c in choices)
    assert sum(isinstance(m, SparseLinear) for m in model.modules()) == 6 * L
    with torch.no_grad():
        assert torch.allclose(model(**tiny_batch()).logits, expected, atol=1e-5)


def test_the_sparse_path_refuses_half_precision_models():
    with pytest.raises(ConfigError, match="float32"):
        to_sparse_inference(tiny_model("bert").half(), tokens=16)


def test_a_hybrid_linear_runs_csr_up_to_its_threshold_and_dense_above():
    linear = torch.nn.Linear(32, 37)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(37, 32, generator=torch.Generator().manual_seed(0)) > 0.9)
    hybrid = SparseLinear(linear, dense_above=100)
    small, large = torch.randn(2, 40, 32), torch.randn(4, 40, 32)  # 80 and 160 tokens
    with torch.no_grad():
        assert torch.allclose(hybrid(small), linear(small), atol=1e-5)
        assert torch.allclose(hybrid(large), linear(large), atol=1e-5)
        hybrid.dense_weight.zero_()  # which path ran: only the dense one reads this copy
        assert torch.allclose(hybrid(small), linear(small), atol=1e-5)
        assert torch.equal(hybrid(large), linear.bias.expand(4, 40, 37))

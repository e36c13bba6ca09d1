"""Head gates: masking semantics, gradients, eager vs SDPA, pruned models."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import HeadGates, PruningPlan, apply_plan
from prunekit.errors import ConfigError

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def test_all_ones_gates_change_nothing(family):
    model = tiny_model(family)
    batch = tiny_batch()
    with torch.no_grad():
        plain = model(**batch).logits
        with HeadGates(model):
            gated = model(**batch).logits
    assert torch.equal(plain, gated)


def test_gates_are_removed_on_exit(family):
    model = tiny_model(family)
    batch = tiny_batch()
    with torch.no_grad():
        plain = model(**batch).logits
        with HeadGates(model, torch.zeros(L, H)):
            masked = model(**batch).logits
        after = model(**batch).logits
    assert not torch.allclose(plain, masked)
    assert torch.equal(plain, after)


def test_gradients_reach_the_gates(family):
    model = tiny_model(family)
    with HeadGates(model, requires_grad=True) as gates:
        model(**tiny_batch()).logits.sum().backward()
    assert gates.values.grad is not None
    assert gates.values.grad.shape == (L, H)
    assert (gates.values.grad.abs() > 0).all()


@pytest.mark.parametrize("family_name", ["bert", "roberta", "electra", "distilbert"])
def test_gates_agree_under_eager_and_sdpa(family_name):
    gates = torch.ones(L, H)
    gates[0, 1] = 0.0
    gates[2, :3] = 0.3
    batch = tiny_batch()
    outputs = []
    for attn in ("eager", "sdpa"):
        model = tiny_model(family_name, attn=attn)
        with torch.no_grad(), HeadGates(model, gates):
            outputs.append(model(**batch).logits)
    assert (outputs[0] - outputs[1]).abs().max().item() < 1e-5


def test_gates_on_a_pruned_model_use_original_indices():
    dense = tiny_model("bert")
    batch = tiny_batch()
    plan = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 2, 3], [1], [0, 1, 2, 3]]
    )
    gates = torch.ones(L, H)
    gates[0, 2] = 0.0  # kept head, now gated off
    reference = gates.clone()
    reference[0, 1] = reference[1, [0, 2, 3]] = 0.0
    with torch.no_grad(), HeadGates(dense, reference):
        expected = dense(**batch).logits
    pruned = apply_plan(dense, plan)
    with torch.no_grad(), HeadGates(pruned, gates):
        actual = pruned(**batch).logits
    assert (actual - expected).abs().max().item() <= 1e-5


def test_wrong_gate_shape_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"shape \[3, 4\]"):
        HeadGates(tiny_model("bert"), torch.ones(2, 4))


# ---------------------------------------------------------------------------- devices and dtypes


def test_default_and_given_gates_live_on_the_models_device():
    model = tiny_model("bert")
    assert HeadGates(model).values.device == HeadGates(model).device == torch.device("cpu")
    given = torch.ones(L, H)
    assert HeadGates(model, given).values is given  # no copy when it is already there


def test_a_callers_trainable_leaf_is_kept_and_receives_gradients():
    model = tiny_model("bert")
    leaf = torch.full((L, H), 0.5, requires_grad=True)
    with HeadGates(model, leaf) as gates:
        model(**tiny_batch()).logits.sum().backward()
    assert gates.values is leaf
    assert leaf.grad is not None and (leaf.grad.abs() > 0).all()


def test_gates_of_another_dtype_are_cast_in_the_hook():
    model = tiny_model("bert")
    gates = torch.ones(L, H, dtype=torch.float64)
    gates[1, 2] = 0.0
    batch = tiny_batch()
    with torch.no_grad():
        with HeadGates(model, gates.float()):
            expected = model(**batch).logits
        with HeadGates(model, gates):
            actual = model(**batch).logits
    assert actual.dtype == torch.float32
    assert torch.equal(actual, expected)


def test_bfloat16_model_gates_and_backward():
    model = tiny_model("bert").to(torch.bfloat16)
    with HeadGates(model, requires_grad=True) as gates:
        logits = model(**tiny_batch()).logits
        logits.float().sum().backward()
    assert logits.dtype == torch.bfloat16
    assert gates.values.dtype == torch.float32  # the leaf keeps full precision
    assert gates.values.grad is not None and torch.isfinite(gates.values.grad).all()

"""Surgery equals gating, counts parameters exactly, composes, and validates plans."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import HeadGates, PruningPlan, apply_plan, current_plan, model_stats
from prunekit.errors import PlanError
from prunekit.models import HeadMaskNotSupportedError, get_adapter
from prunekit.models.stats import count_parameters

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def random_plan(seed: int, with_ffn: bool = True, empty_layer: int | None = 1) -> PruningPlan:
    rng = random.Random(seed)
    kept_heads = []
    for layer in range(L):
        if layer == empty_layer:
            kept_heads.append([])
        else:
            kept_heads.append(sorted(rng.sample(range(H), rng.randint(1, H))))
    kept_ffn = None
    if with_ffn:
        kept_ffn = [sorted(rng.sample(range(F), rng.randint(0, F))) for _ in range(L)]
        kept_ffn[0] = []  # a zero-width FFN layer
    return PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=kept_heads, kept_ffn=kept_ffn
    )


def masked_reference(model, plan: PruningPlan, batch) -> torch.Tensor:
    """Logits of the dense model with removed heads gated to 0 and removed FFN neurons zeroed."""
    model = copy.deepcopy(model)
    adapter = get_adapter(model)
    with torch.no_grad():
        for layer in range(L):
            ffn_in = adapter.layer_modules(model, layer).ffn_in.get()
            gone = sorted(set(range(F)) - set(plan.ffn_kept(layer)))
            ffn_in.weight[gone] = 0.0
            ffn_in.bias[gone] = 0.0  # gelu(0) = 0: the neuron contributes nothing
    gates = torch.zeros(L, H)
    for layer, kept in enumerate(plan.kept_heads):
        gates[layer, list(kept)] = 1.0
    with torch.no_grad(), HeadGates(model, gates):
        return model(**batch).logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliced_model_matches_gated_model(family, seed):
    model = tiny_model(family)
    batch = tiny_batch()
    plan = random_plan(seed, empty_layer=seed % L)
    expected = masked_reference(model, plan, batch)
    apply_plan(model, plan)
    with torch.no_grad():
        actual = model(**batch).logits
    assert (actual - expected).abs().max().item() <= 1e-5
    assert current_plan(model) == plan.model_copy(update={"meta": {}})


def test_sliced_model_trains(family):
    model = tiny_model(family).train()
    apply_plan(model, random_plan(3))
    out = model(**tiny_batch(), labels=torch.tensor([0, 1, 0]))
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.numel()]
    assert all(g is not None for g in grads)


def test_parameter_count_drops_exactly(family):
    model = tiny_model(family)
    adapter = get_adapter(model)
    d, dh = adapter.hidden_size(model.config), adapter.head_size(model.config)
    before = count_parameters(model)
    plan = random_plan(4)
    removed_heads = L * H - plan.heads_kept
    removed_neurons = L * F - sum(plan.ffn_per_layer)
    apply_plan(model, plan)
    expected_drop = removed_heads * (3 * (d * dh + dh) + dh * d) + removed_neurons * (2 * d + 1)
    assert before - count_parameters(model) == expected_drop
    stats = model_stats(model)
    assert stats.parameters_original == before
    assert stats.heads_total == plan.heads_kept and stats.heads_original == L * H


def test_applying_two_plans_equals_their_composition(family):
    first = random_plan(5, empty_layer=None)
    # the second plan keeps a subset of what the first kept
    rng = random.Random(9)
    second = first.model_copy(
        update={
            "kept_heads": tuple(
                tuple(sorted(rng.sample(list(h), max(0, len(h) - 1)))) for h in first.kept_heads
            ),
            "kept_ffn": tuple(
                tuple(sorted(rng.sample(list(n), len(n) // 2))) for n in first.kept_ffn
            ),
        }
    )
    batch = tiny_batch()
    twice = apply_plan(apply_plan(tiny_model(family), first), second)
    once = apply_plan(tiny_model(family), first.then(second))
    with torch.no_grad():
        assert torch.equal(twice(**batch).logits, once(**batch).logits)
    assert current_plan(twice) == current_plan(once)


def test_plan_keeping_removed_heads_is_rejected():
    model = tiny_model("bert")
    apply_plan(model, random_plan(6))
    dense = PruningPlan.dense(L, H, F)
    with pytest.raises(PlanError, match="already removed"):
        apply_plan(model, dense)


def test_plan_of_wrong_shape_is_rejected():
    with pytest.raises(PlanError, match="2 layers"):
        apply_plan(tiny_model("bert"), PruningPlan.dense(2, H, F))


@pytest.mark.parametrize(
    ("kept_heads", "message"),
    [
        ([[0], [1, 1], [2]], "duplicate"),
        ([[0], [1, 9], [2]], r"outside \[0, 4\)"),
        ([[0], [1]], "2 layers but the model has 3"),
        ([[1, 0], [1], [2]], "sorted"),
    ],
)
def test_invalid_plans_get_clear_errors(kept_heads, message):
    with pytest.raises(PlanError, match=message):
        PruningPlan.build(num_layers=L, num_heads=H, intermediate_size=F, kept_heads=kept_heads)


def test_plan_json_round_trip(tmp_path):
    plan = random_plan(7)
    plan.write(tmp_path / "plan.json")
    assert PruningPlan.read(tmp_path / "plan.json") == plan
    with pytest.raises(PlanError, match="not valid JSON"):
        PruningPlan.from_json("{nope")


def test_head_mask_argument_raises_instead_of_being_ignored(family):
    model = apply_plan(tiny_model(family), PruningPlan.dense(L, H, F))
    with pytest.raises(HeadMaskNotSupportedError, match="HeadGates"):
        model(**tiny_batch(), head_mask=torch.ones(L, H))


def test_unsupported_architecture_lists_supported_ones():
    import transformers

    from prunekit.errors import UnsupportedModelError

    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=10)
    model = transformers.GPT2Model(config)
    with pytest.raises(UnsupportedModelError, match="bert, distilbert, electra, mpnet, roberta"):
        apply_plan(model, PruningPlan.dense(1, 2, 32))


def test_a_pruned_model_pickles_and_keeps_its_outputs(family, tmp_path):
    """torch.save(model) and multiprocessing pickle modules: MPNet's bias hook was a closure."""
    model = apply_plan(tiny_model(family), random_plan(3)).eval()
    batch = tiny_batch()
    torch.save(model, tmp_path / "model.pt")
    again = torch.load(tmp_path / "model.pt", weights_only=False).eval()  # our own file
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, model(**batch).logits)


def test_a_model_whose_config_another_model_shares_and_pruned_is_refused(tmp_path):
    """transformers' model classes keep the config object they are given: pruning one model
    records its plan where the other reads its own."""
    from prunekit import save

    teacher = tiny_model("bert")
    student = type(teacher)(teacher.config)  # one config object for both
    apply_plan(student, PruningPlan.dense(L, H, F).without_heads({(0, 1), (0, 2)}))
    with pytest.raises(PlanError, match="layer 0 has 4 heads in its weights but 2 in the plan"):
        apply_plan(teacher, PruningPlan.dense(L, H, F).without_heads({(0, 1)}))
    with pytest.raises(PlanError, match="config object shared with another model"):
        save(teacher, tmp_path / "teacher")
    assert not (tmp_path / "teacher").exists()

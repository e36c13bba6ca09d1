"""Michel et al. importance: consistent with autograd through the gates and finite differences."""

from __future__ import annotations

import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import HeadGates, PruningPlan, apply_plan, current_plan
from prunekit.scoring import head_importance, normalize_per_layer

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def labelled_batches():
    batch = {**tiny_batch(batch=4, seq=9), "labels": torch.tensor([0, 1, 1, 0])}
    return [batch, {**tiny_batch(batch=4, seq=9, seed=7), "labels": torch.tensor([1, 1, 0, 0])}]


def loss_at(model, gates: torch.Tensor) -> float:
    """The summed per-example loss (each batch's mean loss times its size)."""
    total = 0.0
    with torch.no_grad(), HeadGates(model, gates):
        for batch in labelled_batches():
            total += model(**batch).loss.item() * len(batch["labels"])
    return total


def test_signed_importance_matches_finite_differences():
    torch.manual_seed(0)
    model = tiny_model("bert").double()
    tokens = sum(int(b["attention_mask"].sum()) for b in labelled_batches())
    examples = sum(len(b["labels"]) for b in labelled_batches())
    signed = head_importance(model, labelled_batches(), per_token_abs=False).double()
    # divided by the tokens, the last layer by the examples (only the first token carries
    # gradient there: the authors' code divides it so)
    signed[:-1] *= tokens
    signed[-1] *= examples
    eps = 1e-6
    for layer, head in [(0, 0), (1, 2), (2, 0), (2, 3)]:
        up, down = torch.ones(L, H, dtype=torch.float64), torch.ones(L, H, dtype=torch.float64)
        up[layer, head] += eps
        down[layer, head] -= eps
        numeric = (loss_at(model, up) - loss_at(model, down)) / (2 * eps)
        assert abs(signed[layer, head].item() - numeric) < 1e-4 * abs(numeric) + 1e-8


def test_importance_does_not_depend_on_how_the_examples_are_batched():
    model = tiny_model("bert").double()
    whole = labelled_batches()[0]
    three_and_one = [{k: v[:3] for k, v in whole.items()}, {k: v[3:] for k, v in whole.items()}]
    torch.testing.assert_close(
        head_importance(model, [whole]), head_importance(model, three_and_one), rtol=1e-6, atol=0
    )


def test_per_token_absolute_values_bound_the_signed_gradient():
    model = tiny_model("bert")
    signed = head_importance(model, labelled_batches(), per_token_abs=False)
    absolute = head_importance(model, labelled_batches())
    assert (absolute >= signed.abs() - 1e-7).all()
    assert (absolute > 0).all()


def test_removed_heads_score_zero_and_kept_heads_keep_their_place():
    model = tiny_model("bert")
    plan = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 3], [], [1, 2, 3]]
    )
    apply_plan(model, plan)
    scores = head_importance(model, labelled_batches())
    assert scores[1].abs().sum() == 0 and scores[0, 1] == 0 and scores[0, 2] == 0
    assert scores[0, 0] > 0 and scores[0, 3] > 0


def test_layer_normalisation_gives_unit_norm_rows():
    scores = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    assert torch.allclose(normalize_per_layer(scores), torch.tensor([[0.6, 0.8], [0.0, 1.0]]))


def test_gates_and_batches_on_other_devices_or_dtypes_give_the_same_scores():
    model = tiny_model("bert")
    gates = torch.ones(L, H)
    gates[0, 1] = 0.0
    reference = head_importance(model, labelled_batches(), gates=gates)
    again = head_importance(model, labelled_batches(), gates=gates.double())
    assert torch.equal(reference, again)
    assert reference.device == torch.device("cpu") and reference.dtype == torch.float32


def test_bfloat16_model_scores_rank_like_float32():
    model = tiny_model("bert")
    full = head_importance(model, labelled_batches())
    half = head_importance(model.to(torch.bfloat16), labelled_batches())
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    # bfloat16 keeps ~3 digits: the scores agree loosely, and so do the head rankings
    assert torch.corrcoef(torch.stack([full.flatten(), half.flatten()]))[0, 1] > 0.9


def test_with_the_last_layer_emptied_the_layer_before_it_is_divided_by_examples():
    """Only the first token carries gradient from the last layer with heads on."""
    torch.manual_seed(0)
    model = tiny_model("bert").double()
    apply_plan(model, current_plan(model).without_heads([(L - 1, h) for h in range(H)]))
    examples = sum(len(b["labels"]) for b in labelled_batches())
    signed = head_importance(model, labelled_batches(), per_token_abs=False).double()
    eps = 1e-6
    for head in (0, 2):
        up, down = torch.ones(L, H, dtype=torch.float64), torch.ones(L, H, dtype=torch.float64)
        up[L - 2, head] += eps
        down[L - 2, head] -= eps
        numeric = (loss_at(model, up) - loss_at(model, down)) / (2 * eps)
        got = signed[L - 2, head].item() * examples
        assert abs(got - numeric) < 1e-4 * abs(numeric) + 1e-8

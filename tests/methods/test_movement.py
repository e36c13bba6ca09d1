"""Movement pruning: straight-through scores, the target per tensor, nothing left behind."""

from __future__ import annotations

import copy

import torch
from conftest import labelled_batch, tiny_model, train_request
from torch.nn.utils import parametrize

from prunekit import current_plan
from prunekit.methods import PruneRequest, get_method
from prunekit.methods.movement import TopKMask, _Schedule
from prunekit.models.masks import any_in_blocks, expand_blocks, masked_linears, top_fraction

BATCH = labelled_batch()


def request(model, **options) -> PruneRequest:
    defaults = {"epochs": 4, "batch_size": 2, "events": 4, "sparsity": 0.75}
    return train_request(model, copy.deepcopy(model), defaults | options)


def test_the_mask_is_top_k_forward_and_straight_through_backward():
    weight = torch.randn(4, 5)
    scores = torch.nn.Parameter(torch.randn(4, 5))
    schedule = _Schedule()
    schedule.keep = 0.25
    masked = TopKMask(scores, schedule)(weight)
    kept = top_fraction(scores.detach(), 0.25)
    assert int(kept.sum()) == 5 and torch.equal(masked, weight * kept)
    masked.sum().backward()
    assert torch.allclose(scores.grad, weight)  # dL/dS = dL/dW' * W


def test_entries_outside_the_allowed_mask_are_zero_whatever_the_schedule_keeps():
    weight = torch.randn(4, 5)
    allowed = torch.rand(4, 5, generator=torch.Generator().manual_seed(0)) > 0.5
    schedule = _Schedule()  # keeps everything
    masked = TopKMask(torch.nn.Parameter(torch.zeros(4, 5)), schedule, allowed)(weight)
    assert torch.equal(masked, weight * allowed)


def test_every_tensor_ends_at_the_target_with_no_parametrization_left():
    model = tiny_model("bert")
    result = get_method("movement")(request(model, distill=True))
    student = result.model
    assert not any(parametrize.is_parametrized(m) for m in student.modules())
    assert not any("scores" in name for name, _ in student.named_parameters())
    for key, weight in masked_linears(student, result.plan).items():
        kept = round(0.25 * weight.numel())
        assert int((weight != 0).sum()) <= kept, key
        assert int(result.plan.masks[key].sum()) == kept, key
        assert bool((weight[~result.plan.masks[key]] == 0).all()), key


def test_weights_an_earlier_plan_dropped_stay_dropped(monkeypatch):
    from prunekit import apply_plan

    model = tiny_model("bert")
    plan = current_plan(model)
    generator = torch.Generator().manual_seed(0)
    earlier = {
        k: torch.rand(w.shape, generator=generator) > 0.3
        for k, w in masked_linears(model, plan).items()
    }
    apply_plan(model, plan.with_masks(earlier))
    # the forward pass never sees a dropped weight, also while the schedule still keeps more
    # than the earlier plan did (which TopK alone would fill with dropped entries)
    most_kept = max(float(m.float().mean()) for m in earlier.values())
    seen: list[float] = []
    forward = TopKMask.forward

    def recording(self, weight):
        masked = forward(self, weight)
        seen.append(float((masked != 0).float().mean()))
        return masked

    monkeypatch.setattr(TopKMask, "forward", recording)
    result = get_method("movement")(request(model, sparsity=0.5))
    assert seen and max(seen) <= most_kept
    for key, kept in result.plan.masks.items():
        assert not bool((kept & ~earlier[key]).any()), key  # nothing dropped comes back
        assert int(kept.sum()) == round(0.5 * kept.numel()), key  # and the target holds


def test_a_float16_model_with_dropped_weights_trains_finite_scores():
    """Scores live outside the model, so the loop's fp32 master weights do not cover them:
    in fp16, the dropped weights' score (-1e9) was -inf and the straight-through term NaN."""
    from prunekit import apply_plan

    model = tiny_model("bert")
    plan = current_plan(model)
    earlier = {k: w.abs() > w.abs().median() for k, w in masked_linears(model, plan).items()}
    apply_plan(model, plan.with_masks(earlier))
    result = get_method("movement")(request(model.half(), sparsity=0.75))
    for key, weight in masked_linears(result.model, result.plan).items():
        assert bool(torch.isfinite(weight).all()), key
        assert int(result.plan.masks[key].sum()) == round(0.25 * weight.numel()), key


def block_model():
    """The tiny BERT with a 48-wide FFN, so that blocks of 8 divide every matrix."""
    import transformers
    from conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config("bert")
    config.intermediate_size = 48
    return transformers.AutoModelForSequenceClassification.from_config(config).eval()


def test_a_block_mask_keeps_whole_blocks_and_sums_each_blocks_gradient():
    weight = torch.randn(8, 12)
    scores = torch.nn.Parameter(torch.tensor([[0.3, -1.0, 2.0], [0.1, 0.5, -0.2]]))
    schedule = _Schedule()
    schedule.keep = 1 / 3  # 2 of the 6 blocks of 4 x 4
    masked = TopKMask(scores, schedule, block=4)(weight)
    kept = torch.tensor([[0, 0, 1], [0, 1, 0]], dtype=torch.bool)
    assert torch.equal(masked, weight * expand_blocks(kept, 4))
    masked.sum().backward()  # dL/dS of a block = the sum over it of dL/dW' * W
    assert torch.allclose(scores.grad, weight.view(2, 4, 3, 4).sum((1, 3)))


def test_block_movement_ends_block_sparse_at_the_target():
    from prunekit.models.sparse_encoder import weight_block_size

    result = get_method("movement")(request(block_model(), block_size=8))
    assert result.plan.meta["block_size"] == 8 and result.plan.meta["sparsity"] == 0.75
    for key, weight in masked_linears(result.model, result.plan).items():
        mask = result.plan.masks[key]
        blocks = any_in_blocks(mask, 8)
        assert torch.equal(expand_blocks(blocks, 8), mask), key  # whole blocks only
        assert int(blocks.sum()) == round(0.25 * blocks.numel()), key
        assert bool((weight[~mask] == 0).all()), key
        assert weight_block_size(weight, sizes=(8,)) == 8, key  # the sparse path's BSR


def test_block_movement_keeps_blocks_an_earlier_plan_dropped_out():
    from prunekit import apply_plan

    model = block_model()
    plan = current_plan(model)
    generator = torch.Generator().manual_seed(0)
    earlier = {
        k: expand_blocks(torch.rand(w.shape[0] // 8, w.shape[1] // 8, generator=generator) > 0.4, 8)
        for k, w in masked_linears(model, plan).items()
    }
    apply_plan(model, plan.with_masks(earlier))
    result = get_method("movement")(request(model, block_size=8))
    for key, mask in result.plan.masks.items():
        assert not bool((mask & ~earlier[key]).any()), key
        # ...and the target is met with blocks the earlier plan kept (none was spent on a
        # dropped block that the final mask then empties)
        blocks = any_in_blocks(mask, 8)
        assert int(blocks.sum()) == round(0.25 * blocks.numel()), key


def test_block_movement_runs_on_a_head_pruned_model():
    from prunekit import PruningPlan, apply_plan

    model = block_model()
    # layer 0 keeps 3 of 4 heads (24 rows of 8), layer 1 none (no Q/K/V to prune), and the
    # FFNs keep 40, 48 and 16 of 48 neurons
    apply_plan(
        model,
        PruningPlan.build(
            num_layers=3,
            num_heads=4,
            intermediate_size=48,
            kept_heads=[(0, 1, 3), (), (0, 1, 2, 3)],
            kept_ffn=[tuple(range(40)), tuple(range(48)), tuple(range(8, 24))],
        ),
    )
    result = get_method("movement")(request(model, block_size=8, sparsity=0.5))
    weights = masked_linears(result.model, result.plan)
    assert weights["0.query"].shape == (24, 32) and "1.query" not in weights
    assert weights["2.ffn_in"].shape == (16, 32)
    for key, weight in weights.items():
        # in the pruned shape: half of the blocks hold weights, each of them whole
        blocks = any_in_blocks(weight != 0, 8)
        assert int(blocks.sum()) == round(0.5 * blocks.numel()), key
        kept = blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)
        assert bool((weight[kept] != 0).all()), key


def test_a_block_size_that_does_not_divide_a_weight_is_refused():
    import pytest

    from prunekit.errors import ConfigError

    # the tiny BERT's FFN is 37 wide
    with pytest.raises(ConfigError, match="block_size 8 does not divide layer 0.ffn_in's weight"):
        get_method("movement")(request(tiny_model("bert"), block_size=8))


def test_top_fraction_keeps_what_a_stable_descending_sort_keeps():
    def by_sort(values, keep):
        count = round(keep * values.numel())
        order = torch.sort(values.flatten(), descending=True, stable=True).indices
        mask = torch.zeros(values.numel(), dtype=torch.bool)
        mask[order[:count]] = True
        return mask.view_as(values)

    generator = torch.Generator().manual_seed(0)
    cases = [
        torch.randn(37, 21, generator=generator),
        torch.randint(0, 4, (37, 21), generator=generator).float(),  # many ties at the cut
        torch.zeros(5, 5),  # all tied: the lowest indices
        torch.tensor([[1.0, float("nan")], [0.5, 2.0]]),  # NaN: as the sort places it
    ]
    for values in cases:
        for keep in (0.0, 0.03, 0.25, 0.5, 0.9, 1.0):
            got = top_fraction(values, keep)
            assert torch.equal(got, by_sort(values, keep)), (values, keep)
            assert int(got.sum()) == round(keep * values.numel())


def test_the_plans_masks_hold_movements_stored_weights_not_a_computed_copy():
    """The loop zeroes the plan's dropped weights after each step: on movement's
    parametrized linears that is the stored original, not a masked copy (with its graph)
    computed once and kept for the whole run."""
    from prunekit import apply_plan
    from prunekit.models.masks import weight_masks

    model = tiny_model("bert")
    plan = current_plan(model)
    earlier = {k: w.abs() > w.abs().median() for k, w in masked_linears(model, plan).items()}
    apply_plan(model, plan.with_masks(earlier))
    module = model.bert.encoder.layer[0].attention.self.query
    mask = TopKMask(torch.zeros(module.weight.shape), _Schedule(), None, 1)
    parametrize.register_parametrization(module, "weight", mask)
    weights = [w for w, _ in weight_masks(model, current_plan(model))]
    assert any(w is module.parametrizations.weight.original for w in weights)
    assert all(w.is_leaf for w in weights)

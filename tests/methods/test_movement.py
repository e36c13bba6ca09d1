"""Movement pruning: straight-through scores, the target per tensor, nothing left behind."""

from __future__ import annotations

import copy

import torch
from conftest import labelled_batch, tiny_model, train_request
from torch.nn.utils import parametrize

from prunekit import current_plan
from prunekit.methods import PruneRequest, get_method
from prunekit.methods.movement import TopKMask, _Schedule
from prunekit.models.masks import masked_linears, top_fraction

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

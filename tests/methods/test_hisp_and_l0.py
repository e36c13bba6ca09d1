"""HISP keeps the most important heads; L0's Lagrangian drives the expected open heads to the
budget; neither touches the model's weights (unless L0 is asked to train them)."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import current_plan
from prunekit.errors import ConfigError
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.scoring import head_importance, normalize_per_layer

L, H = TINY["layers"], TINY["heads"]


BATCH = {**tiny_batch(batch=4, seq=9), "labels": torch.tensor([0, 1, 1, 0])}


def batches():
    return iter([BATCH])


def make_request(model, keep, per_layer=False, **options) -> PruneRequest:
    plan = current_plan(model)
    return PruneRequest(
        model=model,
        plan=plan,
        target=head_target(plan, keep_heads=keep, per_layer=per_layer),
        seed=0,
        batches=batches,
        train_set=unbatch(BATCH),
        collate=default_collate,
        options=options,
    )


def test_hisp_keeps_the_top_layer_normalised_heads():
    model = tiny_model("bert")
    scores = normalize_per_layer(head_importance(model, batches()))
    plan = get_method("hisp")(make_request(model, 5)).plan
    kept = {(layer, h) for layer, heads in enumerate(plan.kept_heads) for h in heads}
    top5 = {divmod(i, H) for i in torch.argsort(scores.flatten(), descending=True)[:5].tolist()}
    assert kept == top5


def test_hisp_iterative_hits_the_target_in_both_modes(monkeypatch):
    from prunekit.methods import hisp

    model = tiny_model("bert")
    scored_under = []  # the plan each re-scoring ran under
    original = hisp._plan_scores

    def spy(model, batches, plan, normalize=True):
        scored_under.append(plan.heads_kept)
        return original(model, batches, plan, normalize)

    monkeypatch.setattr(hisp, "_plan_scores", spy)
    assert get_method("hisp")(make_request(model, 4, iterative=True)).plan.heads_kept == 4
    # 12 heads down to 4 by steps of 10% (one head): re-scored after every removal, each
    # time under the heads already removed
    assert scored_under == list(range(12, 4, -1))
    per_layer = get_method("hisp")(make_request(model, 3, per_layer=True, iterative=True)).plan
    assert per_layer.heads_per_layer == [1, 1, 1]


def test_hisp_iterative_per_layer_steps_an_unevenly_pruned_model_down_to_the_quota(monkeypatch):
    """Layers with 4, 1 and 4 heads down to 1 each: the interim steps are not one count per
    layer (the first asked layer 1 for 2 heads it no longer had)."""
    from prunekit import PruningPlan, apply_plan
    from prunekit.methods import hisp

    model = tiny_model("bert")
    before = PruningPlan.build(
        num_layers=L,
        num_heads=H,
        intermediate_size=TINY["ffn"],
        kept_heads=[[0, 1, 2, 3], [3], [0, 1, 2, 3]],
    )
    apply_plan(model, before)
    scored_under = []
    original = hisp._plan_scores

    def spy(model, batches, plan, normalize=True):
        scored_under.append(plan.heads_per_layer)
        return original(model, batches, plan, normalize)

    monkeypatch.setattr(hisp, "_plan_scores", spy)
    plan = get_method("hisp")(make_request(model, 3, per_layer=True, iterative=True)).plan
    assert plan.heads_per_layer == [1, 1, 1] and plan.is_subset_of(before)
    # one head a layer per step (10% of 4, at least one), none below the quota
    assert scored_under == [[4, 1, 4], [3, 1, 3], [2, 1, 2]]
    with pytest.raises(ConfigError, match="layer 1 has 1 heads left, fewer than the 2"):
        get_method("hisp")(make_request(model, 6, per_layer=True, iterative=True))


def test_l0_expected_open_heads_reach_the_budget():
    model = tiny_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = get_method("l0")(make_request(model, 4, steps=300, gate_lr=0.1, lagrangian_lr=0.2)).plan
    assert plan.heads_kept == 4
    assert abs(plan.meta["expected_open_heads"] - 4) < 1.5
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # gates only by default
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_l0_reports_progress():
    model = tiny_model("bert")
    seen = []
    request = make_request(model, 6, steps=5)
    request.on_progress = seen.append
    get_method("l0")(request)
    assert [s["step"] for s in seen] == [1, 2, 3, 4, 5]
    assert {"loss", "expected_open_heads", "budget"} <= set(seen[0])


def test_l0_killed_mid_training_resumes_to_the_same_gates(tmp_path):
    options = {"steps": 12, "checkpoint_every": 3}
    reference = get_method("l0")(make_request(tiny_model("bert"), 4, **options)).plan

    class Killed(Exception):
        pass

    def kill_at_7(info):
        if info["step"] == 7:
            raise Killed

    request = make_request(tiny_model("bert"), 4, **options)
    request.state_dir, request.on_progress = tmp_path, kill_at_7
    with pytest.raises(Killed):
        get_method("l0")(request)
    assert (tmp_path / "last").is_dir()  # checkpointed at step 6
    request = make_request(tiny_model("bert"), 4, **options)
    steps = []
    request.state_dir, request.on_progress = tmp_path, lambda info: steps.append(info.get("step"))
    resumed = get_method("l0")(request)
    assert [s for s in steps if s is not None][0] == 7  # resumed at step 6, not restarted
    assert resumed.record["train_steps"] == 12
    assert resumed.record["loss_curve"][-1]["step"] == 12
    assert resumed.plan.kept_heads == reference.kept_heads
    assert resumed.plan.meta["expected_open_heads"] == reference.meta["expected_open_heads"]


def test_l0_options_are_typed():
    with pytest.raises(ConfigError, match=r"l0: option steps='abc'.*valid options: .*gate_lr"):
        get_method("l0")(make_request(tiny_model("bert"), 4, steps="abc"))
    with pytest.raises(ConfigError, match="l0: unknown option 'stepz'; valid options"):
        get_method("l0")(make_request(tiny_model("bert"), 4, stepz=3))

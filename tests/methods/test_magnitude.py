"""Gradual magnitude pruning: the cubic schedule, masks that hold through training and
resume, and sparsity on top of head pruning that saves and reloads exactly."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY, labelled_batch, tiny_model, train_request

from prunekit import PruningPlan, apply_plan, current_plan, load, model_stats, save
from prunekit.errors import ConfigError
from prunekit.methods import PruneRequest, get_method
from prunekit.models.masks import masked_linears
from prunekit.train.schedules import cubic_sparsity_events

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]
BATCH = labelled_batch()


def request(model, **options) -> PruneRequest:
    defaults = {"epochs": 4, "batch_size": 2, "events": 4, "sparsity": 0.8}
    return train_request(model, copy.deepcopy(model), defaults | options)


def test_the_cubic_schedule_hits_each_event_and_the_final_target():
    events = cubic_sparsity_events(1000, 100, 0.95)
    assert sorted(events)[:2] == [10, 20] and len(events) == 100
    for step, sparsity in events.items():
        if step < 1000:
            assert sparsity == pytest.approx(0.95 * (1 - (1 - (step // 10) / 100) ** 3))
    assert events[1000] == 0.95  # exactly the target at the end
    values = [events[s] for s in sorted(events)]
    assert values == sorted(values)  # monotone


def test_warm_ups_hold_the_model_dense_first_and_at_the_final_mask_last():
    events = cubic_sparsity_events(1000, 100, 0.9, initial_warmup=0.1, final_warmup=0.2)
    assert min(events) > 100 and max(events) == 800  # dense to step 100, final from step 800
    assert events[800] == 0.9 and len(events) == 100
    values = [events[s] for s in sorted(events)]
    assert values == sorted(values)
    assert cubic_sparsity_events(1000, 100, 0.9) == cubic_sparsity_events(1000, 100, 0.9, 0, 0)
    with pytest.raises(ValueError, match="leave steps"):
        cubic_sparsity_events(1000, 100, 0.9, initial_warmup=0.5, final_warmup=0.5)


def test_a_run_with_a_final_warm_up_trains_on_at_the_final_mask():
    model = tiny_model("bert")
    seen = {}
    run = request(model, final_warmup=0.5)
    run.on_progress = lambda info: seen.update({info["step"]: info["sparsity"]})
    result = get_method("magnitude")(run)
    # 16 steps: the ramp ends at step 8, the last 8 train at the final 80%
    assert [seen[step] for step in range(8, 17)] == [0.8] * 9 and seen[7] < 0.8
    for key, weight in masked_linears(result.model, result.plan).items():
        assert int((weight == 0).sum()) == weight.numel() - round(0.2 * weight.numel()), key
    with pytest.raises(ConfigError, match="^magnitude: initial_warmup \\+ final_warmup must"):
        get_method("magnitude")(request(model, initial_warmup=0.6, final_warmup=0.4))


def test_every_pruned_tensor_ends_at_the_target_sparsity_and_stays_masked():
    model = tiny_model("bert")
    result = get_method("magnitude")(request(model, distill=True))
    student = result.model
    for key, weight in masked_linears(student, result.plan).items():
        zeros = int((weight == 0).sum())
        assert zeros == weight.numel() - round(0.2 * weight.numel()), key
        layer, slot = key.split(".")
        assert torch.equal(weight != 0, result.plan.masks[key]), key  # dense shape == current
    assert result.record["train_steps"] == 16
    assert result.plan.meta["sparsity"] == pytest.approx(0.8, abs=0.01)


def test_sparsity_on_a_head_pruned_model_composes_and_reloads(tmp_path):
    model = tiny_model("bert")
    heads = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 2], [1], [0, 1, 3]]
    )
    apply_plan(model, heads)
    result = get_method("magnitude")(request(model, sparsity=0.5, epochs=1))
    assert result.plan.kept_heads == heads.kept_heads  # head pruning stays in the plan
    assert result.plan.is_subset_of(heads)
    before = model_stats(model)
    pruned = apply_plan(result.model, result.plan)
    linears = masked_linears(pruned, result.plan)
    for key, weight in linears.items():  # each of the head-pruned model's linears, at 50%
        assert int((weight == 0).sum()) == weight.numel() - round(0.5 * weight.numel()), key
    assert model_stats(pruned).parameters == before.parameters  # sparsity zeroes, heads slice
    save(pruned, tmp_path / "sparse")
    again = load(tmp_path / "sparse")
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(pruned(**inputs).logits, again(**inputs).logits)
    assert current_plan(again).masks.keys() == result.plan.masks.keys()


def sparse_already(sparsity: float):
    """A tiny BERT whose linears an earlier plan made ``sparsity`` sparse (random masks)."""
    model = tiny_model("bert")
    plan = current_plan(model)
    generator = torch.Generator().manual_seed(0)
    earlier = {}
    for key, weight in masked_linears(model, plan).items():
        kept = torch.zeros(weight.numel(), dtype=torch.bool)
        kept[
            torch.randperm(weight.numel(), generator=generator)[
                : round((1 - sparsity) * kept.numel())
            ]
        ] = True
        earlier[key] = kept.view_as(weight)
    apply_plan(model, plan.with_masks(earlier))
    return model, earlier


@pytest.mark.parametrize("method", ["magnitude", "movement"])
def test_a_target_below_the_models_sparsity_is_refused(method):
    """Kept counts above the weights left would keep zeros, and the plan would claim 50%."""
    model, _ = sparse_already(0.7)
    with pytest.raises(ConfigError, match=r"already 70\.\d% sparse, above --sparsity 0.5"):
        get_method(method)(request(model, sparsity=0.5))
    # the same target again is no lower, whatever each tensor's rounding left
    assert get_method(method)(request(model, sparsity=0.7, epochs=1)).plan.masks


def test_a_mask_update_never_keeps_a_weight_an_earlier_plan_dropped():
    from prunekit.methods.magnitude import _Masks, magnitude_masks

    weights = {"0.query": torch.tensor([[0.0, 2.0], [0.0, -1.0]])}
    masks = _Masks(weights)  # starts from the earlier plan: its zeros are dropped
    magnitude_masks(weights, masks, 0.25)  # 3 of 4 by count, but only 2 are left
    assert masks.items()[0][1].tolist() == [[False, True], [False, True]]


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_an_epoch_in_steps_is_this_processes_share_of_the_batches(monkeypatch, processes):
    """Under `accelerate launch` each process takes every N-th batch: a run sized in epochs
    must count that share, or N processes train N times the epochs asked for."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    from prunekit.methods.magnitude import GradualConfig, planned_steps
    from prunekit.train.schedules import epoch_steps

    monkeypatch.setenv("WORLD_SIZE", str(processes))
    for examples in (100, 3668):
        shard = prepare_data_loader(
            DataLoader(range(examples), batch_size=32),
            num_processes=processes,
            process_index=0,
            put_on_device=False,
        )
        assert epoch_steps(examples, 32) == len(shard)
    model = tiny_model("bert")
    req = train_request(model, model, {})
    config = GradualConfig(epochs=3, batch_size=1)
    assert planned_steps(req, config) == 3 * -(-len(req.train_set) // processes)


def test_a_temperature_a_regression_task_does_not_read_is_said(caplog):
    from prunekit.data import get_task
    from prunekit.methods.magnitude import Config, distillation

    model = tiny_model("bert")
    req = train_request(model, model, {})
    req = PruneRequest(**{**vars(req), "task": get_task("stsb")})
    with caplog.at_level("WARNING"):
        distillation(req, Config(distill=True), "magnitude")  # the default: nothing to say
        assert not caplog.records
        distillation(req, Config(distill=True, temperature=8.0), "magnitude")
    assert "temperature is not used on stsb" in caplog.text

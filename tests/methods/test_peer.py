"""Peer distillation: its loss, its gradual mask, the lossless search, and a whole small run."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import PruningPlan, apply_plan, current_plan, load, save
from prunekit.data import get_task
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.methods.targets import largest_feasible
from prunekit.models.gates import HeadGates, plan_gates
from prunekit.models.head_outputs import AttentionOutputs
from prunekit.scoring.similarity import attention_map_similarity
from prunekit.train.distill import attention_pairing_loss, peer_loss
from prunekit.train.schedules import stepped_ramp

L, H = TINY["layers"], TINY["heads"]
BATCH = {**tiny_batch(batch=8, seq=9), "labels": torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])}


def test_the_peer_loss_is_zero_for_an_unpruned_copy_of_the_teacher():
    teacher = tiny_model("bert")
    student = copy.deepcopy(teacher)
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with AttentionOutputs(teacher) as t, AttentionOutputs(student) as s, torch.no_grad():
        teacher(**inputs)
        student(**inputs)
        assert peer_loss(s.sums, t.sums, inputs["attention_mask"]).item() == 0.0
        with HeadGates(student, torch.ones(L, H).index_fill_(1, torch.tensor([0]), 0.0)):
            student(**inputs)
        summed = peer_loss(s.sums, t.sums, inputs["attention_mask"])
        assert summed.item() > 0.0
        # the mean over features is the squared norm over the hidden size (an MSE's scale)
        averaged = peer_loss(s.sums, t.sums, inputs["attention_mask"], reduction="mean")
        hidden = teacher.config.hidden_size
        torch.testing.assert_close(averaged, summed / hidden)


def test_the_stepped_ramp_goes_up_in_equal_increments_and_ends_at_one():
    values = [stepped_ramp(step, 8, 4) for step in range(11)]
    assert values == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1]


def test_the_lossless_search_picks_the_largest_feasible_fraction():
    grid = [round(0.30 + 0.05 * i, 2) for i in range(13)]
    asked = []

    def feasible(fraction):
        asked.append(fraction)
        return fraction <= 0.62

    assert largest_feasible(grid, feasible) == 0.6
    assert len(asked) <= 4  # bisection, not a scan
    assert largest_feasible(grid, lambda f: False) is None


def test_the_descending_search_finds_the_largest_feasible_fraction_on_a_non_monotone_metric():
    # MRPC's shape at epsilon 0: 0.40 fails while 0.45 passes; bisection stops below it.
    grid = [round(0.30 + 0.05 * i, 2) for i in range(13)]
    passing = {0.30, 0.35, 0.45}
    assert largest_feasible(grid, passing.__contains__) == 0.35
    asked = []

    def feasible(fraction):
        asked.append(fraction)
        return fraction in passing

    assert largest_feasible(grid, feasible, search="descend") == 0.45
    assert asked == [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]
    assert largest_feasible(grid, lambda f: False, search="descend") is None


def peer_request(model, keep: int | None = None, **options) -> PruneRequest:
    plan = current_plan(model)
    target = head_target(plan, keep_heads=keep) if keep else None
    return PruneRequest(
        model=model,
        plan=plan,
        target=target or head_target(plan, keep_heads=plan.heads_kept),
        seed=0,
        batches=lambda: iter([BATCH]),
        train_set=unbatch(BATCH),
        collate=default_collate,
        task=get_task("rte"),
        teacher=copy.deepcopy(model),
        options={"epochs": 4, "batch_size": 4, **options},
    )


@pytest.fixture
def gate_values(monkeypatch) -> list[torch.Tensor]:
    """Every gate tensor peer sets on the student, in order."""
    seen = []
    original_set = HeadGates.set

    def spy(self, gates):
        seen.append(gates.detach().clone())
        return original_set(self, gates)

    monkeypatch.setattr(HeadGates, "set", spy)
    return seen


def test_a_small_run_distils_ends_at_the_planned_mask_and_reloads_exactly(tmp_path, gate_values):
    seen = gate_values
    model = tiny_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = get_method("peer")(peer_request(model, keep=6))
    plan = result.plan
    assert plan.heads_kept == 6 and min(plan.heads_per_layer) >= 1
    assert result.trained_weights and result.record["train_steps"] == 8
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # a copy trained
    assert torch.equal(seen[-1], plan_gates(plan))  # the last half trains the planned mask
    pruned_gates = sorted({float(g[plan_gates(plan) == 0][0]) for g in seen})
    assert pruned_gates == [0.0, 0.25, 0.5, 0.75, 1.0]  # four equal steps down

    pruned = apply_plan(result.model, plan)
    save(pruned, tmp_path / "peer")
    again = load(tmp_path / "peer")
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(pruned(**inputs).logits, again(**inputs).logits)
    assert again.config.prunekit["plan"]["method"] == "peer"


def test_a_bf16_run_trains_in_autocast_and_keeps_fp32_weights():
    model = tiny_model("bert")
    result = get_method("peer")(peer_request(model, keep=6, precision="bf16"))
    assert result.record["train_steps"] == 8 and result.plan.heads_kept == 6
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.record["loss_curve"])


def test_lossless_mode_reports_every_fraction_it_tried():
    model = tiny_model("bert")
    result = get_method("peer")(peer_request(model, budget=100.0, grid=(0.25, 0.5, 0.75)))
    assert result.record["fraction"] == 0.75  # a budget of 100 points accepts everything
    assert "tried" not in result.record  # once, in the certificate
    assert set(result.plan.meta["tried"]) == {"0.50", "0.75"}  # bisection: the middle, then up
    assert result.plan.heads_kept == L * H - round(0.75 * L * H)
    # the budget report's view: every fraction measured, its metric, and whether it passed
    certificate = result.record["certificate"]
    assert certificate["split"] == "validation"
    assert certificate["evaluations"] == len(certificate["tried"]) == 2
    assert [f"{f:.2f}" for f, _, _ in certificate["tried"]] == sorted(result.plan.meta["tried"])
    assert all(ok for _, _, ok in certificate["tried"])
    assert certificate["student_seconds"] > 0
    assert certificate["search_drop"] == pytest.approx(
        result.record["validation_reference"] - result.record["validation_metric"]
    )


def test_a_student_trained_at_one_budget_is_read_back_at_another_and_at_its_fraction(
    tmp_path, monkeypatch
):
    import prunekit.methods.peer_distil as peer_distil

    trained = []
    distil = peer_distil._distil
    monkeypatch.setattr(
        peer_distil, "_distil", lambda *a, **k: trained.append(1) or distil(*a, **k)
    )
    model = tiny_model("bert")
    grid = (0.25, 0.5, 0.75)

    def run(**options):
        request = peer_request(model, **options)
        return get_method("peer")(replace(request, cache_dir=tmp_path))

    strict = run(budget=100.0, grid=grid)
    first = len(trained)  # bisection from the middle: 0.50, then 0.75
    loose = run(budget=200.0, grid=grid)
    assert len(trained) == first  # the same fractions, read back instead of trained again
    assert loose.record["reused_student"] and loose.plan == strict.plan
    for a, b in zip(loose.model.parameters(), strict.model.parameters(), strict=True):
        assert torch.equal(a, b)
    descending = run(budget=200.0, grid=grid, search="descend")  # 0.75 first: read back too
    assert len(trained) == first and descending.plan.kept_heads == strict.plan.kept_heads
    assert descending.record["certificate"]["evaluations"] == 1  # 0.75 passed at once
    assert descending.record["certificate"]["students_from_memo"] == 1
    assert strict.record["certificate"]["students_from_memo"] == 0
    assert loose.record["certificate"]["students_from_memo"] == first
    fixed = run(keep=L * H - round(0.75 * L * H))  # the same student as the 75% probe
    assert len(trained) == first and fixed.record["reused_student"]
    run(keep=L * H - round(0.75 * L * H), alpha_kd=0.5)  # other settings: trained anew
    assert len(trained) == first + 1
    # other examples of the same count (another --data-dir or --max-seq-length): anew too
    request = peer_request(model, keep=L * H - round(0.75 * L * H))
    other = [x | {"input_ids": x["input_ids"].roll(1)} for x in request.train_set]
    get_method("peer")(replace(request, cache_dir=tmp_path, train_set=other))
    assert len(trained) == first + 2


def test_head_importance_is_measured_once_per_model_and_seed_in_a_shared_cache(
    tmp_path, monkeypatch
):
    import prunekit.methods.peer as peer

    measured = []
    importance = peer._importance
    monkeypatch.setattr(
        peer, "_importance", lambda *a, **k: measured.append(importance(*a, **k)) or measured[-1]
    )
    model = tiny_model("bert")
    half, most = L * H - round(0.5 * L * H), L * H - round(0.75 * L * H)

    def run(keep, seed=0, cache=tmp_path):
        request = replace(peer_request(model, keep=keep), cache_dir=cache, seed=seed)
        return get_method("peer")(request)

    alone = run(half, cache=None)
    assert len(measured) == 1
    assert run(half).plan == alone.plan and len(measured) == 2  # the first in this cache
    run(most)
    assert len(measured) == 2  # another fraction reads the scores back
    run(most, seed=1)
    assert len(measured) == 3  # another seed draws other examples
    assert torch.equal(measured[0], measured[1])
    # as many examples, other inputs (another --data-dir or --max-seq-length): measured again
    other = unbatch({**BATCH, "input_ids": BATCH["input_ids"].flip(1)})
    request = replace(peer_request(model, keep=most), cache_dir=tmp_path, train_set=other)
    get_method("peer")(request)
    assert len(measured) == 4


def test_attention_map_similarity_is_one_on_the_diagonal_and_symmetric():
    model = tiny_model("bert", attn="eager")
    kept = [[h for h in range(H) if (layer, h) != (0, 1)] for layer in range(L)]
    apply_plan(model, PruningPlan.build(**{**current_plan(model).to_dict(), "kept_heads": kept}))
    similarity = attention_map_similarity(model, [BATCH])
    assert similarity.shape == (L, H, H)
    assert torch.isnan(similarity[0, 1]).all() and torch.isnan(similarity[0, :, 1]).all()
    kept = similarity[1]
    assert torch.allclose(torch.diagonal(kept), torch.ones(H), atol=1e-5)
    assert torch.allclose(kept, kept.T, atol=1e-6) and (kept <= 1 + 1e-5).all()


def test_the_pairing_loss_vanishes_for_a_head_paired_with_itself():
    model = tiny_model("bert", attn="eager")
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with torch.no_grad():
        maps = model(**inputs, output_attentions=True).attentions
    mask = inputs["attention_mask"]
    assert attention_pairing_loss(maps, maps, [(0, 2, 2), (1, 0, 0)], mask).item() == 0.0
    assert attention_pairing_loss(maps, maps, [(0, 2, 3)], mask).item() > 0.0


def test_pairing_matches_each_pruned_head_to_its_most_similar_retained_peer():
    model = tiny_model("bert")
    request = peer_request(model, keep=6, pairing_weight=0.1, epochs=1)
    result = get_method("peer")(request)
    plan, pairs = result.plan, result.record["pairs"]
    assert len(pairs) == L * H - 6  # one per pruned head (the dense teacher has them all)
    assert "pairing" in result.record["loss_curve"][-1]
    assert request.teacher.config._attn_implementation == model.config._attn_implementation
    eager = copy.deepcopy(request.teacher)
    eager.set_attn_implementation("eager")
    similarity = attention_map_similarity(eager, [BATCH])
    for layer, retained, pruned in pairs:
        assert retained in plan.kept_heads[layer] and pruned not in plan.kept_heads[layer]
        best = max(similarity[layer, pruned, r] for r in plan.kept_heads[layer])
        assert similarity[layer, pruned, retained] == best


def test_lossless_mode_keeps_the_requests_floor_and_never_tries_a_fraction_that_removes_nothing():
    model = apply_plan(
        tiny_model("bert"),
        current_plan(tiny_model("bert")).without_heads([(layer, 0) for layer in range(L)]),
    )  # 9 of 12 heads left: 25% of the original 12 would remove nothing more
    request = peer_request(model, budget=100.0, grid=(0.25, 0.5, 0.75))
    request = replace(request, target=replace(request.target, min_per_layer=2))
    result = get_method("peer")(request)
    certificate = result.record["certificate"]
    assert certificate["budget"] == 100.0
    # 0.25 removes nothing more, 0.75 (3 heads) breaks the floor of 2 per layer: only 0.5
    assert [f for f, _, _ in certificate["tried"]] == [0.5]
    assert result.plan.heads_kept == 6 and min(result.plan.heads_per_layer) >= 2


def test_a_one_step_run_trains_the_planned_mask(gate_values):
    """With a single training step the ramp has no room: the step must train the final mask
    the student is then cut to, not the unpruned one."""
    seen = gate_values
    model = tiny_model("bert")
    request = peer_request(model, keep=6)
    request.train_budget_steps = 1
    result = get_method("peer")(request)
    assert result.record["train_steps"] == 1
    assert seen and all(torch.equal(g, plan_gates(result.plan)) for g in seen)


def test_pairing_on_a_model_with_an_emptied_layer_reads_each_layers_own_maps(monkeypatch):
    """BERT returns no attention map for a layer without heads: later layers' maps must not
    shift onto it (a pair in the last layer would read past the end)."""
    from prunekit.methods import peer_distil

    model = tiny_model("bert")
    plan = current_plan(model)
    apply_plan(model, plan.without_heads([(1, h) for h in range(plan.num_heads)]))
    seen = []
    original = peer_distil.attention_pairing_loss

    def recording(student, teacher, pairs, mask):
        seen.append([tuple(m.shape[1] for m in maps) for maps in (student, teacher)])
        return original(student, teacher, pairs, mask)

    monkeypatch.setattr(peer_distil, "attention_pairing_loss", recording)
    result = get_method("peer")(peer_request(model, keep=5, pairing_weight=0.1, epochs=1))
    pairs = result.record["pairs"]
    assert pairs and all(layer != 1 for layer, _, _ in pairs) and 2 in {p[0] for p in pairs}
    assert seen and all(shapes == [(H, 0, H)] * 2 for shapes in seen)  # one entry per layer


def test_a_grid_with_nothing_to_search_is_refused_not_answered_with_the_dense_model():
    from prunekit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"option grid=\[30, 50\]: give fractions"):
        get_method("peer").parse_config({"grid": [30, 50]})  # percent, not fractions
    model = tiny_model("bert")
    # every fraction here keeps fewer heads than one a layer allows
    request = peer_request(model, budget=1.0, grid=(0.95,), min_heads_per_layer=1)
    with pytest.raises(ConfigError, match="no fraction of grid"):
        get_method("peer")(request)

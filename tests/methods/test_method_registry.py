"""Every registered method returns a valid plan of exactly the requested size, deterministically."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import PruningPlan, apply_plan, current_plan
from prunekit.data import get_task
from prunekit.errors import ConfigError
from prunekit.methods import (
    MethodConfig,
    PruneRequest,
    TrainingMethodConfig,
    get_method,
    head_target,
    list_methods,
    register_method,
    select_top_heads,
)
from prunekit.scoring.smp import HeadPruner, save_pruner

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def request(
    model, keep: int, per_layer: bool = False, seed: int = 0, name: str = ""
) -> PruneRequest:
    plan = current_plan(model)
    target = head_target(plan, keep_heads=keep, per_layer=per_layer)
    batch = {**tiny_batch(), "labels": torch.tensor([0, 1, 0])}
    return PruneRequest(
        model=model,
        plan=plan,
        target=target,
        seed=seed,
        batches=lambda: iter([batch]),
        train_set=unbatch(batch),
        collate=default_collate,
        task=get_task("rte"),
        teacher=copy.deepcopy(model) if name and get_method(name).needs_teacher else None,
        options=dict(FAST.get(name, {})),
    )


def model_for(name: str):
    """A tiny BERT with the attention implementation the method asks for (eager for maps)."""
    return tiny_model("bert", attn=get_method(name).attn_implementation)


def _untrained_pruner() -> str:
    directory = Path(tempfile.mkdtemp(prefix="smp-pruner-"))
    save_pruner(HeadPruner(), directory)
    return str(directory)


FAST = {
    "l0": {"steps": 20},
    "astar": {"max_evals": 60, "branching": 4},
    "smp": {"pruner": _untrained_pruner(), "max_examples": 3},
    "peer": {"epochs": 1, "batch_size": 4, "min_heads_per_layer": 0},
    "magnitude": {"epochs": 2, "batch_size": 2, "events": 2, "sparsity": 0.5},
    "movement": {"epochs": 2, "batch_size": 2, "events": 2, "sparsity": 0.5},
    "sparse-kd": {"epochs": 2, "batch_size": 2, "events": 2, "sparsity": 0.5},
}


HEAD_METHODS = [m for m in list_methods() if "heads" in get_method(m).targets]


@pytest.mark.parametrize("name", HEAD_METHODS)
@pytest.mark.parametrize("keep", [1, 5, 11])
def test_methods_hit_the_exact_head_count(name, keep):
    model = model_for(name)
    plan = get_method(name)(request(model, keep, name=name)).plan
    assert plan.heads_kept == keep
    assert plan.method == name
    apply_plan(model, plan)  # the plan is valid for surgery


@pytest.mark.parametrize("name", list_methods())
def test_methods_are_deterministic_for_a_seed(name):
    model = model_for(name)
    first = get_method(name)(request(model, 6, seed=4, name=name)).plan
    second = get_method(name)(request(model, 6, seed=4, name=name)).plan
    assert first.kept_heads == second.kept_heads
    assert first.masks.keys() == second.masks.keys()
    assert all(torch.equal(first.masks[k], second.masks[k]) for k in first.masks)


@pytest.mark.parametrize("name", [m for m in list_methods() if get_method(m).per_layer])
def test_per_layer_mode_keeps_the_same_count_everywhere(name):
    plan = get_method(name)(request(model_for(name), 6, per_layer=True, name=name)).plan
    assert plan.heads_per_layer == [2, 2, 2]


def test_random_depends_on_the_seed():
    model = tiny_model("bert")
    plans = {get_method("random")(request(model, 6, seed=s)).plan.kept_heads for s in range(5)}
    assert len(plans) > 1


def test_methods_only_choose_heads_the_model_still_has():
    model = tiny_model("bert")
    apply_plan(
        model,
        PruningPlan.build(
            num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 1], [2], [1, 2, 3]]
        ),
    )
    for seed in range(5):
        plan = get_method("random")(request(model, 4, seed=seed)).plan
        assert plan.is_subset_of(current_plan(model))


def test_select_top_heads_honours_the_per_layer_floor():
    scores = torch.tensor([[9.0, 8, 7, 6], [5, 4, 3, 2], [0.1, 0.2, 0.3, 0.4]])
    plan = PruningPlan.dense(L, H, F)
    target = head_target(plan, keep_heads=6, min_per_layer=1)
    chosen = select_top_heads(scores, plan, target)
    assert chosen.kept_heads == ((0, 1, 2, 3), (0,), (3,))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"heads": 1.0}, r"\[0, 1\)"),
        ({"heads": 0.5, "keep_heads": 3}, "exactly one"),
        ({}, "exactly one"),
        ({"keep_heads": 0}, "cannot keep 0"),
        ({"keep_heads": 13}, "cannot keep 13"),
        ({"keep_heads": 5, "per_layer": True}, "divisible by 3"),
    ],
)
def test_bad_targets_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        head_target(PruningPlan.dense(L, H, F), **kwargs)


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_method("random", config=MethodConfig, summary="")(lambda request, config: None)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match="random"):
        get_method("oracle")


def test_astar_rejects_per_layer_targets():
    with pytest.raises(ConfigError, match="per-layer"):
        get_method("astar")(request(tiny_model("bert"), 6, per_layer=True, name="astar"))


TRAINING_METHODS = [
    m for m in list_methods() if issubclass(get_method(m).config, TrainingMethodConfig)
]


def test_every_method_that_trains_weights_offers_the_loop_options():
    trains = {m for m in list_methods() if get_method(m).trains_weights}
    assert trains <= set(TRAINING_METHODS) and "l0" in TRAINING_METHODS


@pytest.mark.parametrize("name", TRAINING_METHODS)
def test_loop_options_reach_the_training_loop(name, monkeypatch):
    seen = []
    original = PruneRequest.train

    def spy(self, model, config, *args, **kwargs):
        seen.append(config)
        return original(self, model, config, *args, **kwargs)

    monkeypatch.setattr(PruneRequest, "train", spy)
    req = request(model_for(name), keep=6, name=name)
    req.options.update(group_by_length=True, precision="bf16")
    get_method(name)(req)
    assert seen and all(c.group_by_length and c.precision == "bf16" for c in seen)


def test_per_layer_fractions_remove_the_floor_of_h_times_r_in_every_layer():
    """methods.md §1: 0.3 of 12 heads is 3 per layer (the rounded share of all 72, 22, does
    not divide by 6 layers and was refused)."""
    from prunekit import PruningPlan

    plan = PruningPlan.dense(6, 12, 1536)
    assert head_target(plan, heads=0.3, per_layer=True).keep == 6 * 9
    assert head_target(plan, heads=0.5, per_layer=True).keep == 6 * 6
    assert head_target(plan, heads=0.7, per_layer=True).keep == 6 * 4  # floor(8.4), not 9
    assert head_target(plan, heads=0.3).keep == 72 - 22  # global: the rounded share
    with pytest.raises(ConfigError, match=r"removes no head of a layer of 12; ask for at least"):
        head_target(plan, heads=0.05, per_layer=True)  # floor(0.6) = 0: nothing would go


@pytest.mark.parametrize(
    "method, options, fragment",
    [
        ("magnitude", {"temperature": 4.0}, "temperature is read only with distill"),
        ("movement", {"alpha_kd": 0.9}, "alpha_kd is read only with distill"),
        ("hisp", {"step_fraction": 0.2}, "step_fraction is read only with iterative"),
        ("l0", {"weight_lr": 1e-4}, "weight_lr is read only with train_weights"),
        ("sparse-kd", {"augment_candidates": 5}, "augment_candidates is read only with augment"),
        ("peer", {"pairing_examples": 64}, "pairing_examples is read only with pairing_weight"),
    ],
)
def test_a_setting_its_switch_leaves_unread_is_refused(method, options, fragment):
    info = get_method(method)
    with pytest.raises(ConfigError, match=fragment):
        info.parse_config(options)
    switch = fragment.rsplit(" ", 1)[-1]
    on = {"augment": 2, "pairing_weight": 0.5}.get(switch, True)
    info.parse_config(options | {switch: on})  # read with its switch on
    defaults = info.config().model_dump()
    info.parse_config(defaults)  # a run dir's recorded settings, defaults filled in, replay


def test_magnitude_and_movement_ask_for_a_teacher_only_with_their_kd():
    for method in ("magnitude", "movement"):
        info = get_method(method)
        assert not info.uses_teacher({}) and info.uses_teacher({"distill": True})
    assert get_method("sparse-kd").uses_teacher({})  # its KD is always on
    assert not get_method("hisp").uses_teacher({})


@pytest.mark.parametrize(
    "method, setting, mode",
    [
        (method, setting, mode)
        for method in ("astar", "peer")
        for setting, mode in get_method(method).config.read_only_in_mode.items()
    ],
)
def test_a_setting_of_one_count_mode_is_refused_only_where_no_run_reads_it(method, setting, mode):
    info = get_method(method)
    other = {
        "budget": 1.0,
        "budget_search": "per-k",
        "successors_per_step": 2,
        "start": "empty",
        "complete": "ablation",
        "grid": (0.3, 0.6),
        "search": "descend",
    }
    options = {setting: other[setting]}
    assert info.config(**options) != info.config()  # a value other than the default
    reads = {"counted": mode == "count", "deciding": mode == "budget"}
    info.check_modes(options, **reads)
    info.check_modes(options, counted=True, deciding=True)  # compare with --heads and --budgets
    info.check_modes({}, counted=not reads["counted"], deciding=not reads["deciding"])
    with pytest.raises(ConfigError, match=rf"{method}: (--)?{setting} "):
        info.check_modes(options, counted=not reads["counted"], deciding=not reads["deciding"])

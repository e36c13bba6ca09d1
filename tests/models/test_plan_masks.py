"""Unstructured masks in a plan: validation, composition, files, surgery and accounting."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan, current_plan, model_stats
from prunekit.errors import PlanError
from prunekit.models import get_adapter
from prunekit.models.surgery import reapply_masks
from prunekit.plan import MASK_SLOTS

L, H, F, D = TINY["layers"], TINY["heads"], TINY["ffn"], TINY["hidden"]
SHAPES = {
    "query": (D, D),
    "key": (D, D),
    "value": (D, D),
    "attn_out": (D, D),
    "ffn_in": (F, D),
    "ffn_out": (D, F),
}
DENSE = PruningPlan.dense(L, H, F)
HEADS = PruningPlan.build(
    num_layers=L,
    num_heads=H,
    intermediate_size=F,
    kept_heads=[[0, 2, 3], [], [1, 2]],
    kept_ffn=[list(range(0, F, 3)), None, list(range(5, F))],
)


def random_masks(seed: int, keys: list[str] | None = None, density: float = 0.6) -> dict:
    generator = torch.Generator().manual_seed(seed)
    keys = keys or [f"{layer}.{slot}" for layer in range(L) for slot in MASK_SLOTS]
    return {
        key: torch.rand(SHAPES[key.split(".")[1]], generator=generator) < density for key in keys
    }


def zero_dense(model, masks: dict) -> None:
    """The reference: zero the dense model's weights directly, without any plan."""
    adapter = get_adapter(model)
    with torch.no_grad():
        for key, mask in masks.items():
            layer, slot = key.split(".")
            weight = getattr(adapter.layer_modules(model, int(layer)), slot).get().weight
            weight[~mask] = 0.0


# ---------------------------------------------------------------------------- the plan


def test_plan_without_masks_has_none():
    assert DENSE.masks == {} and DENSE.sparse_masks is None
    assert DENSE.with_masks({}) == DENSE


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({"0.q": torch.ones(D, D, dtype=torch.bool)}, "not '<layer>.<slot>'"),
        ({"query": torch.ones(D, D, dtype=torch.bool)}, "not '<layer>.<slot>'"),
        ({"3.query": torch.ones(D, D, dtype=torch.bool)}, "layer 3; the plan has 3"),
        ({"0.query": torch.ones(D, D)}, "bool tensor, got Tensor torch.float32"),
        ({"0.query": torch.ones(D, dtype=torch.bool)}, "2-D bool"),
        ({"0.ffn_in": torch.ones(F + 1, D, dtype=torch.bool)}, r"shape \[38, 32\]"),
        ({"0.query": torch.ones(D + 2, D, dtype=torch.bool)}, "4 heads"),
        (
            {
                "0.query": torch.ones(D, D, dtype=torch.bool),
                "0.ffn_in": torch.ones(F, D + 4, dtype=torch.bool),
            },
            "other masks",
        ),
    ],
)
def test_invalid_masks_get_one_line_errors(masks, message):
    with pytest.raises(PlanError, match=message) as info:
        DENSE.with_masks(masks)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "name", ["../masks.safetensors", "sub/m.safetensors", "m.pt", ".m.safetensors"]
)
def test_masks_file_name_must_be_a_plain_safetensors_name(name):
    with pytest.raises(PlanError, match="plain"):
        DENSE.with_masks(random_masks(0, ["0.query"]), name)
    with pytest.raises(PlanError, match="sparse_masks"):
        PruningPlan.build(**DENSE.to_dict(), sparse_masks=name)


def test_masks_are_kept_in_layer_order_and_compared_by_value():
    masks = random_masks(1, ["2.ffn_out", "0.key", "0.query"])
    plan = DENSE.with_masks(masks)
    assert list(plan.masks) == ["0.query", "0.key", "2.ffn_out"]
    assert plan.sparse_masks == "masks.safetensors"
    assert plan == DENSE.with_masks({k: v.clone() for k, v in masks.items()})
    flipped = {**masks, "0.key": ~masks["0.key"]}
    assert plan != DENSE.with_masks(flipped)
    assert plan != DENSE


def test_model_copy_keeps_the_masks():
    plan = DENSE.with_masks(random_masks(2, ["1.value"]))
    copied = plan.model_copy(update={"method": "x", "meta": {"seed": 1}})
    assert torch.equal(copied.masks["1.value"], plan.masks["1.value"])
    assert copied.model_copy(deep=True).masks.keys() == {"1.value"}
    assert plan.without_masks() == DENSE


def test_then_ands_masks_and_names_a_file():
    first = HEADS.with_masks(random_masks(3, ["0.query", "1.ffn_in"]))
    second = DENSE.with_masks(random_masks(4, ["0.query", "2.attn_out"]), "later.safetensors")
    both = first.then(second)
    assert both.kept_heads == HEADS.kept_heads and both.kept_ffn == HEADS.kept_ffn
    assert both.sparse_masks == "masks.safetensors"
    assert torch.equal(both.masks["0.query"], first.masks["0.query"] & second.masks["0.query"])
    assert torch.equal(both.masks["1.ffn_in"], first.masks["1.ffn_in"])  # missing = all kept
    assert torch.equal(both.masks["2.attn_out"], second.masks["2.attn_out"])
    assert HEADS.then(second).sparse_masks == "later.safetensors"
    assert HEADS.then(DENSE).sparse_masks is None


def test_is_subset_of_compares_masks_elementwise():
    loose = DENSE.with_masks(random_masks(5, ["0.query"], density=0.8))
    tight = loose.then(DENSE.with_masks(random_masks(6, ["0.query", "1.key"])))
    assert tight.is_subset_of(loose) and tight.is_subset_of(DENSE)
    assert not loose.is_subset_of(tight)
    assert not DENSE.is_subset_of(loose)  # a missing mask keeps everything
    assert DENSE.is_subset_of(loose, masks=False)
    all_kept = DENSE.with_masks({"0.query": torch.ones(D, D, dtype=torch.bool)})
    assert DENSE.is_subset_of(all_kept) and all_kept.is_subset_of(DENSE)


def test_plan_write_read_round_trip_with_masks(tmp_path):
    plan = HEADS.with_masks(random_masks(7), "sparsity.safetensors")
    plan.write(tmp_path / "plan.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "sparsity.safetensors"]
    assert json.loads((tmp_path / "plan.json").read_text())["sparse_masks"] == (
        "sparsity.safetensors"
    )
    again = PruningPlan.read(tmp_path / "plan.json")
    assert again == plan
    assert all(m.dtype == torch.bool for m in again.masks.values())


def test_plan_naming_a_missing_masks_file_is_a_plan_error(tmp_path):
    HEADS.with_masks(random_masks(8, ["0.query"])).write(tmp_path / "plan.json")
    (tmp_path / "masks.safetensors").unlink()
    with pytest.raises(PlanError, match="names masks file 'masks.safetensors' but .* not exist"):
        PruningPlan.read(tmp_path / "plan.json")
    (tmp_path / "masks.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(PlanError, match="corrupt") as info:
        PruningPlan.read(tmp_path / "plan.json")
    assert "\n" not in str(info.value)


def test_plan_from_json_alone_does_not_pretend_to_have_no_masks():
    text = HEADS.with_masks(random_masks(9, ["0.query"])).to_json()
    plan = PruningPlan.from_json(text)
    assert plan.sparse_masks == "masks.safetensors"
    with pytest.raises(PlanError, match="not loaded"):
        _ = plan.masks


# ---------------------------------------------------------------------------- surgery


def test_apply_plan_zeroes_masked_weights(family):
    model = tiny_model(family)
    masks = random_masks(10)
    reference = copy.deepcopy(model)
    zero_dense(reference, masks)
    apply_plan(model, DENSE.with_masks(masks))
    for (name, got), (_, want) in zip(
        model.state_dict().items(), reference.state_dict().items(), strict=True
    ):
        assert torch.equal(got, want), name
    batch = tiny_batch()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reference(**batch).logits)
    assert current_plan(model) == DENSE.with_masks(masks)


def test_masks_on_a_head_pruned_model_equal_zeroing_then_pruning(family):
    masks = random_masks(11)
    expected = tiny_model(family)
    zero_dense(expected, masks)
    apply_plan(expected, HEADS)

    model = apply_plan(tiny_model(family), HEADS)  # heads and FFN first, masks later
    apply_plan(model, HEADS.with_masks(masks))
    for (name, got), (_, want) in zip(
        model.state_dict().items(), expected.state_dict().items(), strict=True
    ):
        assert torch.equal(got, want), name
    assert current_plan(model).masks.keys() == masks.keys()


def test_masks_compose_across_apply_plan_calls():
    first, second = random_masks(12), random_masks(13, ["0.query", "2.ffn_out"])
    model = apply_plan(tiny_model("bert"), DENSE.with_masks(first))
    apply_plan(model, HEADS)  # a plan without masks keeps the model's masks
    apply_plan(model, HEADS.with_masks(second))
    plan = current_plan(model)
    assert plan.masks.keys() == first.keys()
    assert torch.equal(plan.masks["0.query"], first["0.query"] & second["0.query"])
    reference = tiny_model("bert")
    zero_dense(reference, plan.masks)
    apply_plan(reference, HEADS)
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, reference(**tiny_batch()).logits)


def test_reapply_masks_zeroes_weights_that_training_moved():
    model = apply_plan(tiny_model("bert"), HEADS.with_masks(random_masks(14)))
    zeros = {k: (v == 0) for k, v in model.state_dict().items()}
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5)
    assert reapply_masks(model) > 0
    weight = get_adapter(model).layer_modules(model, 0).query.get().weight
    assert torch.equal(weight == 0, zeros["bert.encoder.layer.0.attention.self.query.weight"])
    assert reapply_masks(tiny_model("bert")) == 0


def test_mask_of_the_wrong_model_width_is_rejected():
    plan = DENSE.with_masks({"0.ffn_in": torch.ones(F, 2 * D, dtype=torch.bool)})
    with pytest.raises(PlanError, match=r"'0.ffn_in' has shape \[37, 64\] .* \[37, 32\]"):
        apply_plan(tiny_model("bert"), plan)


def test_current_plan_of_a_bare_config_names_masks_it_cannot_hold():
    model = apply_plan(tiny_model("bert"), DENSE.with_masks(random_masks(15, ["1.key"])))
    assert current_plan(model).masks.keys() == {"1.key"}
    with pytest.raises(PlanError, match="not loaded"):
        _ = current_plan(model.config).masks


# ---------------------------------------------------------------------------- accounting


def test_model_stats_count_nonzero_parameters_and_macs(family):
    model = apply_plan(tiny_model(family), HEADS)
    before = model_stats(model, seq_len=16)
    assert before.encoder_macs_nonzero == before.encoder_macs  # random weights: no zeros
    masks = random_masks(16)
    apply_plan(model, HEADS.with_masks(masks))
    after = model_stats(model, seq_len=16)
    plan = current_plan(model)
    head_size = get_adapter(model).head_size(model.config)
    dropped = 0
    for key, mask in masks.items():
        layer, slot = key.split(".")
        heads = plan.kept_heads[int(layer)]
        rows = torch.tensor([h * head_size + i for h in heads for i in range(head_size)])
        ffn = torch.tensor(plan.ffn_kept(int(layer)))
        if slot in ("query", "key", "value"):
            mask = mask[rows] if heads else mask[:0]
        elif slot == "attn_out":
            mask = mask[:, rows] if heads else mask[:, :0]
        elif slot == "ffn_in":
            mask = mask[ffn]
        else:
            mask = mask[:, ffn]
        dropped += int((~mask).sum())
    assert after.parameters == before.parameters  # dense sizes do not change
    assert after.parameters_nonzero == before.parameters_nonzero - dropped
    assert after.encoder_macs == before.encoder_macs  # masks zero MACs, they remove none
    assert after.encoder_macs_nonzero == before.encoder_macs - 16 * dropped
    assert {"parameters_nonzero", "encoder_macs_nonzero"} <= after.to_dict().keys()


def test_without_heads_drops_exactly_the_named_pairs():
    plan = PruningPlan.dense(num_layers=2, num_heads=4, intermediate_size=8)
    smaller = plan.without_heads([(0, 1), (1, 3), (1, 0)])
    assert smaller.kept_heads == ((0, 2, 3), (1, 2))
    # original head indices: a pair the plan no longer keeps changes nothing
    assert smaller.without_heads([(0, 1)]).kept_heads == smaller.kept_heads
    assert plan.kept_heads == ((0, 1, 2, 3), (0, 1, 2, 3))  # the plan itself is unchanged


def test_masks_written_with_another_plan_are_refused(tmp_path):
    """A kill between the masks file's rename and plan.json's leaves a new masks file beside
    the old plan: reading must say so, not load the other plan's masks."""
    old = HEADS.with_masks(random_masks(12, ["0.query"]))
    old.write(tmp_path / "plan.json")
    new = DENSE.with_masks(random_masks(13, ["0.query"]))
    new.write_masks(tmp_path)  # ... and the process died before plan.json was replaced
    with pytest.raises(PlanError, match="written with another plan") as info:
        PruningPlan.read(tmp_path / "plan.json")
    assert "\n" not in str(info.value)
    new.write(tmp_path / "plan.json")
    assert torch.equal(
        PruningPlan.read(tmp_path / "plan.json").masks["0.query"], new.masks["0.query"]
    )


def test_masks_of_a_plan_with_metadata_pair_after_a_round_trip(tmp_path):
    plan = HEADS.with_masks(random_masks(14, ["1.key"]))
    plan = plan.model_copy(update={"meta": {"z": 1.5, "a": [1, 2], "nan": float("nan")}})
    plan.write(tmp_path / "plan.json")
    assert PruningPlan.read(tmp_path / "plan.json").masks.keys() == {"1.key"}

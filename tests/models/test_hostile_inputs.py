"""Malformed or hostile model directories, plans and compact files: each is a one-line prunekit
error naming the problem, never a traceback from inside transformers, numpy or torch; and
what was stored reloads bit for bit (-0.0 included)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import tiny_model, word_tokenizer

from prunekit import PruningPlan, apply_plan, current_plan, load, save
from prunekit.data import get_task
from prunekit.errors import ModelLoadError, PlanError
from prunekit.files import unpack_bits
from prunekit.models.sources import load_for_task, recorded_task
from prunekit.models.sparse_storage import read_sparse, write_sparse


@pytest.fixture
def saved(tmp_path):
    return save(tiny_model("bert"), tmp_path / "m")


def edit_config(directory, edit) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("field, value", [("hidden_size", "32"), ("num_hidden_layers", None)])
def test_a_config_field_of_the_wrong_type_is_a_load_error(saved, field, value):
    edit_config(saved, lambda c: c.__setitem__(field, value))
    with pytest.raises(ModelLoadError, match=f"cannot read .*config.json.*{field}"):
        load(saved)


def test_a_plan_section_that_is_not_a_mapping_is_a_load_error(saved):
    edit_config(saved, lambda c: c["prunekit"].__setitem__("plan", []))
    with pytest.raises(ModelLoadError, match="section has no plan; corrupt"):
        load(saved)


@pytest.mark.parametrize(
    "pruned, message",
    [
        ([0], "pruned_heads is list, not a mapping"),
        ({"-1": [0]}, "names layer '-1'"),  # would have indexed the last layer
        ({"0": [9]}, "names layer '0' with heads \\[9\\]"),  # was ignored
    ],
)
def test_transformers_4_pruned_heads_are_checked(saved, pruned, message):
    def v4(config):
        del config["prunekit"]
        config["pruned_heads"] = pruned

    edit_config(saved, v4)
    with pytest.raises(ModelLoadError, match=message):
        load(saved)


def test_an_architecture_of_another_model_type_is_a_load_error(saved):
    edit_config(saved, lambda c: c.__setitem__("architectures", ["GPT2ForSequenceClassification"]))
    with pytest.raises(ModelLoadError, match="names GPT2ForSequenceClassification .*gpt2.* bert"):
        load(saved)


def test_a_matching_architecture_after_another_types_is_used(saved):
    names = ["GPT2ForSequenceClassification", "BertForSequenceClassification"]
    edit_config(saved, lambda c: c.__setitem__("architectures", names))
    assert type(load(saved)).__name__ == "BertForSequenceClassification"


def test_a_plain_checkpoint_for_another_label_count_is_a_load_error(tmp_path):
    tiny_model("bert", num_labels=3).save_pretrained(tmp_path / "plain")
    word_tokenizer().save_pretrained(tmp_path / "plain")
    with pytest.raises(ModelLoadError, match="predicts 3 labels but task sst2 needs 2"):
        load_for_task(str(tmp_path / "plain"), get_task("sst2"))
    edit_config(tmp_path / "plain", lambda c: c.__setitem__("architectures", 5))
    # not a list: no classifier check of its own, transformers' size error in one line
    with pytest.raises(ModelLoadError, match="do not fit a model for sst2"):
        load_for_task(str(tmp_path / "plain"), get_task("sst2"))


def test_a_config_that_is_not_an_object_is_a_load_error(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="holds a JSON list, not a config object"):
        recorded_task(tmp_path / "m")


def test_a_binary_plan_file_is_a_plan_error(tmp_path):
    (tmp_path / "plan.json").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(PlanError, match="not a plan \\(not UTF-8 text\\)"):
        PruningPlan.read(tmp_path / "plan.json")


def test_packed_bits_are_checked_before_unpacking():
    mask = torch.rand(5, 7) < 0.5
    packed = torch.from_numpy(np.packbits(mask.flatten().numpy()))
    assert torch.equal(unpack_bits(packed, (5, 7), "m"), mask)
    # numpy would pad the short array with zeros: a truncated file's tail would load as dropped
    with pytest.raises(ValueError, match="m: 4 torch.uint8 values do not pack the 35 bits"):
        unpack_bits(packed[:4], (5, 7), "m")
    with pytest.raises(ValueError, match="do not pack"):  # a hostile shape: no allocation
        unpack_bits(packed, (10**6, 10**6), "m")
    with pytest.raises(ValueError, match="do not pack"):
        unpack_bits(packed.to(torch.int32), (5, 7), "m")
    with pytest.raises(ValueError, match="negative shape"):
        unpack_bits(packed, (-5, -7), "m")


def test_a_truncated_masks_file_is_a_load_error(tmp_path):
    model = tiny_model("bert")
    plan = current_plan(model)
    weight = model.bert.encoder.layer[0].attention.self.query.weight
    directory = save(
        apply_plan(model, plan.with_masks({"0.query": torch.rand(weight.shape) < 0.5})),
        tmp_path / "m",
    )
    masks_file = next(directory.glob("*masks*.safetensors"))
    stored = safetensors.torch.load_file(str(masks_file))
    key = next(k for k in stored if not k.endswith("::shape"))
    stored[key] = stored[key][:-1].clone()
    safetensors.torch.save_file(stored, str(masks_file))
    with pytest.raises(ModelLoadError, match="do not pack"):
        load(directory)


def test_negative_zeros_reload_bit_for_bit(tmp_path):
    tensor = torch.tensor([[0.0, -0.0, 1.5], [-0.0, 0.0, -2.0]])
    write_sparse(tmp_path / "s.safetensors", {"a": tensor})
    again = read_sparse(tmp_path / "s.safetensors")["a"]
    assert torch.equal(torch.signbit(again), torch.signbit(tensor)) and torch.equal(again, tensor)


def test_the_model_card_says_whether_stock_loading_reads_the_directory(tmp_path):
    dense = save(tiny_model("bert"), tmp_path / "dense")
    assert "stock `from_pretrained` reads it too" in (dense / "README.md").read_text()
    plan = current_plan(tiny_model("bert"))
    cut = plan.model_copy(update={"kept_heads": ((0, 1), (0, 1, 2, 3), (0, 1, 2, 3))})
    pruned = save(apply_plan(tiny_model("bert"), cut), tmp_path / "cut")
    assert (
        "physically smaller, so stock `from_pretrained` refuses"
        in (pruned / "README.md").read_text()
    )

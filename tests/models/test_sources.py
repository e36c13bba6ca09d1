"""Loading models for a task (labels follow the task) and plain Hugging Face folders whose
config names a head the weights do not hold."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import transformers
from conftest import tiny_batch, tiny_config, tiny_model, word_tokenizer

from prunekit import load, save
from prunekit.data import get_task
from prunekit.errors import ModelLoadError
from prunekit.models.sources import load_for_task

NLI = {0: "entailment", 1: "not_entailment"}


def saved_with_labels(tmp_path, id2label: dict[int, str], num_labels: int = 2):
    model = tiny_model("bert", num_labels=num_labels)
    model.config.id2label = id2label
    model.config.label2id = {name: i for i, name in id2label.items()}
    model.config.finetuning_task = "rte"
    return save(model, tmp_path / "m", tokenizer=word_tokenizer()), model


# ---------------------------------------------------------------------------- task labels


def test_a_model_from_another_task_takes_the_new_tasks_labels(tmp_path, caplog):
    path, original = saved_with_labels(tmp_path, NLI)
    with caplog.at_level(logging.WARNING, logger="prunekit.models.sources"):
        model, _ = load_for_task(path, get_task("sst2"))
    assert model.config.id2label == {0: "0", 1: "1"}
    assert model.config.label2id == {"0": 0, "1": 1}
    assert "relabelled for task sst2" in caplog.text and "entailment" in caplog.text
    with torch.no_grad():  # only the names change, never the weights
        assert torch.equal(model(**tiny_batch()).logits, original(**tiny_batch()).logits)


def test_relabelled_names_survive_save_and_load(tmp_path):
    path, _ = saved_with_labels(tmp_path, NLI)
    model, tokenizer = load_for_task(path, get_task("sst2"))
    save(model, tmp_path / "again", tokenizer=tokenizer)
    config = json.loads((tmp_path / "again" / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"}


def test_matching_labels_load_silently(tmp_path, caplog):
    path, _ = saved_with_labels(tmp_path, NLI)
    with caplog.at_level(logging.INFO, logger="prunekit.models.sources"):
        model, _ = load_for_task(path, get_task("rte"))
    assert model.config.id2label == NLI
    assert "relabelled" not in caplog.text


def test_placeholder_labels_are_renamed_without_a_warning(tmp_path, caplog):
    path, _ = saved_with_labels(tmp_path, {0: "LABEL_0", 1: "LABEL_1"})
    with caplog.at_level(logging.INFO, logger="prunekit.models.sources"):
        model, _ = load_for_task(path, get_task("qnli"))
    assert model.config.id2label == NLI
    assert [r.levelno for r in caplog.records if "relabelled" in r.message] == [logging.INFO]


def test_regression_keeps_transformers_single_label_name(tmp_path):
    path, _ = saved_with_labels(tmp_path, {0: "similarity"}, num_labels=1)
    model, _ = load_for_task(path, get_task("stsb"))
    assert model.config.id2label == {0: "LABEL_0"} and model.config.num_labels == 1


def test_a_different_label_count_is_still_an_error(tmp_path):
    path, _ = saved_with_labels(tmp_path, NLI)
    with pytest.raises(ModelLoadError, match="predicts 2 labels but task mnli needs 3"):
        load_for_task(path, get_task("mnli"))


@pytest.mark.parametrize("plain", [True, False])
def test_a_model_with_the_tasks_labels_in_another_order_predicts_in_the_tasks_order(
    tmp_path, caplog, plain
):
    """roberta-large-mnli orders MNLI contradiction, neutral, entailment; prunekit's MNLI
    labels (the GLUE files') are contradiction, entailment, neutral: output i must mean the
    task's label i, as a plain Hugging Face folder and as a prunekit one."""
    theirs = {0: "CONTRADICTION", 1: "NEUTRAL", 2: "ENTAILMENT"}
    original = tiny_model("bert", num_labels=3)
    original.config.id2label = theirs
    original.config.label2id = {name: i for i, name in theirs.items()}
    if plain:
        original.save_pretrained(tmp_path / "m")
        word_tokenizer().save_pretrained(tmp_path / "m")
        path = tmp_path / "m"
    else:
        path = save(original, tmp_path / "m", tokenizer=word_tokenizer())
    with caplog.at_level(logging.WARNING, logger="prunekit.models.sources"):
        model, _ = load_for_task(path, get_task("mnli"))
    assert model.config.id2label == {0: "contradiction", 1: "entailment", 2: "neutral"}
    assert "reordered" in caplog.text
    with torch.no_grad():
        ours, before = model(**tiny_batch()).logits, original(**tiny_batch()).logits
    assert torch.allclose(ours, before[:, [0, 2, 1]], atol=1e-6)


# ---------------------------------------------------------------------------- absent heads


def bare_mpnet_named_as(tmp_path, architecture: str):
    """What sentence-transformers folders hold: encoder weights, a config naming a head."""
    torch.manual_seed(0)
    bare = transformers.MPNetModel(tiny_config("mpnet")).eval()
    bare.save_pretrained(tmp_path / "st")
    config_path = tmp_path / "st" / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = [architecture]
    config_path.write_text(json.dumps(config))
    return tmp_path / "st", bare


def test_an_absent_masked_lm_head_is_dropped_not_invented(tmp_path, caplog):
    path, bare = bare_mpnet_named_as(tmp_path, "MPNetForMaskedLM")
    with caplog.at_level(logging.WARNING, logger="prunekit.models.checkpoint"):
        model = load(path)
    assert type(model) is transformers.MPNetModel
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in bare.parameters())
    assert model.prunekit_dropped_modules == ["lm_head"]
    assert model.prunekit_new_modules == []
    assert "MPNetForMaskedLM" in caplog.text and "lm_head" in caplog.text
    batch = tiny_batch()
    with torch.no_grad():
        assert torch.equal(model(**batch).last_hidden_state, bare(**batch).last_hidden_state)


def test_a_stored_masked_lm_head_is_kept(tmp_path):
    torch.manual_seed(0)
    transformers.MPNetForMaskedLM(tiny_config("mpnet")).save_pretrained(tmp_path / "mlm")
    model = load(tmp_path / "mlm")
    assert type(model) is transformers.MPNetForMaskedLM
    assert model.prunekit_dropped_modules == [] and model.prunekit_new_modules == []


def test_a_missing_classifier_is_reported_as_randomly_initialised(tmp_path, caplog):
    path, _ = bare_mpnet_named_as(tmp_path, "MPNetForSequenceClassification")
    with caplog.at_level(logging.WARNING, logger="prunekit.models.checkpoint"):
        model = load(path)
    assert type(model) is transformers.MPNetForSequenceClassification
    assert model.prunekit_dropped_modules == []
    assert model.prunekit_new_modules == ["classifier.dense", "classifier.out_proj"]
    assert "randomly initialised" in caplog.text


def test_labels_that_differ_only_in_case_are_renamed_without_a_reorder(tmp_path, caplog):
    path, original = saved_with_labels(tmp_path, {0: "ENTAILMENT", 1: "NOT_ENTAILMENT"})
    with caplog.at_level(logging.INFO, logger="prunekit.models.sources"):
        model, _ = load_for_task(path, get_task("rte"))
    assert model.config.id2label == NLI and "reordered" not in caplog.text
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, original(**tiny_batch()).logits)


# ---------------------------------------------------------------------------- hub ids


def test_a_pruned_model_on_the_hub_loads_from_its_downloaded_folder(tmp_path, monkeypatch):
    from conftest import uneven_plan

    import prunekit.models.sources as sources
    from prunekit import apply_plan, current_plan
    from prunekit.recipes.inspect import run_inspect

    model = tiny_model("bert")
    model.config.finetuning_task = "rte"
    apply_plan(model, uneven_plan(model))
    folder = save(model, tmp_path / "snapshot", tokenizer=word_tokenizer())
    asked = []

    def snapshot(repo_id, allow_patterns, ignore_patterns):
        asked.append((repo_id, allow_patterns))
        assert ignore_patterns == ["*/*"]  # the top level only
        return str(folder)

    monkeypatch.setattr(sources, "snapshot_download", snapshot)
    loaded, _ = load_for_task("someorg/pruned-bert", get_task("rte"))
    # stock from_pretrained cannot build these shapes: the folder loads as prunekit's
    assert current_plan(loaded).kept_heads == current_plan(model).kept_heads
    assert run_inspect("someorg/pruned-bert")["heads_total"] == current_plan(model).heads_kept
    assert asked[0][0] == "someorg/pruned-bert"
    assert not any(p.endswith(".bin") for p in asked[0][1])  # pickles are never fetched


def test_an_unreachable_hub_is_one_line_naming_the_fix(monkeypatch):
    import prunekit.models.sources as sources

    def offline(repo_id, allow_patterns, ignore_patterns):
        raise OSError("We couldn't connect to 'https://huggingface.co'\nmore detail")

    monkeypatch.setattr(sources, "snapshot_download", offline)
    with pytest.raises(ModelLoadError, match="cannot download model 'someorg/x'") as err:
        load_for_task("someorg/x", get_task("rte"))
    assert "\n" not in str(err.value) and "local model directory" in str(err.value)

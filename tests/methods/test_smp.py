"""The `smp` method: single-shot, label-free, per layer, and honest about its input."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import current_plan
from prunekit.data import get_task
from prunekit.errors import ConfigError
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.scoring.smp import HeadPruner, save_pruner

L, H = TINY["layers"], TINY["heads"]


@pytest.fixture(scope="module")
def pruner_dir(tmp_path_factory):
    torch.manual_seed(3)
    pruner = HeadPruner()
    pruner.reset_parameters(torch.Generator().manual_seed(3))
    with torch.no_grad():  # a pruner with opinions: random weights of a visible size
        for param in pruner.parameters():
            param.add_(torch.randn(param.shape) * 0.3)
    directory = tmp_path_factory.mktemp("pruner")
    save_pruner(pruner, directory)
    return str(directory)


def examples(labels):
    batch = tiny_batch(batch=6, seq=10)
    if labels is not None:
        batch["labels"] = labels
    return unbatch(batch)


def request(model, train_set, pruner_dir, per_layer=True, keep=6):
    plan = current_plan(model)
    return PruneRequest(
        model=model,
        plan=plan,
        target=head_target(plan, keep_heads=keep, per_layer=per_layer),
        seed=0,
        train_set=train_set,
        collate=default_collate,
        task=get_task("rte"),
        options={"pruner": pruner_dir, "batch_size": 4},
    )


def test_smp_reads_no_labels_and_is_deterministic(pruner_dir):
    model = tiny_model("bert", attn="eager")
    plans = [
        get_method("smp")(request(model, examples(labels), pruner_dir)).plan.kept_heads
        for labels in (torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([1, 1, 1, 0, 0, 0]), None)
    ]
    assert plans[0] == plans[1] == plans[2]
    assert all(len(kept) == H // 2 for kept in plans[0])  # per layer: the paper's setting


def test_smp_metadata_asks_for_eager_attention_and_pretrained_models():
    info = get_method("smp")
    assert info.attn_implementation == "eager" and info.prunes_pretrained
    assert info.needs_data == ("train",)


def test_smp_without_a_pruner_says_how_to_get_one():
    model = tiny_model("bert", attn="eager")
    with pytest.raises(ConfigError, match="train-pruner"):
        get_method("smp")(request(model, examples(None), None))


def test_smp_on_a_fine_tuned_model_says_so(pruner_dir, caplog):
    model = tiny_model("bert", attn="eager")
    model.config.finetuning_task = "rte"
    with caplog.at_level(logging.WARNING, logger="prunekit.methods.smp"):
        get_method("smp")(request(model, examples(None), pruner_dir))
    assert "fine-tuned on rte" in caplog.text

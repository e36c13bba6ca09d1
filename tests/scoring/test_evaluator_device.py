"""GatedEvaluator keeps the split, gates and caches on the model's device (CPU here)."""

from __future__ import annotations

import torch
from conftest import tiny_batch, tiny_model

from prunekit.data import get_task
from prunekit.scoring.evaluator import GatedEvaluator


def labelled():
    return [
        {**tiny_batch(batch=4, seq=9, seed=s), "labels": torch.tensor([0, 1, 1, 0])} for s in (1, 2)
    ]


def test_split_is_moved_once_and_labels_stay_on_the_host():
    model = tiny_model("bert")
    evaluator = GatedEvaluator(model, labelled(), get_task("rte"))
    assert evaluator.device == torch.device("cpu")
    assert all(v.device == evaluator.device for b in evaluator.batches for v in b.values())
    assert evaluator.labels.tolist() == [0, 1, 1, 0] * 2
    assert evaluator.gates_of(frozenset({(0, 1)})).device == torch.device("cpu")  # cache keys


def test_cached_and_uncached_metrics_agree_in_bfloat16():
    model = tiny_model("bert").to(torch.bfloat16)
    states = [frozenset(), frozenset({(2, 1)}), frozenset({(2, 1), (2, 3)})]
    plain = GatedEvaluator(model, labelled(), get_task("rte"), cache_bytes=0)
    cached = GatedEvaluator(model, labelled(), get_task("rte"), states_per_forward=1)
    cached.metrics(states[:1])  # fills the prefix cache the later states start from
    for a, b in zip(cached.logits(states), plain.logits(states), strict=True):
        assert (a == b).all()
    assert cached.stats.layer_forwards_saved > 0

"""Scorers that read attention maps (SMP, peer's head similarity) on a model with a layer left
without heads: transformers returns no map for that layer (BERT-style) or crashed (MPNet), so
the later layers' maps shifted onto it. Every family gets one map per layer, the emptied one
empty, and the scores of the other layers are those of the same heads in the unpruned model."""

from __future__ import annotations

import math

import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan
from prunekit.scoring.maps import attention_maps
from prunekit.scoring.similarity import attention_map_similarity
from prunekit.scoring.smp import PAIR, HeadPruner, head_scores

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]
KEPT = [[0, 2], [], [1, 2, 3]]


def emptied(family: str):
    plan = PruningPlan.build(num_layers=L, num_heads=H, intermediate_size=F, kept_heads=KEPT)
    full = tiny_model(family, attn="eager").eval()
    return full, apply_plan(tiny_model(family, attn="eager"), plan).eval()


def test_every_layer_gets_its_map_and_the_emptied_one_an_empty_map(family):
    full, pruned = emptied(family)
    batch = tiny_batch()
    with torch.no_grad():
        maps = attention_maps(pruned, batch)
        reference = attention_maps(full, batch)
    assert [m.shape[1] for m in maps] == [len(k) for k in KEPT]
    assert maps[1].shape == (3, 0, 11, 11)
    # layer 0 sees the same input in both models: its kept heads attend as in the unpruned one
    torch.testing.assert_close(maps[0], reference[0][:, KEPT[0]])


def test_smp_scores_a_model_with_an_emptied_layer(family):
    full, pruned = emptied(family)
    torch.manual_seed(0)
    pruner = HeadPruner()
    batch = tiny_batch()
    scores = head_scores(pruned, pruner, [batch], PAIR)
    assert scores.shape == (L, H)
    assert torch.all(scores[1] == 0)  # no heads, no scores
    assert torch.all(scores[0, KEPT[0]] > 0) and torch.all(scores[2, KEPT[2]] > 0)
    # layer 0 sees the same input in both models: its heads score as in the unpruned one
    torch.testing.assert_close(
        scores[0, KEPT[0]], head_scores(full, pruner, [batch], PAIR)[0, KEPT[0]]
    )


def test_head_similarity_of_a_model_with_an_emptied_layer(family):
    _, pruned = emptied(family)
    similarity = attention_map_similarity(pruned, [tiny_batch()])
    assert similarity.shape == (L, H, H)
    assert torch.isnan(similarity[1]).all()
    for layer, kept in enumerate(KEPT):
        for head in kept:
            assert math.isclose(float(similarity[layer, head, head]), 1.0, rel_tol=1e-4)

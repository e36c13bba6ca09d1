"""Pre-softmax attention scores rebuilt from the query and key projections: their softmax is the
attention a model returns, dense and pruned, and gradients reach the projections."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan
from prunekit.models.attention_scores import AttentionScores

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def check_softmax_is_the_returned_attention(model) -> None:
    batch = tiny_batch()
    with torch.no_grad(), AttentionScores(model) as recorder:
        returned = model(**batch, output_attentions=True).attentions
    scores = recorder.scores()
    assert len(scores) == len(returned)
    padded_keys = batch["attention_mask"][:, None, None, :] == 0
    for mine, theirs in zip(scores, returned, strict=True):
        assert mine.shape == theirs.shape
        probabilities = torch.softmax(mine.masked_fill(padded_keys, float("-inf")), dim=-1)
        assert torch.allclose(probabilities, theirs, atol=1e-6)


@pytest.fixture
def scored_family(family):
    if family == "mpnet":
        pytest.skip("MPNet adds a relative-position bias inside its attention (left out)")
    return family


def test_the_softmax_of_the_scores_is_the_attention_the_model_returns(scored_family):
    check_softmax_is_the_returned_attention(tiny_model(scored_family, attn="eager").eval())


def test_a_pruned_model_gives_scores_for_its_layers_with_heads(scored_family):
    plan = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 2], [], [1, 2, 3]]
    )
    model = apply_plan(tiny_model(scored_family, attn="eager"), plan).eval()
    check_softmax_is_the_returned_attention(model)


def test_gradients_reach_the_query_and_key_projections():
    model = tiny_model("bert", attn="eager")
    with AttentionScores(model) as recorder:
        model(**tiny_batch())
        sum(s.pow(2).sum() for s in recorder.scores()).backward()
    for layer in model.base_model.encoder.layer:
        attention = layer.attention.self
        assert attention.query.weight.grad.abs().sum() > 0
        assert attention.key.weight.grad.abs().sum() > 0
    # the last layer's values feed no scores
    assert model.base_model.encoder.layer[-1].attention.self.value.weight.grad is None
    for module in model.modules():  # no hook left behind
        assert not module._forward_hooks


def test_scores_stay_float32_under_bf16_autocast():
    model = tiny_model("bert", attn="eager")
    with torch.autocast("cpu", dtype=torch.bfloat16), AttentionScores(model) as recorder:
        model(**tiny_batch())
        scores = recorder.scores()
    assert all(s.dtype == torch.float32 for s in scores)

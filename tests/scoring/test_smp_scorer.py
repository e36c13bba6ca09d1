"""SMP: the pruner CNN, the Gumbel head sampler, the geometry loss, and meta-training."""

from __future__ import annotations

import statistics

import pytest
import torch
import transformers
from conftest import tiny_batch, tiny_config, unbatch
from torch.utils.data import default_collate

from prunekit.data import TaskMixture
from prunekit.scoring.smp import (
    MAP_SIZE,
    PAIR,
    SINGLE,
    HeadPruner,
    fit_maps,
    head_scores,
    load_pruner,
    save_pruner,
)
from prunekit.scoring.smp_meta import (
    geometry_kl,
    make_meta_pruning_loss,
    representation_geometry,
    sample_head_mask,
    sentence_representation,
)
from prunekit.train import GeneratorState, TrainConfig, TrainExtras, finetune


def test_the_pruner_gives_two_scores_in_0_2_per_map():
    pruner = HeadPruner(ndf=8).eval()
    maps = torch.rand(5, 1, MAP_SIZE, MAP_SIZE)
    scores = pruner(maps)
    assert scores.shape == (5, 2)
    assert bool(((scores > 0) & (scores < 2)).all())
    with torch.no_grad():  # two separate channels: the last convolution's second output
        pruner.net[-1].weight[SINGLE] += 0.5
    moved = pruner(maps)
    assert torch.equal(moved[:, PAIR], scores[:, PAIR])
    assert bool((moved[:, SINGLE] != scores[:, SINGLE]).all())
    conv_weights = sum(p.numel() for n, p in pruner.named_parameters() if p.ndim == 4)
    assert conv_weights == 178_304  # the released pruners' size (ndf 8)


def test_maps_are_padded_or_cropped_to_128_with_padded_queries_zeroed():
    attention = torch.rand(2, 3, 10, 10)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 7:] = 0
    maps = fit_maps(attention, mask)
    assert maps.shape == (2, 3, MAP_SIZE, MAP_SIZE)
    assert bool((maps[0, :, 7:, :] == 0).all()) and bool((maps[:, :, 10:, :] == 0).all())
    assert torch.equal(maps[1, :, :10, :10], attention[1])
    assert fit_maps(torch.rand(1, 1, 200, 200), torch.ones(1, 200)).shape[-1] == MAP_SIZE


def test_the_sampler_keeps_half_the_heads_in_half_the_layers_with_gradients():
    scores = torch.randn(6, 12, requires_grad=True)
    mask = sample_head_mask(scores, torch.Generator().manual_seed(0))
    kept = (mask.detach() > 0.5).sum(1).tolist()
    assert sorted(kept) == [6, 6, 6, 12, 12, 12]  # ⌊L/2⌋ layers whole, H/2 in the others
    assert set(mask.detach().flatten().tolist()) <= {0.0, 1.0}  # hard in the forward pass
    (mask * torch.arange(12.0)).sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0  # straight-through


def test_the_geometry_kl_is_zero_when_nothing_changes():
    vectors = torch.randn(9, 16)  # odd: the last one is dropped, as in the authors' code
    assert geometry_kl(vectors, vectors.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert geometry_kl(vectors, torch.randn(9, 16)).item() > 1e-3


def test_an_odd_batch_is_centred_on_all_its_vectors_before_the_last_is_dropped():
    vectors = torch.randn(9, 16)
    centred = vectors - vectors.mean(0)  # authors' cos_dist: the mean over all b
    unit = centred[:8] / centred[:8].norm(dim=-1, keepdim=True)
    expected = (10 * unit @ unit.T).reshape(8, 4, 2)
    assert torch.allclose(representation_geometry(vectors), expected, atol=1e-5)


def test_pair_tasks_read_the_pooler_or_on_request_the_mean_of_the_last_states():
    model = transformers.AutoModel.from_config(tiny_config("bert")).eval()
    batch = tiny_batch(batch=4, seq=10)
    batch["attention_mask"][0, 6:] = 0  # padding stays out of the mean
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        output = model(**inputs)
    pooled = sentence_representation(output, inputs["attention_mask"], PAIR)
    assert torch.equal(pooled, output.pooler_output)
    mean = sentence_representation(output, inputs["attention_mask"], PAIR, pair="mean")
    assert torch.allclose(mean[0], output.last_hidden_state[0, :6].mean(0), atol=1e-6)
    assert torch.equal(mean, sentence_representation(output, inputs["attention_mask"], SINGLE))


def planted_encoder() -> transformers.PreTrainedModel:
    """Heads 0-1 of every layer attend sharply and carry the signal; heads 2-3 attend
    uniformly and carry almost nothing. Dropping the former changes the representations."""
    torch.manual_seed(0)
    model = transformers.AutoModel.from_config(tiny_config("bert"), attn_implementation="eager")
    size = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for layer in model.encoder.layer:
            attention = layer.attention.self
            for head, (query, value) in enumerate([(8.0, 10.0)] * 2 + [(0.0, 0.01)] * 2):
                rows = slice(head * size, (head + 1) * size)
                attention.query.weight[rows] *= query
                attention.value.weight[rows] *= value
    return model.eval()


def test_meta_training_lowers_the_loss_and_learns_which_heads_matter():
    encoder = planted_encoder()
    examples = [row for s in range(4) for row in unbatch(tiny_batch(batch=8, seq=12, seed=s))]
    mixture = TaskMixture([examples], [SINGLE], 8, 120, 0, default_collate)
    sampler = torch.Generator().manual_seed(1)
    pruner = HeadPruner()
    pruner.reset_parameters(torch.Generator().manual_seed(0))
    before = head_scores(encoder, pruner, [tiny_batch(batch=8, seq=12)], SINGLE)
    losses = []
    config = TrainConfig(
        learning_rate=0.2,
        max_steps=120,
        batch_size=1,
        optimizer="sgd",
        lr_schedule="constant",
        warmup_ratio=0.0,
        weight_decay=0.0,
    )
    finetune(
        pruner,
        mixture,
        mixture.collate,
        config,
        loss_fn=make_meta_pruning_loss(encoder, sampler),
        on_step=lambda step, total, values: losses.append(values["loss"]),
        extras=TrainExtras(state={"sampler": GeneratorState(sampler)}),
    )
    assert statistics.fmean(losses[-30:]) < 0.5 * statistics.fmean(losses[:30])
    after = head_scores(encoder, pruner, [tiny_batch(batch=8, seq=12)], SINGLE)
    margin_before = (before[:, :2].mean() - before[:, 2:].mean()).item()
    margin_after = (after[:, :2].mean() - after[:, 2:].mean()).item()
    assert margin_after > 0 and margin_after > margin_before  # the heads that matter rank up


def test_scores_read_no_labels_and_a_saved_pruner_reloads_exactly(tmp_path):
    encoder = planted_encoder()
    pruner = HeadPruner()
    batch = tiny_batch(batch=6, seq=10)
    plain = head_scores(encoder, pruner, [batch], PAIR)
    labelled = head_scores(encoder, pruner, [{**batch, "labels": torch.arange(6)}], PAIR)
    assert torch.equal(plain, labelled)
    save_pruner(pruner, tmp_path / "p", steps=0)
    again = head_scores(encoder, load_pruner(tmp_path / "p"), [batch], PAIR)
    assert torch.equal(plain, again)


@pytest.mark.parametrize(
    ("config", "reason"),
    [("{", "Expecting"), ("{}", "no 'ndf'"), ("[]", "list indices"), ('{"ndf": 0}', "ndf 0")],
)
def test_a_broken_pruner_config_is_one_line_naming_the_file(tmp_path, config, reason):
    from prunekit.errors import ModelLoadError

    save_pruner(HeadPruner(), tmp_path / "p")
    (tmp_path / "p" / "pruner.json").write_text(config)
    with pytest.raises(ModelLoadError, match="pruner.json is not a pruner config") as info:
        load_pruner(tmp_path / "p")
    assert reason in str(info.value) and "\n" not in str(info.value)

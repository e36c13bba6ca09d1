"""The sparse CPU path: CSR linears match dense outputs, and conversion keeps the model's
outputs while reporting a choice for every linear."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model, uneven_plan, word_tokenizer

from prunekit import apply_plan
from prunekit.errors import ConfigError
from prunekit.models import save
from prunekit.models.sparse import SparseLinear, is_converted, to_sparse_inference
from prunekit.models.sparse_encoder import FeatureMajorEncoder, FeatureMajorLinear
from prunekit.recipes.bench import run_bench

L = TINY["layers"]


def test_a_csr_linear_matches_the_dense_one():
    linear = torch.nn.Linear(32, 37)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(37, 32, generator=torch.Generator().manual_seed(0)) > 0.9)
    x = torch.randn(3, 700, 32)  # more rows than one chunk
    with torch.no_grad():
        assert torch.allclose(SparseLinear(linear)(x), linear(x), atol=1e-5)


def sparsified(model, plan=None, keep: float = 0.05, seed: int = 1, scale: float = 10.0):
    """``model`` pruned to ``plan`` (default: none) with ~95% of each encoder linear zeroed.
    The kept weights are scaled by ``scale``: at the tiny models' init (std 0.02) a 95%-sparse
    layer barely changes the hidden states, and a test could not tell a layer run from one
    skipped."""
    if plan is not None:
        apply_plan(model, plan)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layer." in name:
                kept = torch.rand(module.weight.shape, generator=generator) < keep
                module.weight.mul_(kept * scale)
    return model


def states(model, batch=None) -> torch.Tensor:
    """The encoder's last hidden states: O(1) values, where the tiny classifier's logits are
    ~1e-2 and move by ~1e-5 whatever the encoder's linears do."""
    with torch.no_grad():
        return model.base_model(**(batch or tiny_batch())).last_hidden_state


def test_converting_a_sparse_model_keeps_its_outputs_linear_by_linear():
    model = sparsified(tiny_model("bert"))
    expected = states(model)
    chosen = to_sparse_inference(copy.deepcopy(model), (16, 256), rounds=2, layout="token")
    assert len(chosen) == 6 * L and all(c.sparsity > 0.9 for c in chosen)
    assert all(len(c.sparse_ms) == len(c.dense_ms) == 2 for c in chosen)  # both sizes timed
    choices = to_sparse_inference(model, tokens=256, rounds=2, always=True, layout="token")
    assert all(c.sparse for c in choices)
    assert sum(isinstance(m, SparseLinear) for m in model.modules()) == 6 * L
    assert torch.allclose(states(model), expected, atol=1e-5)


@pytest.mark.parametrize("family", ["bert", "roberta", "electra"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_the_feature_major_encoder_matches_a_pruned_sparse_model(family, attn):
    model = tiny_model(family, attn=attn)
    model = sparsified(model, uneven_plan(model))  # every surgery path, then 95% unstructured
    expected = states(model)
    choices = to_sparse_inference(model, tokens=(16, 256), rounds=2, always=True)
    assert isinstance(model.base_model.encoder, FeatureMajorEncoder)
    # query/key/value fused per layer that has heads; layer 1's zero-width output projection
    # (bias only) is nothing to choose: 2 + 3 * 3 - 1 projections
    assert sorted(c.name for c in choices if c.name.endswith("qkv")) == ["0.qkv", "2.qkv"]
    assert len(choices) == 2 + 3 * L - 1 and all(c.sparse for c in choices)
    assert torch.allclose(states(model), expected, atol=1e-5)
    with torch.no_grad():
        # batch and length other than the timed ones, padding in one row
        batch = tiny_batch(batch=5, seq=23, seed=3)
        assert model(**batch).logits.shape == (5, 2)


def test_the_feature_major_encoder_hands_large_inputs_to_the_original():
    model = sparsified(tiny_model("bert"))
    expected = states(model)
    to_sparse_inference(model, tokens=16, rounds=1, always=True)
    encoder = model.base_model.encoder
    assert encoder.up_to == float("inf")  # CSR at every size: never hands over
    encoder.layer = torch.nn.ModuleList()  # the feature-major path now skips every layer...
    encoder.up_to = 0  # ...but no input is small enough to take it
    assert torch.allclose(states(model), expected, atol=1e-5)
    encoder.up_to = float("inf")  # the guard: the emptied path, taken, changes the states
    assert not torch.allclose(states(model), expected, atol=1e-2)


def test_a_dense_model_keeps_its_encoder():
    model = tiny_model("bert")
    choices = to_sparse_inference(model, tokens=16, rounds=1)
    assert not any(c.sparse for c in choices) and len(choices) == 4 * L
    assert not isinstance(model.base_model.encoder, FeatureMajorEncoder)


def test_a_feature_major_linear_switches_to_dense_above_its_threshold():
    linear = torch.nn.Linear(32, 37)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(37, 32, generator=torch.Generator().manual_seed(0)) > 0.9)
    hybrid = FeatureMajorLinear(linear.weight, linear.bias, sparse_up_to=100)
    small, large = torch.randn(32, 80), torch.randn(32, 160)  # feature-major: [in, tokens]
    with torch.no_grad():
        want_small, want_large = linear(small.T).T, linear(large.T).T
        assert torch.allclose(hybrid(small), want_small, atol=1e-5)
        assert torch.allclose(hybrid(large), want_large, atol=1e-5)
        hybrid.dense.zero_()  # which path ran: only the dense one reads this weight
        assert torch.allclose(hybrid(small), want_small, atol=1e-5)
        assert torch.equal(hybrid(large), linear.bias[:, None].expand(37, 160))


def test_the_feature_major_layout_is_for_bert_style_families_only():
    model = sparsified(tiny_model("distilbert"))
    with pytest.raises(ConfigError, match="layout='token'"):
        to_sparse_inference(model, tokens=16, rounds=1, layout="feature")
    choices = to_sparse_inference(model, tokens=16, rounds=1)  # auto: linear by linear
    assert len(choices) == 6 * L


def test_the_sparse_path_refuses_half_precision_models():
    with pytest.raises(ConfigError, match="float32"):
        to_sparse_inference(tiny_model("bert").half(), tokens=16)


def test_a_hybrid_linear_runs_csr_up_to_its_threshold_and_dense_above():
    linear = torch.nn.Linear(32, 37)
    with torch.no_grad():
        linear.weight.mul_(torch.rand(37, 32, generator=torch.Generator().manual_seed(0)) > 0.9)
    hybrid = SparseLinear(linear, dense_above=100)
    small, large = torch.randn(2, 40, 32), torch.randn(4, 40, 32)  # 80 and 160 tokens
    with torch.no_grad():
        assert torch.allclose(hybrid(small), linear(small), atol=1e-5)
        assert torch.allclose(hybrid(large), linear(large), atol=1e-5)
        hybrid.dense_weight.zero_()  # which path ran: only the dense one reads this copy
        assert torch.allclose(hybrid(small), linear(small), atol=1e-5)
        assert torch.equal(hybrid(large), linear.bias.expand(4, 40, 37))


def test_calls_for_hidden_states_or_attention_maps_get_them_from_the_original_layers():
    model = sparsified(tiny_model("bert", attn="eager"))
    with torch.no_grad():
        expected = model(**tiny_batch(), output_hidden_states=True, output_attentions=True)
    to_sparse_inference(model, tokens=16, rounds=1, always=True)
    with torch.no_grad():
        got = model(**tiny_batch(), output_hidden_states=True, output_attentions=True)
    assert len(got.hidden_states) == L + 1 and len(got.attentions) == L
    for want, have in zip(expected.hidden_states, got.hidden_states, strict=True):
        assert torch.allclose(want, have, atol=1e-5)
    for want, have in zip(expected.attentions, got.attentions, strict=True):
        assert torch.allclose(want, have, atol=1e-5)


def test_a_converted_model_is_refused_where_it_cannot_go(tmp_path):
    from prunekit import save

    model = sparsified(tiny_model("bert"))
    to_sparse_inference(model, tokens=16, rounds=1, always=True)
    with pytest.raises(ConfigError, match="fresh copy"):
        to_sparse_inference(model, tokens=16, rounds=1)
    with pytest.raises(ConfigError, match="save the model before"):
        save(model, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()
    from prunekit import current_plan, model_stats
    from prunekit.models.gates import HeadGates

    plan = current_plan(model)  # recorded on the config: readable, but nothing walks the layers
    for walk in (model_stats, lambda m: apply_plan(m, plan), HeadGates):
        with pytest.raises(ConfigError, match="converted to the sparse inference path"):
            walk(model)
    with pytest.raises(ConfigError, match="after changing its dtype"), torch.no_grad():
        model.double()(**tiny_batch())


@pytest.mark.parametrize("tokens", [(), (0, 128), -1])
def test_the_sparse_path_is_timed_at_real_sizes(tokens):
    model = sparsified(tiny_model("bert"))
    with pytest.raises(ConfigError, match="token counts >= 1"):
        to_sparse_inference(model, tokens=tokens, rounds=1)
    assert not is_converted(model)


def test_a_linear_by_linear_conversion_is_refused_after_a_dtype_change():
    model = sparsified(tiny_model("distilbert"))
    to_sparse_inference(model, tokens=16, rounds=1, always=True)
    from prunekit import current_plan, model_stats
    from prunekit.models.gates import HeadGates

    plan = current_plan(model)  # the layers hold SparseLinear modules: nothing walks them
    for walk in (model_stats, lambda m: apply_plan(m, plan), HeadGates):
        with pytest.raises(ConfigError, match="converted to the sparse inference path"):
            walk(model)
    # its CSR weights are plain attributes: .double() converts everything around them
    with pytest.raises(ConfigError, match="after changing its dtype"), torch.no_grad():
        model.double()(**tiny_batch())


def test_a_causal_decoder_runs_linear_by_linear():
    """The feature-major encoder attends both ways; under SDPA without padding a decoder's
    causality is a flag of the attention call, not a mask it could see."""
    from conftest import tiny_config
    from transformers import AutoModelForSequenceClassification

    config = tiny_config("bert")
    config.is_decoder = True
    config._attn_implementation = "sdpa"
    model = sparsified(AutoModelForSequenceClassification.from_config(config).eval())
    batch = {"input_ids": tiny_batch()["input_ids"][:1]}  # batch 1, no padding
    with torch.no_grad():
        expected = model.base_model(**batch).last_hidden_state
    with pytest.raises(ConfigError, match="causal decoder"):
        to_sparse_inference(model, tokens=16, rounds=1, layout="feature")
    to_sparse_inference(model, tokens=16, rounds=1, always=True)
    assert not isinstance(model.base_model.encoder, FeatureMajorEncoder)
    with torch.no_grad():
        assert torch.allclose(model.base_model(**batch).last_hidden_state, expected, atol=1e-5)


def test_a_linear_left_dense_names_no_sparse_kernel(monkeypatch):
    import prunekit.models.sparse as sparse_module

    def timing(module, x, rounds):  # BSR ahead of CSR, both behind dense
        if isinstance(module, torch.nn.Linear):
            return 1.0
        return 3.0 if getattr(module, "block", None) else 5.0

    monkeypatch.setattr(sparse_module, "time_linear", timing)
    model = sparsified(tiny_model("bert"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # whole 8 x 8 blocks zero in the queries: BSR is timed for them
        for layer in model.base_model.encoder.layer:
            query = layer.attention.self.query.weight
            blocks = torch.rand(4, 4, generator=generator) < 0.2
            blocks[0, 0] = True
            query.copy_(
                torch.randn(32, 32) * blocks.repeat_interleave(8, 0).repeat_interleave(8, 1)
            )
    # linear by linear: the feature-major path fuses the queries with the unstructured keys
    choices = to_sparse_inference(model, tokens=16, rounds=1, layout="token")
    assert choices and not any(c.sparse for c in choices)
    assert all(c.block is None and c.csr_ms is None for c in choices)


def test_configurations_the_feature_major_encoder_lacks_run_linear_by_linear():
    model = sparsified(tiny_model("bert"))
    model.config.add_cross_attention = True  # as a decoder with cross-attention would have
    with pytest.raises(ConfigError, match="cross-attention; use layout='token'"):
        to_sparse_inference(model, tokens=16, rounds=1, layout="feature")
    choices = to_sparse_inference(model, tokens=16, rounds=1)
    assert len(choices) == 6 * L and not isinstance(model.base_model.encoder, FeatureMajorEncoder)


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_linear_by_linear_conversion_skips_a_layer_without_heads(family):
    model = tiny_model(family)
    model = sparsified(model, uneven_plan(model))  # layer 1 keeps no heads
    expected = states(model)
    choices = to_sparse_inference(model, tokens=16, rounds=1, always=True, layout="token")
    assert [c.name for c in choices if c.name.startswith("1.")] == ["1.ffn_in", "1.ffn_out"]
    assert len(choices) == 6 + 2 + 6
    assert torch.allclose(states(model), expected, atol=1e-5)


def test_the_sparse_bench_runs_on_distilbert(tmp_path):
    """DistilBERT's config calls its FFN width hidden_dim, not intermediate_size."""
    directory = save(
        sparsified(tiny_model("distilbert")), tmp_path / "d", tokenizer=word_tokenizer()
    )
    timed = run_bench(directory, seq_len=8, rounds=1, warmup=1, runtime="sparse")
    assert len(timed["sparse_linears"]) == 6 * L
    assert set(timed["break_even_sparsity"]) == {"1", "32"}
    # the ideal counts the nonzero weights' MACs (with dense MACs it was 1.00 for any sparsity)
    speedup = timed["models"]["model"]["speedup"]
    assert speedup["ideal"] > 3
    assert speedup["latency_vs_ideal"] == pytest.approx(speedup["latency"] / speedup["ideal"])


def test_the_sparse_bench_goes_on_when_the_onnxruntime_reference_fails(tmp_path, monkeypatch):
    """The ONNX Runtime reference is optional: any prunekit error of its export (here: a
    tokenizer that will not load) leaves a warning, and the sparse timing goes on."""
    import prunekit.recipes.bench as bench
    from prunekit.errors import ModelLoadError

    def export(*args, **kwargs):
        raise ModelLoadError("no usable tokenizer")

    monkeypatch.setattr(bench, "export_onnx", export)
    directory = save(sparsified(tiny_model("bert")), tmp_path / "m", tokenizer=word_tokenizer())
    timed = run_bench(directory, seq_len=8, rounds=1, warmup=1, runtime="sparse")
    assert "no onnxruntime dense timing: no usable tokenizer" in timed["warnings"]
    assert "onnxruntime" not in timed["models"] and timed["models"]["model"]["speedup"]["ideal"] > 1


def test_break_even_is_measured_in_the_layout_of_the_model_converted(tmp_path, monkeypatch):
    """--against a BERT while the sparse model is a DistilBERT: the break-even must time the
    token-major products DistilBERT runs, not BERT's feature-major ones."""
    import prunekit.recipes.bench as bench

    asked = []
    monkeypatch.setattr(
        bench, "break_even_sparsity", lambda *args, **kwargs: asked.append(kwargs) or None
    )
    sparse = save(sparsified(tiny_model("distilbert")), tmp_path / "d", tokenizer=word_tokenizer())
    dense = save(tiny_model("bert"), tmp_path / "b", tokenizer=word_tokenizer())
    run_bench(sparse, dense, seq_len=8, rounds=1, warmup=1, runtime="sparse")
    assert asked and all(kwargs["feature_major"] is False for kwargs in asked)

"""Sparse weights are stored as bitmask + values: exact reload, smaller files, and stock
loading fails loudly instead of loading zeros."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan, current_plan, load, save
from prunekit.errors import ConfigError, ModelLoadError
from prunekit.models.masks import masked_linears
from prunekit.models.sparse_storage import (
    QUANTIZED_NAME,
    SPARSE_NAME,
    StorageOptions,
    read_sparse,
    storage_report,
    write_sparse,
)

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def sparse_model(family: str = "bert", keep: float = 0.1, heads: PruningPlan | None = None):
    model = tiny_model(family)
    if heads is not None:
        apply_plan(model, heads)
    plan = current_plan(model)
    generator = torch.Generator().manual_seed(0)
    dense_shapes = {
        key: weight.shape
        for key, weight in masked_linears(tiny_model(family), PruningPlan.dense(L, H, F)).items()
    }
    masks = {
        key: torch.rand(shape, generator=generator) < keep for key, shape in dense_shapes.items()
    }
    return apply_plan(model, plan.with_masks(masks))


def test_bitmask_and_values_round_trip_exactly(tmp_path):
    tensors = {"a": torch.randn(7, 9) * (torch.rand(7, 9) < 0.2), "b": torch.zeros(3, 5)}
    write_sparse(tmp_path / "s.safetensors", tensors)
    again = read_sparse(tmp_path / "s.safetensors")
    assert all(torch.equal(tensors[k], again[k]) for k in tensors)


def test_a_sparse_model_reloads_exactly_and_its_linears_take_less_space(family, tmp_path):
    model = sparse_model(family)
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    for (name, a), (_, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, again(**tiny_batch()).logits)
    report = storage_report(tmp_path / "m")
    assert report["sparse_tensors"]["ratio"] > 3  # 10% kept: values + 1 bit per entry


def test_sparsity_after_head_pruning_reloads(tmp_path):
    heads = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 2], [], [1, 2, 3]]
    )
    model = sparse_model("bert", heads=heads)
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, again(**tiny_batch()).logits)


def test_stock_loading_fails_loudly_and_a_missing_sparse_file_is_an_error(tmp_path):
    save(sparse_model(), tmp_path / "m")
    with pytest.raises((RuntimeError, ValueError, OSError)):
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / SPARSE_NAME).unlink()
    with pytest.raises(ModelLoadError, match=SPARSE_NAME):
        load(tmp_path / "m")


def test_half_precision_values_and_int8_embeddings_reload_what_was_stored(family, tmp_path):
    model = sparse_model(family)
    storage = StorageOptions(sparse_values="float16", embeddings="int8")
    save(model, tmp_path / "m", storage=storage)
    again = load(tmp_path / "m")
    embedding = model.get_input_embeddings().weight.detach()
    loaded = again.get_input_embeddings().weight.detach()
    assert loaded.dtype == torch.float32
    # Symmetric int8 per row: every entry within half a step (max|row| / 254) of the original.
    step = embedding.abs().amax(dim=1, keepdim=True) / 127
    assert ((loaded - embedding).abs() <= step / 2 + 1e-7).all()
    assert not torch.equal(loaded, embedding)
    for key, weight in masked_linears(model, current_plan(model)).items():
        reloaded = masked_linears(again, current_plan(again))[key]
        assert torch.equal(reloaded, weight.detach().half().float()), key
    # What was loaded is what is stored: saving it again changes nothing.
    save(again, tmp_path / "m2", storage=storage)
    third = load(tmp_path / "m2")
    with torch.no_grad():
        assert torch.allclose(again(**tiny_batch()).logits, third(**tiny_batch()).logits)
    report = storage_report(tmp_path / "m")
    assert report["quantized_tensors"]["ratio"] > 2.5  # int8 + a fp32 scale per (short) row
    with pytest.raises((RuntimeError, ValueError, OSError)):
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / QUANTIZED_NAME).unlink()
    with pytest.raises(ModelLoadError, match="model_quantized.safetensors"):
        load(tmp_path / "m")


def test_half_precision_embeddings_of_a_dense_model(tmp_path):
    model = tiny_model("bert")
    save(model, tmp_path / "m", storage=StorageOptions(embeddings="float16"))
    again = load(tmp_path / "m")
    half = model.get_input_embeddings().weight.detach().half().float()
    assert torch.equal(again.get_input_embeddings().weight.detach(), half)
    assert storage_report(tmp_path / "m")["quantized_tensors"]["ratio"] == pytest.approx(
        2, 0.05
    )  # + header


def test_unknown_storage_options_are_refused():
    with pytest.raises(ConfigError, match="float32, float16 or int8"):
        StorageOptions(embeddings="int4")
    with pytest.raises(ConfigError, match="float32 or float16"):
        StorageOptions(sparse_values="int8")


def test_compact_storage_is_format_3_so_older_readers_say_upgrade(tmp_path):
    import json

    save(tiny_model("bert"), tmp_path / "plain")
    save(tiny_model("bert"), tmp_path / "int8", storage=StorageOptions(embeddings="int8"))
    version = {
        name: json.loads((tmp_path / name / "config.json").read_text())["prunekit"][
            "format_version"
        ]
        for name in ("plain", "int8")
    }
    assert version == {"plain": 2, "int8": 3}
    load(tmp_path / "int8")


def test_half_precision_values_are_made_from_float32_weights_only(tmp_path):
    model = sparse_model().to(torch.bfloat16)
    with pytest.raises(ConfigError, match="bfloat16"):
        save(model, tmp_path / "m", storage=StorageOptions(sparse_values="float16"))
    assert not (tmp_path / "m").exists()  # nothing half-written
    save(model, tmp_path / "m")  # its own dtype: fine
    # float16 embeddings alike (from bfloat16 they save nothing and lose range); int8 is fine
    with pytest.raises(ConfigError, match="float16 embeddings .* these are bfloat16"):
        save(model, tmp_path / "e", storage=StorageOptions(embeddings="float16"))
    assert not (tmp_path / "e").exists()
    save(model, tmp_path / "e", storage=StorageOptions(embeddings="int8"))


def test_sparse_weights_reuse_the_plan_mask_as_their_pattern_and_bitmask_files_still_load(
    tmp_path,
):
    import safetensors

    model = sparse_model()
    save(model, tmp_path / "m")
    with safetensors.safe_open(str(tmp_path / "m" / SPARSE_NAME), framework="pt") as handle:
        keys = list(handle.keys())  # noqa: SIM118
    assert keys and not any(k.endswith("::bitmask") for k in keys)  # no pattern stored twice
    by_reference = (tmp_path / "m" / SPARSE_NAME).stat().st_size
    # Directories written with a bitmask per tensor (before) load the same.
    stored = {name: p.detach() for name, p in model.named_parameters()}
    names = [k.removesuffix("::shape") for k in keys if k.endswith("::shape")]
    write_sparse(tmp_path / "m" / SPARSE_NAME, {n: stored[n] for n in names})
    entries = sum(stored[n].numel() for n in names)
    # The bitmask costs one bit per entry, which the reference saves.
    assert (tmp_path / "m" / SPARSE_NAME).stat().st_size - by_reference >= entries // 8 - 64
    again = load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, again(**tiny_batch()).logits)


def test_a_weight_nonzero_outside_its_mask_is_stored_with_its_own_bitmask(tmp_path):
    from prunekit.models.sparse_storage import kept_patterns

    model = sparse_model()
    patterns = kept_patterns(model, current_plan(model))
    name = next(iter(patterns))
    weight = dict(model.named_parameters())[name].detach().clone()
    weight[~patterns[name]] = 1.0  # breaks the invariant: the pattern cannot stand in
    write_sparse(tmp_path / "s.safetensors", {name: weight}, patterns=patterns)
    assert torch.equal(read_sparse(tmp_path / "s.safetensors", patterns)[name], weight)


def test_a_compact_save_leaves_the_callers_model_as_it_was(tmp_path):
    """The files record compact storage; the live model must not: a later stock
    save_pretrained of it would otherwise claim storage files it does not write."""
    model = tiny_model("bert")
    before = model.config.to_dict()
    save(model, tmp_path / "int8", storage=StorageOptions(embeddings="int8"))
    assert model.config.to_dict() == before
    model.save_pretrained(tmp_path / "stock")
    torch.testing.assert_close(load(tmp_path / "stock").state_dict(), model.state_dict())


def _partly_masked_model():
    """Masks on two of the six linears of layer 0 only (a plan made by hand)."""
    model = tiny_model("bert")
    plan = current_plan(model)
    linears = masked_linears(model, plan)
    generator = torch.Generator().manual_seed(0)
    masks = {
        k: torch.rand(linears[k].shape, generator=generator) < 0.2 for k in ("0.query", "0.ffn_in")
    }
    return apply_plan(model, plan.with_masks(masks))


def test_half_precision_values_round_only_the_masked_weights(tmp_path, monkeypatch):
    import safetensors

    from prunekit.models import sparse_storage

    model = _partly_masked_model()
    save(model, tmp_path / "m", storage=StorageOptions(sparse_values="float16"))
    with safetensors.safe_open(str(tmp_path / "m" / SPARSE_NAME), framework="pt") as handle:
        stored = {k.removesuffix("::shape") for k in handle.keys() if k.endswith("::shape")}  # noqa: SIM118
    assert stored == {
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.intermediate.dense.weight",
    }
    again = load(tmp_path / "m")
    before, after = (
        masked_linears(model, current_plan(model)),
        masked_linears(again, current_plan(again)),
    )
    for key, weight in before.items():  # the masked two rounded once, every other one exact
        expected = weight.detach().half().float() if key in ("0.query", "0.ffn_in") else weight
        assert torch.equal(after[key], expected), key
    # A directory saved before 0.2.0 held every prunable linear in the sparse file: it loads.
    every_linear = lambda model, plan: {  # noqa: E731
        n: p
        for n, p in model.named_parameters()
        if any(p is w for w in masked_linears(model, plan).values())
    }
    monkeypatch.setattr(sparse_storage, "sparse_parameters", every_linear)
    save(model, tmp_path / "old")
    monkeypatch.undo()
    assert len(sparse_storage.stored_sparse_names(tmp_path / "old")) == 6 * L
    old = load(tmp_path / "old")
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, old(**tiny_batch()).logits)

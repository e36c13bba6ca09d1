"""Sparse weights are stored as bitmask + values: exact reload, smaller files, and stock
loading fails loudly instead of loading zeros."""

from __future__ import annotations

import pytest
import torch
import transformers
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan, current_plan, load, save
from prunekit.errors import ModelLoadError
from prunekit.models.masks import masked_linears
from prunekit.models.sparse_storage import SPARSE_NAME, read_sparse, storage_report, write_sparse

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
    with pytest.raises(ModelLoadError):
        load(tmp_path / "m")

"""save -> load is bit-identical; stock from_pretrained refuses; 4.x checkpoints load; errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan, current_plan, load, save
from prunekit.errors import ModelLoadError, OutputExistsError, UnsupportedModelError
from prunekit.models import load_tokenizer
from prunekit.models.adapter import get_adapter
from prunekit.models.surgery import _head_rows, _slice_linear
from prunekit.plan import MASK_SLOTS

FIXTURES = Path(__file__).parents[1] / "fixtures"

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]

UNEVEN = PruningPlan.build(
    num_layers=L,
    num_heads=H,
    intermediate_size=F,
    kept_heads=[[1, 3], [], [0, 1, 2]],
    kept_ffn=[list(range(0, F, 2)), None, []],
)


def test_save_load_is_bit_identical(family, tmp_path):
    model = apply_plan(tiny_model(family), UNEVEN)
    batch = tiny_batch()
    save(model, tmp_path / "pruned")
    loaded = load(tmp_path / "pruned")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert current_plan(loaded) == current_plan(model)
    assert type(loaded) is type(model)
    files = {p.name for p in (tmp_path / "pruned").iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)


def test_config_records_plan_and_card_reports_sizes(tmp_path):
    save(apply_plan(tiny_model("bert"), UNEVEN), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["prunekit"]["format_version"] == 2
    assert config["prunekit"]["plan"]["kept_heads"] == [[1, 3], [], [0, 1, 2]]
    assert config["num_attention_heads"] == H  # the config stays dense; the plan is the truth
    card = (tmp_path / "m" / "README.md").read_text()
    assert "| attention heads | 12 | 5 |" in card


def test_stock_from_pretrained_fails_loudly(family, tmp_path):
    save(apply_plan(tiny_model(family), UNEVEN), tmp_path / "m")
    with pytest.raises(Exception, match="(?i)size mismatch|ignore_mismatched_sizes"):
        transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "m")


def test_dense_directory_loads_through_from_pretrained(tmp_path):
    model = tiny_model("bert")
    model.save_pretrained(tmp_path / "dense")
    loaded = load(tmp_path / "dense")
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, loaded(**tiny_batch()).logits)


def test_sharded_dense_directory_loads_and_a_missing_shard_is_named(tmp_path):
    model = tiny_model("bert").to(torch.bfloat16)
    model.save_pretrained(tmp_path / "dense", max_shard_size="20KB")  # as big checkpoints ship
    shards = sorted(p.name for p in (tmp_path / "dense").glob("model-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "dense" / "model.safetensors").exists()
    loaded = load(tmp_path / "dense")
    assert loaded.dtype == torch.bfloat16  # read from the shards' headers
    with torch.no_grad():
        assert torch.equal(model(**tiny_batch()).logits, loaded(**tiny_batch()).logits)
    (tmp_path / "dense" / shards[-1]).unlink()
    with pytest.raises(ModelLoadError, match=f"not there: {shards[-1]}"):
        load(tmp_path / "dense")


def test_transformers_v4_pruned_checkpoint_loads(tmp_path):
    """Build what 4.x prune_heads + save_pretrained wrote: sliced weights + config.pruned_heads."""
    model = tiny_model("bert")
    batch = tiny_batch()
    pruned_heads = {0: [0, 2], 2: [1]}
    adapter = get_adapter(model)
    dh = adapter.head_size(model.config)
    for layer, gone in pruned_heads.items():
        keep = [h for h in range(H) if h not in gone]
        rows = _head_rows(keep, dh)
        parts = adapter.layer_modules(model, layer)
        for slot in (parts.query, parts.key, parts.value):
            slot.set(_slice_linear(slot.get(), rows, dim=0))
        parts.attn_out.set(_slice_linear(parts.attn_out.get(), rows, dim=1))
        adapter.set_head_count(model, layer, len(keep))
    with torch.no_grad():
        expected = model(**batch).logits
    out = tmp_path / "v4"
    out.mkdir()
    model.config.pruned_heads = {str(k): v for k, v in pruned_heads.items()}
    model.config.architectures = ["BertForSequenceClassification"]  # as 4.x save_pretrained did
    model.config.save_pretrained(out)
    safetensors.torch.save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    assert "pruned_heads" in json.loads((out / "config.json").read_text())

    loaded = load(out)
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, expected)
    assert current_plan(loaded).kept_heads == ((1, 3), (0, 1, 2, 3), (0, 2, 3))

    # a pruned_heads entry for a layer the model does not have: one clear error
    config = json.loads((out / "config.json").read_text())
    config["pruned_heads"]["7"] = [0]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="names layer '7'"):
        load(out)


def test_transformers_v4_checkpoint_with_a_layer_pruned_whole_loads(tmp_path):
    """4.x prune_heads left such a layer's Q/K/V as 0-row linears, and saved them."""
    model = tiny_model("bert")
    batch = tiny_batch()
    kept = [list(range(H)) for _ in range(L)]
    kept[1] = []
    plan = PruningPlan.build(num_layers=L, num_heads=H, intermediate_size=F, kept_heads=kept)
    with torch.no_grad():
        expected = apply_plan(model, plan)(**batch).logits
    model = tiny_model("bert")  # the same seeded weights, sliced as 4.x did
    parts = get_adapter(model).layer_modules(model, 1)
    for slot in (parts.query, parts.key, parts.value):
        slot.set(_slice_linear(slot.get(), torch.zeros(0, dtype=torch.long), dim=0))
    parts.attn_out.set(_slice_linear(parts.attn_out.get(), torch.zeros(0, dtype=torch.long), dim=1))
    out = tmp_path / "v4"
    out.mkdir()
    model.config.pruned_heads = {"1": list(range(H))}
    model.config.architectures = ["BertForSequenceClassification"]
    model.config.save_pretrained(out)
    safetensors.torch.save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})

    loaded = load(out)
    assert current_plan(loaded).kept_heads[1] == ()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected)


def test_save_refuses_existing_directory_without_overwrite(tmp_path):
    target = tmp_path / "m"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        save(tiny_model("bert"), target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    save(tiny_model("bert"), target, overwrite=True)
    assert (target / "model.safetensors").is_file() and not (target / "keep.txt").exists()


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_model", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        save(tiny_model("bert"), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def saved(tmp_path):
    save(apply_plan(tiny_model("bert"), UNEVEN), tmp_path / "m")
    return tmp_path / "m"


def test_missing_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="model directory not found: .*nowhere"):
        load(tmp_path / "nowhere")


def test_an_attention_implementation_the_model_cannot_take_is_a_load_error(saved):
    with pytest.raises(ModelLoadError, match="cannot build .*attn_implementation"):
        load(saved, attn_implementation="bogus")


def test_missing_config(saved):
    (saved / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        load(saved)


def test_corrupt_config(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load(saved)


def test_missing_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load(saved)


def test_pickled_weights_are_refused(saved):
    (saved / "model.safetensors").rename(saved / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="never unpickles"):
        load(saved)


def test_corrupt_safetensors(saved):
    (saved / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(ModelLoadError, match="corrupt"):
        load(saved)


def test_truncated_safetensors(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt"):
        load(saved)


def test_weights_that_do_not_match_the_plan(saved):
    config = json.loads((saved / "config.json").read_text())
    config["prunekit"]["plan"]["kept_heads"] = [[0, 1, 2, 3]] * 3
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not match"):
        load(saved)


def test_unsupported_architecture_directory(tmp_path):
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=10)
    transformers.GPT2Model(config).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(UnsupportedModelError, match="gpt2"):
        load(tmp_path / "gpt2")


# ---------------------------------------------------------------------------- masks


def tiny_masks(model, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random masks (about half kept) in the dense shape of every maskable linear."""
    adapter = get_adapter(model)
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for layer in range(L):
        parts = adapter.layer_modules(model, layer)
        for slot in MASK_SLOTS:
            shape = getattr(parts, slot).get().weight.shape
            masks[f"{layer}.{slot}"] = torch.rand(shape, generator=generator) < 0.5
    return masks


def test_save_load_keeps_masks_and_zeros(family, tmp_path):
    model = tiny_model(family)
    masks = tiny_masks(model)
    apply_plan(model, UNEVEN.with_masks(masks))
    save(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["prunekit"]["plan"]["sparse_masks"] == "model_masks.safetensors"
    assert (tmp_path / "m" / "model_masks.safetensors").is_file()
    loaded = load(tmp_path / "m")
    for (name, got), (_, want) in zip(
        loaded.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert torch.equal(got, want), name
    with torch.no_grad():
        assert torch.equal(loaded(**tiny_batch()).logits, model(**tiny_batch()).logits)
    plan = current_plan(loaded)
    assert plan == current_plan(model)
    assert all(torch.equal(plan.masks[k], masks[k]) for k in masks)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "| nonzero parameters |" in card


def test_model_with_a_missing_masks_file_does_not_load(tmp_path):
    model = apply_plan(tiny_model("bert"), UNEVEN.with_masks(tiny_masks(tiny_model("bert"))))
    save(model, tmp_path / "m")
    (tmp_path / "m" / "model_masks.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="'model_masks.safetensors' but .* not exist") as info:
        load(tmp_path / "m")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------- format versions


def test_directory_written_by_prunekit_0_1_0_loads(tmp_path):
    fixture = FIXTURES / "v0_1_0_bert_tiny"
    config = json.loads((fixture / "config.json").read_text())
    assert config["prunekit"]["format_version"] == 1 and "dtype" not in config
    expected = json.loads((fixture / "expected.json").read_text())
    model = load(fixture)
    assert current_plan(model) == PruningPlan.build(
        num_layers=2,
        num_heads=2,
        intermediate_size=12,
        kept_heads=[[0], [0, 1]],
        kept_ffn=[None, [0, 2, 3, 5, 7, 8, 11]],
        method="fixture",
    )
    batch = load_tokenizer(fixture)([expected["text"]], return_tensors="pt")
    assert batch["input_ids"].tolist() == expected["input_ids"]
    with torch.no_grad():
        logits = model(**batch).logits
    # The fixture's logits were computed on another CPU, whose kernels round the last bits
    # differently (2.4e-7 apart between an Intel and an AMD machine): float precision here,
    # and bit-exact for the round trip on one machine below.
    torch.testing.assert_close(logits, torch.tensor(expected["logits"]), rtol=1e-5, atol=1e-6)
    # and what this version writes from it loads too
    save(model, tmp_path / "again")
    again = load(tmp_path / "again")
    assert (
        json.loads((tmp_path / "again" / "config.json").read_text())["prunekit"]["format_version"]
        == 2
    )
    with torch.no_grad():
        assert torch.equal(again(**batch).logits, logits)


def test_unknown_format_version_is_refused(tmp_path):
    shutil.copytree(FIXTURES / "v0_1_0_bert_tiny", tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["prunekit"]["format_version"] = 4
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ModelLoadError, match=r"format version 4 is not supported .*\(reads 1, 2, 3\)"
    ):
        load(tmp_path / "m")


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("plan", [None, UNEVEN], ids=["dense", "pruned"])
def test_half_precision_reloads_bit_identical(tmp_path, dtype, plan):
    model = tiny_model("bert")
    if plan is not None:
        apply_plan(model, plan)
    model.to(dtype)
    save(model, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dtype"] == str(dtype)[6:]
    loaded = load(tmp_path / "m")
    assert loaded.dtype == dtype
    for (name, got), (_, want) in zip(
        loaded.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert got.dtype == want.dtype and torch.equal(got, want), name
    with torch.no_grad():
        assert torch.equal(loaded(**tiny_batch()).logits, model(**tiny_batch()).logits)


def test_stale_config_dtype_is_overruled_by_the_weights(tmp_path):
    """prunekit 0.1.0 kept config.dtype from before ``model.to(float16)``."""
    model = tiny_model("bert").to(torch.float16)
    save(model, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["dtype"] = "float32"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    loaded = load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(**tiny_batch()).logits, model(**tiny_batch()).logits)


def test_plain_half_precision_directory_loads_in_its_dtype(tmp_path):
    model = tiny_model("bert").to(torch.bfloat16)
    model.save_pretrained(tmp_path / "dense")
    loaded = load(tmp_path / "dense")
    assert loaded.dtype == torch.bfloat16
    with torch.no_grad():
        assert torch.equal(loaded(**tiny_batch()).logits, model(**tiny_batch()).logits)


def test_mixed_precision_reloads_bit_identical(tmp_path):
    model = apply_plan(tiny_model("bert"), UNEVEN).to(torch.float16)
    model.bert.embeddings.LayerNorm.float()  # a common mixed-precision layout
    model.classifier.float()
    save(model, tmp_path / "m")
    loaded = load(tmp_path / "m")
    for (name, got), (_, want) in zip(
        loaded.state_dict().items(), model.state_dict().items(), strict=True
    ):
        assert got.dtype == want.dtype and torch.equal(got, want), name

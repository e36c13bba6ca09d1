"""The real MiniLM from the PyPI package, end to end through the CLI: finetune -> prune ->
inspect -> eval -> bench, and the saved model reloads bit-identically."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import glue_dir
from typer.testing import CliRunner

from prunekit import PruningPlan, apply_plan, current_plan, load
from prunekit.cli import app
from prunekit.device import describe_device, resolve_device

pytestmark = pytest.mark.integration
runner = CliRunner()


def run_json(*args) -> dict:
    result = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def pruned(finetuned_minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "cola-50"
    record = run_json(
        "prune",
        "--model",
        finetuned_minilm,
        "--method",
        "random",
        "--heads",
        "0.5",
        "--out",
        out,
        "--seed",
        "3",
        "--quiet",
        "--data-dir",
        glue_dir(),
    )
    return out, record


def test_finetune_writes_a_complete_directory(finetuned_minilm):
    names = {p.name for p in finetuned_minilm.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "metrics.json",
        "README.md",
        "tokenizer.json",
    } <= names
    metrics = json.loads((finetuned_minilm / "metrics.json").read_text())
    assert metrics["steps"] == 3 and metrics["train_examples"] == 64
    assert metrics["validation"]["examples"] == 855 and metrics["dev"]["examples"] == 1043
    # where it trained, as results record it
    assert metrics["device"] == describe_device(resolve_device("auto"))


def test_prune_removes_half_the_heads(pruned):
    out, record = pruned
    assert record["heads"] == {
        "before": 72,
        "after": 36,
        "original": 72,
        "per_layer": record["heads"]["per_layer"],
    }
    assert sum(record["heads"]["per_layer"]) == 36
    assert record["parameters"]["after"] < record["parameters"]["before"]
    plan = json.loads((out / "plan.json").read_text())
    assert sum(len(h) for h in plan["kept_heads"]) == 36
    assert {"validation", "dev"} <= set(record["after_pruning"])


def test_same_seed_same_plan(finetuned_minilm, pruned, tmp_path):
    out, _ = pruned
    again = tmp_path / "again"
    run_json(
        "prune",
        "--model",
        finetuned_minilm,
        "--method",
        "random",
        "--heads",
        "0.5",
        "--out",
        again,
        "--seed",
        "3",
        "--quiet",
        "--data-dir",
        glue_dir(),
    )
    assert (again / "plan.json").read_text() == (out / "plan.json").read_text()


def test_inspect_contract(pruned):
    out, record = pruned
    stats = run_json("inspect", out)
    assert set(stats) >= {
        "architecture",
        "layers",
        "heads_per_layer",
        "heads_total",
        "heads_original",
        "ffn_per_layer",
        "parameters",
        "parameters_original",
        "encoder_macs",
        "encoder_macs_original",
    }
    assert stats["architecture"] == "BertForSequenceClassification"
    assert stats["layers"] == 6 and stats["heads_original"] == 72
    assert stats["heads_total"] == 36 and stats["heads_per_layer"] == record["heads"]["per_layer"]
    assert stats["ffn_per_layer"] == [1536] * 6
    assert stats["parameters"] == record["parameters"]["after"]
    # all-MiniLM-L6-v2 + a 2-way classifier: 22,713,216 + 384*2 + 2
    assert stats["parameters_original"] == 22_713_216 + 770
    # 36 heads of 32 dims removed; per layer at n=128, d=384: 4nd*32 + 2n^2*32 per head
    per_head = 4 * 128 * 384 * 32 + 2 * 128 * 128 * 32
    assert stats["encoder_macs_original"] - stats["encoder_macs"] == 36 * per_head


def test_eval_contract_and_reload_is_exact(pruned, finetuned_minilm):
    out, record = pruned
    result = run_json(
        "eval", "--model", out, "--split", "dev", "--data-dir", glue_dir(), "--device", "cpu"
    )
    assert set(result) == {"task", "split", "metrics", "primary", "examples", "constant"}
    assert result["task"] == "cola" and result["split"] == "dev" and result["examples"] == 1043
    assert result["constant"] == 0.0  # MCC of one answer for every sentence
    assert result["primary"] == pytest.approx(record["after_pruning"]["dev"]["primary"])

    # the saved model is the fine-tuned one cut by its plan, exactly: the same plan applied to
    # the fine-tuned model in memory gives the same logits
    reloaded = load(out)
    cut = apply_plan(load(finetuned_minilm), PruningPlan.read(out / "plan.json"))
    batch = {"input_ids": torch.randint(1000, 30000, (2, 16))}
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, cut(**batch).logits)
    assert current_plan(reloaded).heads_kept == 36


def test_bench_reports_measured_and_ideal(pruned, finetuned_minilm):
    out, _ = pruned
    result = run_json("bench", out, "--against", finetuned_minilm, "--rounds", "2")
    speedup = result["models"]["model"]["speedup"]
    assert speedup["ideal"] == pytest.approx(1434451968 / 1170210816)
    assert speedup["latency"] > 0 and speedup["throughput"] > 0
    assert result["models"]["model"]["throughput"]["batch_size"] == 32
    assert result["models"]["model"]["latency"]["batch_size"] == 1


def test_astar_budget_mode_writes_a_certificate(finetuned_minilm, tmp_path):
    out = tmp_path / "astar"
    record = run_json(
        "prune",
        "--model",
        finetuned_minilm,
        "--method",
        "astar",
        "--budget",
        "0",
        "--max-evals",
        "24",
        "--branching",
        "4",
        "--search-samples",
        "16",
        "--eval-max-samples",
        "64",
        "--out",
        out,
        "--quiet",
        "--data-dir",
        glue_dir(),
    )
    certificate = json.loads((out / "certificate.json").read_text())
    assert certificate["budget"] == 0.0 and certificate["mode"] == "max-heads-under-budget"
    assert certificate["final_drop"] <= 0.0
    assert certificate["heads_removed"] == 72 - record["heads"]["after"]
    # CoLA's carved validation split (855) in halves: 16 of one searched, the other certifies
    assert certificate["search_examples"] == 16
    assert certificate["certified"] and certificate["certify_examples"] == 428
    assert certificate["verified"]["examples"] == 428
    assert certificate["verified"]["drop"] <= certificate["upper_bound"] <= 0.0
    dev = certificate["dev"]
    assert dev["drop"] == pytest.approx(dev["before"] - dev["after"])
    assert dev["violation"] == (dev["drop"] > 0.0)
    assert {"evaluations", "wall_seconds", "a0", "cache"} <= set(certificate)
    # a capped search says so in metrics.json (and on the console)
    assert any("max_evals" in w for w in record["method_warnings"]) == certificate["capped"]


def test_magnitude_writes_a_sparse_model_that_inspect_counts(finetuned_minilm, tmp_path):
    out = tmp_path / "sparse"
    record = run_json(
        "prune",
        "--model",
        finetuned_minilm,
        "--method",
        "magnitude",
        "--sparsity",
        "0.5",
        "--method-option",
        "epochs=1",
        "--method-option",
        "batch_size=16",
        "--method-option",
        "events=2",
        "--train-samples",
        "32",
        "--eval-max-samples",
        "32",
        "--out",
        out,
        "--quiet",
        "--data-dir",
        glue_dir(),
    )
    assert record["method_trained_weights"] and record["heads"]["after"] == 72
    stats = run_json("inspect", out)
    linear = sum(
        2 * 384 * 384 * 2 + 2 * 384 * 1536 for _ in range(6)
    )  # Q, K, V, O and both FFN matrices of MiniLM's six layers
    assert stats["parameters"] - stats["parameters_nonzero"] >= 0.5 * linear - 1000
    assert (out / "model_masks.safetensors").is_file()
    sparse = stats["disk_bytes"]["sparse_tensors"]
    assert sparse["ratio"] > 1.5  # half the entries kept: values + 1 bit each, vs fp32
    timed = run_json("bench", out, "--runtime", "sparse", "--rounds", "1", "--seq-len", "16")
    # the feature-major encoder: query/key/value fused, then O and both FFN matrices per layer
    assert len(timed["sparse_linears"]) == 4 * 6
    assert sum(c["name"].endswith(".qkv") for c in timed["sparse_linears"]) == 6
    assert set(timed["break_even_sparsity"]) == {"1", "32"}  # latency and throughput batches
    assert all(0.45 < c["sparsity"] < 0.55 for c in timed["sparse_linears"])
    entries = timed["models"]
    # One run: the sparse path against dense torch and dense onnxruntime, same inputs.
    assert {n: e["runtime"] for n, e in entries.items()} == {
        "baseline": "torch",
        "model": "torch sparse",
        "onnxruntime": "onnxruntime",
    }
    assert entries["model"]["speedup"]["throughput"] > 0
    assert entries["model"]["vs_onnxruntime"]["latency"] > 0


def test_inspect_reports_bytes_on_disk(pruned):
    out, _ = pruned
    stats = run_json("inspect", out)
    files = stats["disk_bytes"]["files"]
    assert files["model.safetensors"] > 1_000_000
    assert stats["disk_bytes"]["total"] == sum(files.values())


def test_compact_stores_int8_embeddings_and_eval_still_runs(pruned, tmp_path):
    out, _ = pruned
    small = tmp_path / "int8"
    report = run_json("compact", out, "--out", small, "--embeddings", "int8")
    # The word embeddings are ~47 of the pruned model's ~80 MB; int8 keeps a quarter of them.
    assert report["bytes_after"] < 0.6 * report["bytes_before"]
    assert 0 < report["max_abs_output_change"] < 0.5
    stats = run_json("inspect", small)
    assert stats["disk_bytes"]["quantized_tensors"]["ratio"] > 3.9
    assert stats["heads_total"] == 36  # the head plan is kept
    bad = runner.invoke(
        app, ["compact", str(out), "--out", str(tmp_path / "x"), "--embeddings", "int4"]
    )
    assert bad.exit_code == 2 and "float32, float16 or int8" in bad.output
    assert not (tmp_path / "x").exists()

"""ONNX export: the pruned graph runs in onnxruntime with PyTorch's outputs, for other shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import tiny_model, uneven_plan, word_tokenizer
from typer.testing import CliRunner

from prunekit import apply_plan
from prunekit.cli import app
from prunekit.errors import ConfigError, ExportError, ModelLoadError
from prunekit.models import load, save
from prunekit.models.export import export_onnx
from prunekit.recipes.bench import run_bench


def pruned_dir(family: str, tmp_path):
    model = tiny_model(family)
    apply_plan(model, uneven_plan(model))
    return save(model, tmp_path / f"{family}-pruned", tokenizer=word_tokenizer())


def test_bench_times_the_unfused_graph_when_the_fused_one_fails_its_check(tmp_path, monkeypatch):
    from prunekit.recipes import bench

    def fused_drifts(source, out, optimize=False, **kwargs):
        if optimize:  # as a fused attention kernel off by more than the tolerance would
            raise ExportError("outputs differ by 3e-04; Export without --optimize")
        return export_onnx(source, out, optimize=False, **kwargs)

    monkeypatch.setattr(bench, "export_onnx", fused_drifts)
    pruned = pruned_dir("bert", tmp_path)
    for runtime in ("onnxruntime", "sparse"):
        result = run_bench(pruned, seq_len=12, rounds=1, warmup=0, runtime=runtime)
        assert any("unfused ONNX graph" in w for w in result["warnings"]), runtime
        assert "onnxruntime" in result["environment"]


def test_when_one_fused_graph_fails_every_model_is_timed_unfused(tmp_path, monkeypatch):
    from prunekit.recipes import bench

    pruned = pruned_dir("bert", tmp_path)
    dense = save(tiny_model("bert"), tmp_path / "dense", tokenizer=word_tokenizer())
    exports = []

    def pruned_fused_drifts(source, out, optimize=False, **kwargs):
        exports.append((Path(source).name, optimize))
        if optimize and Path(source) == pruned:
            raise ExportError("outputs differ by 3e-04")
        return export_onnx(source, out, optimize=optimize, **kwargs)

    monkeypatch.setattr(bench, "export_onnx", pruned_fused_drifts)
    result = run_bench(pruned, dense, seq_len=12, rounds=1, warmup=0, runtime="onnxruntime")
    timed = dict(exports)  # each model's last export: the graph its session ran
    assert timed == {"bert-pruned": False, "dense": False}
    assert any("every model's unfused graph" in w for w in result["warnings"])


def test_onnxruntime_bench_times_the_exported_graphs(tmp_path):
    pruned = pruned_dir("bert", tmp_path)
    dense = save(tiny_model("bert"), tmp_path / "dense", tokenizer=word_tokenizer())
    result = run_bench(pruned, dense, seq_len=12, rounds=2, warmup=1, runtime="onnxruntime")
    assert result["runtime"] == "onnxruntime" and "onnxruntime" in result["environment"]
    assert result["models"]["model"]["heads"] == 3 and result["models"]["baseline"]["heads"] == 12
    assert result["models"]["model"]["throughput"]["sequences_per_s"] > 0
    assert result["models"]["model"]["speedup"]["ideal"] > 1
    with pytest.raises(ConfigError, match="unknown runtime"):
        run_bench(pruned, runtime="tensorrt")


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_pruned_model_exports_and_matches_pytorch(family, tmp_path):
    source = pruned_dir(family, tmp_path)
    report = export_onnx(source, tmp_path / "onnx")
    assert report.max_abs_diff <= 1e-4
    # checked on batches other than the traced batch of 2, at two different lengths
    assert [shape[0] for shape in report.checked_shapes] == [1, 3]
    assert report.checked_shapes[0][1] != report.checked_shapes[1][1]
    out = tmp_path / "onnx"
    assert {"model.onnx", "config.json", "export.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    assert json.loads((out / "export.json").read_text())["max_abs_diff"] == report.max_abs_diff
    # Standalone: onnxruntime alone runs a batch of a shape neither trace nor check used.
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    ids = np.random.default_rng(0).integers(4, 100, (5, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0  # padding in one row
    (logits,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
    assert logits.shape == (5, 2)
    # checked here against PyTorch, not by the export's own report; relative to the logits'
    # own size (~1e-2 on these tiny models), so a lost head or layer could not pass
    with torch.no_grad():
        expected = load(source)(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).logits.numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("family", ["bert", "mpnet"])
def test_optimized_export_fuses_for_onnxruntime_and_still_matches(family, tmp_path):
    source = pruned_dir(family, tmp_path)
    plain = export_onnx(source, tmp_path / "plain")
    fused = export_onnx(source, tmp_path / "fused", optimize=True)
    assert plain.fused_operators is None
    assert fused.max_abs_diff <= 1e-4 and fused.fused_operators.get("SkipLayerNormalization")
    ops = {n.op_type for n in onnx.load(fused.path).graph.node}
    assert "SkipLayerNormalization" in ops
    # traced with eager attention: no SDPA NaN guard left for onnxruntime to run per layer
    assert "IsNaN" not in {n.op_type for n in onnx.load(plain.path).graph.node}
    recorded = json.loads((tmp_path / "fused" / "export.json").read_text())
    assert recorded["fused_operators"] == fused.fused_operators


def test_export_refuses_bad_input_and_writes_nothing(tmp_path):
    with pytest.raises(ModelLoadError, match="model directory not found"):
        export_onnx(tmp_path / "missing", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    source = pruned_dir("bert", tmp_path)
    with pytest.raises(ExportError, match="differ"):
        export_onnx(source, tmp_path / "out", tolerance=-1.0)  # no export can pass this
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_cli_export(tmp_path):
    source = pruned_dir("bert", tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(source), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["max_abs_diff"] <= 1e-4
    again = runner.invoke(app, ["export", str(source), "--out", str(tmp_path / "o")])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_onnxruntime_sessions_use_torchs_thread_count(tmp_path):
    """OMP_NUM_THREADS pins torch only; an onnxruntime session left at its default would take
    every core, and a timing would compare two thread counts."""
    from prunekit.models.export import onnx_session

    report = export_onnx(pruned_dir("bert", tmp_path), tmp_path / "onnx")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        options = onnx_session(report.path).get_session_options()
        assert options.intra_op_num_threads == 1
    finally:
        torch.set_num_threads(threads)


def test_bench_and_export_refuse_what_they_cannot_do_in_one_line(tmp_path):
    source = pruned_dir("bert", tmp_path)  # 66 positions
    runner = CliRunner()
    for argv, fragment in (
        (["bench", str(source), "--seq-len", "100"], "--seq-len 100 is longer than the 66"),
        (["bench", str(source), "--runtime", "onnxruntime", "--device", "cuda"], "drop --device"),
        (["bench", str(source), "--runtime", "sparse", "--device", "mps"], "drop --device"),
        (["export", str(source), "--out", str(source), "--overwrite"], "holds the model"),
        (["export", str(source), "--out", str(tmp_path), "--overwrite"], "holds the model"),
    ):
        result = runner.invoke(app, argv)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert fragment in result.output, result.output
    assert (source / "model.safetensors").is_file()  # the export did not replace the model


def test_non_finite_outputs_are_refused_and_nothing_is_written(tmp_path, monkeypatch):
    import prunekit.models.export as export

    real = export.onnx_session

    class NaNSession:
        def __init__(self, path):
            self.session = real(path)

        def run(self, names, feeds):
            return [np.full_like(out, np.nan) for out in self.session.run(names, feeds)]

    monkeypatch.setattr(export, "onnx_session", NaNSession)
    with pytest.raises(ExportError, match="non-finite logits"):
        export_onnx(pruned_dir("bert", tmp_path), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_recorded_opset_is_the_one_in_the_file(tmp_path):
    source = pruned_dir("bert", tmp_path)
    for opset in (14, 17, 18):  # torch 2.13: 14 stays at 18 (refused), 17 converts
        try:
            report = export_onnx(source, tmp_path / f"o{opset}", opset=opset)
        except ExportError as err:  # torch kept 18: said so, nothing written
            assert f"not the {opset} asked for" in str(err) and "\n" not in str(err)
            assert not (tmp_path / f"o{opset}").exists()
            continue
        default = [o.version for o in onnx.load(report.path).opset_import if o.domain == ""]
        assert default == [report.opset] == [opset]


def test_an_onnxruntime_of_another_distribution_name_still_exports(tmp_path, monkeypatch):
    import importlib.metadata

    real = importlib.metadata.version

    def version(package):  # onnxruntime-gpu installs the module under another name
        if package == "onnxruntime":
            raise importlib.metadata.PackageNotFoundError(package)
        return real(package)

    monkeypatch.setattr(importlib.metadata, "version", version)
    report = export_onnx(pruned_dir("bert", tmp_path), tmp_path / "out")
    assert report.versions["onnxruntime"] == onnxruntime.__version__


def test_a_model_with_a_short_position_table_exports(tmp_path):
    from conftest import tiny_config
    from transformers import AutoModelForSequenceClassification

    config = tiny_config("bert")
    config.max_position_embeddings = 12  # the check sentences are longer
    model = AutoModelForSequenceClassification.from_config(config).eval()
    source = save(model, tmp_path / "short", tokenizer=word_tokenizer())
    report = export_onnx(source, tmp_path / "out")
    assert max(shape[1] for shape in report.checked_shapes) <= 12

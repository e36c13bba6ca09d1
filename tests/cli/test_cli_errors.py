"""Bad input: one clear stderr line, exit code 2, and nothing written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import transformers
from conftest import TINY, assert_user_error, glue_dir, tiny_batch, tiny_model, word_tokenizer
from typer.testing import CliRunner

from prunekit import PruningPlan, apply_plan, load, save
from prunekit.cli import app
from prunekit.data import get_task
from prunekit.errors import ConfigError, ModelLoadError
from prunekit.methods import DEFAULT_HEAD_METHOD
from prunekit.models.sources import load_for_task

runner = CliRunner()
TINY_BERT = dict(
    vocab_size=120,
    hidden_size=TINY["hidden"],
    num_hidden_layers=TINY["layers"],
    num_attention_heads=TINY["heads"],
    intermediate_size=TINY["ffn"],
)


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def pruned_dir(tmp_path) -> Path:
    """A tiny prunekit directory (no tokenizer needed for inspect/bench)."""
    L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]
    model = apply_plan(tiny_model("bert"), PruningPlan.dense(L, H, F))
    return save(model, tmp_path / "model")


def test_unknown_task(tmp_path):
    result = invoke("finetune", "--task", "glue-of-my-own", "--out", tmp_path / "out")
    assert_user_error(result, "glue-of-my-own", "sst2")
    assert not (tmp_path / "out").exists()


def test_missing_data(tmp_path):
    result = invoke(
        "finetune",
        "--task",
        "rte",
        "--out",
        tmp_path / "out",
        "--data-dir",
        tmp_path / "no-glue-here",
    )
    assert_user_error(result, "no-glue-here")
    assert not (tmp_path / "out").exists()


def test_missing_model_directory(tmp_path):
    result = invoke(
        "prune",
        "--model",
        tmp_path / "nope",
        "--heads",
        "0.5",
        "--task",
        "rte",
        "--out",
        tmp_path / "out",
    )
    assert_user_error(result, "not found", "nope")
    assert not (tmp_path / "out").exists()


def test_inspect_missing_directory(tmp_path):
    assert_user_error(invoke("inspect", tmp_path / "nope"), "not found")


def test_corrupt_config(pruned_dir):
    (pruned_dir / "config.json").write_text("{ this is not json")
    assert_user_error(invoke("inspect", pruned_dir), "config.json", "not valid JSON")


def test_corrupt_safetensors(pruned_dir):
    (pruned_dir / "model.safetensors").write_bytes(b"\x00" * 64)
    assert_user_error(invoke("inspect", pruned_dir), "model.safetensors", "corrupt")


def test_unsupported_architecture(tmp_path):
    config = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=10)
    transformers.GPT2Model(config).save_pretrained(tmp_path / "gpt2")
    assert_user_error(invoke("inspect", tmp_path / "gpt2"), "'gpt2' is not supported", "bert")


def test_invalid_plan_in_checkpoint(pruned_dir):
    config = json.loads((pruned_dir / "config.json").read_text())
    config["prunekit"]["plan"]["kept_heads"][0] = [0, 0, 1]
    (pruned_dir / "config.json").write_text(json.dumps(config))
    assert_user_error(invoke("inspect", pruned_dir), "invalid plan", "duplicate")


def test_unsupported_checkpoint_version(pruned_dir):
    config = json.loads((pruned_dir / "config.json").read_text())
    config["prunekit"]["format_version"] = 99
    (pruned_dir / "config.json").write_text(json.dumps(config))
    assert_user_error(invoke("inspect", pruned_dir), "version 99")


@pytest.mark.skipif(glue_dir() is None, reason="needs GLUE data (GLUE_DIR or ../shared)")
@pytest.mark.parametrize("heads", ["1.0", "-0.1", "1.5"])
def test_heads_outside_unit_interval(finetuned_minilm, tmp_path, heads):
    result = invoke(
        "prune",
        "--model",
        finetuned_minilm,
        "--heads",
        heads,
        "--out",
        tmp_path / "out",
        "--data-dir",
        glue_dir(),
    )
    assert_user_error(result, "--heads must be in [0, 1)")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(glue_dir() is None, reason="needs GLUE data (GLUE_DIR or ../shared)")
def test_a_method_that_chooses_the_count_refuses_a_target_that_keeps_every_head(
    finetuned_minilm, tmp_path
):
    out = tmp_path / "out"
    args = ["--method", "peer", "--heads", "0", "--data-dir", glue_dir()]
    result = invoke("prune", "--model", finetuned_minilm, "--out", out, *args)
    assert_user_error(result, "keep all 72 heads", "peer would remove nothing", "budget mode")
    assert not out.exists()


def test_output_exists_without_overwrite(pruned_dir, tmp_path):
    existing = tmp_path / "taken"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep me")
    result = invoke("finetune", "--task", "rte", "--out", existing)
    assert_user_error(result, "already exists", "--overwrite")
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def test_unknown_method(pruned_dir, tmp_path):
    result = invoke(
        "prune",
        "--model",
        pruned_dir,
        "--method",
        "oracle",
        "--heads",
        "0.5",
        "--task",
        "rte",
        "--out",
        tmp_path / "out",
    )
    assert_user_error(result, "unknown method 'oracle'", "random")


def prune_args(model, out, *extra: str) -> list:
    return ["prune", "--model", model, "--task", "rte", "--out", out, *extra]


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (
            ["--method", "l0", "--heads", "0.5", "--method-option", "steps=abc"],
            ["l0: option steps='abc'", "valid integer", "valid options: batch_size"],
        ),
        (
            ["--method", "l0", "--heads", "0.5", "--method-option", "stepz=3"],
            ["l0: unknown option 'stepz'", "valid options:"],
        ),
        (
            ["--method", "astar", "--budget", "-1"],
            ["astar: option budget=-1", "greater than or equal to 0"],
        ),
        (
            ["--method", "astar", "--heads", "0.5", "--budget", "1"],
            ["astar: --budget is for its budget mode", "drop one of them"],
        ),
        (
            ["--method", "peer", "--keep-heads", "10", "--budget", "0.5"],
            ["peer: --budget is for its budget mode"],
        ),
        (
            ["--method", "random", "--heads", "0.5", "--budget", "1"],
            ["random: unknown option 'budget'", "valid options: none"],
        ),
        (["--method", "hisp"], ["--heads", "hisp does not choose the head count"]),
        (["--method", "astar", "--heads", "0.5", "--per-layer"], ["astar", "per-layer"]),
        (["--method", "l0", "--heads", "0.5", "--method-option", "steps"], ["KEY=VALUE"]),
        (  # the final mask must train before the student is judged
            ["--method", "peer", "--heads", "0.5", "--method-option", "ramp_fraction=1"],
            ["peer: option ramp_fraction=1", "less than 1"],
        ),
        # a setting of the mode a run is not in would be ignored: refused, not accepted
        (
            ["--method", "astar", "--heads", "0.5", "--method-option", "start=empty"],
            ["astar: start is read only in its budget mode", "drop start or the head count"],
        ),
        (
            ["--method", "astar", "--method-option", "complete=ablation"],
            ["astar: complete is read only with a head count", "drop complete"],
        ),
        (
            ["--method", "peer", "--keep-heads", "10", "--method-option", "search=descend"],
            ["peer: search is read only in its budget mode"],
        ),
        (
            ["--method", "peer", "--heads", "0.5", "--method-option", "grid=[0.3,0.6]"],
            ["peer: grid is read only in its budget mode"],
        ),
    ],
)
def test_method_settings_are_validated_before_any_work(pruned_dir, tmp_path, extra, fragments):
    out = tmp_path / "out"
    assert_user_error(invoke(*prune_args(pruned_dir, out, *extra)), *fragments)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["eval", "--model", "{model}", "--task", "rte", "--batch-size", "0"], "--batch-size"),
        (["eval", "--model", "{model}", "--task", "rte", "--max-samples", "0"], "--max-samples"),
        (["eval", "--model", "{model}", "--task", "rte", "--device", "tpu"], "unknown device"),
        (["inspect", "{model}", "--seq-len", "-5"], "--seq-len must be at least 1, got -5"),
        (["bench", "{model}", "--rounds", "0"], "--rounds must be at least 1"),
        (prune_args("{model}", "{out}", "--heads", "0.5", "--recover-max-samples", "0"),
         "--recover-max-samples"),
        (prune_args("{model}", "{out}", "--method", "magnitude", "--per-layer"),
         "magnitude targets sparsity, not heads: drop --per-layer"),
        (prune_args("{model}", "{out}", "--method", "movement", "--at-least-heads-per-layer", "1"),
         "drop --at-least-heads-per-layer"),
    ],
)  # fmt: skip
def test_counts_and_flags_a_command_cannot_use_are_one_line_errors(
    pruned_dir, tmp_path, args, fragment
):
    out = tmp_path / "out"
    filled = [str(a).format(model=pruned_dir, out=out) for a in args]
    assert_user_error(invoke(*filled), fragment)
    assert not out.exists()


def test_compacting_in_place_reports_the_size_before(tmp_path):
    from prunekit import PruningPlan, current_plan
    from prunekit.recipes.inspect import run_compact

    directory = save(tiny_model("bert"), tmp_path / "m", tokenizer=word_tokenizer())
    (directory / "metrics.json").write_text('{"dev": 84.6}')  # what a prune run wrote beside
    (directory / "onnx").mkdir()  # and a folder the user put there (`export m --out m/onnx`)
    (directory / "onnx" / "model.onnx").write_bytes(b"graph")
    (tmp_path / "big").mkdir()
    (directory / "data").symlink_to(tmp_path / "big")  # linked, not copied
    plan = current_plan(tiny_model("bert"))
    plan = plan.with_masks({"0.query": torch.rand(32, 32) > 0.5})
    plan.write(directory / "plan.json")  # a method's plan, with its masks file
    card = (directory / "README.md").read_text()
    report = run_compact(str(directory), directory, embeddings="int8", overwrite=True)
    assert report["bytes_after"] < report["bytes_before"]
    assert (directory / "metrics.json").read_text() == '{"dev": 84.6}'  # kept
    assert (directory / "onnx" / "model.onnx").read_bytes() == b"graph"  # subfolders too
    assert (directory / "data").readlink() == tmp_path / "big"
    assert (directory / "README.md").read_text() != card  # the model's own files are new
    quantized = {p.name for p in directory.glob("*.safetensors")}
    quantized -= {"model.safetensors", "masks.safetensors"}  # the weights, the plan's masks
    assert quantized  # int8 embeddings have a file of their own
    run_compact(str(directory), directory, embeddings="float32", overwrite=True)
    assert not any((directory / name).exists() for name in quantized)  # not carried back
    assert (directory / "metrics.json").read_text() == '{"dev": 84.6}'
    again = PruningPlan.read(directory / "plan.json")  # with the masks file it names
    assert torch.equal(again.masks["0.query"], plan.masks["0.query"])


def test_compacting_a_sharded_checkpoint_in_place_drops_the_shards(tmp_path):
    from prunekit.recipes.inspect import run_compact

    model = tiny_model("bert")
    model.save_pretrained(tmp_path / "m", max_shard_size="20KB")
    run_compact(str(tmp_path / "m"), tmp_path / "m", overwrite=True)
    weights = sorted(p.name for p in (tmp_path / "m").glob("model*"))
    assert weights == ["model.safetensors"]  # one file, no stale shards or index beside it
    with torch.no_grad():
        assert torch.equal(
            load(tmp_path / "m")(**tiny_batch()).logits, model(**tiny_batch()).logits
        )


def test_a_model_saved_without_a_tokenizer_compacts(pruned_dir, tmp_path):
    from prunekit.recipes.inspect import run_compact

    report = run_compact(str(pruned_dir), tmp_path / "small", embeddings="float16")
    assert report["bytes_after"] < report["bytes_before"]
    assert (tmp_path / "small" / "config.json").is_file()


def test_method_config_files_are_validated(pruned_dir, tmp_path):
    good = tmp_path / "l0.toml"
    good.write_text("steps = 'many'\n")
    result = invoke(
        *prune_args(
            pruned_dir,
            tmp_path / "out",
            "--method",
            "l0",
            "--heads",
            "0.5",
            "--method-config",
            good,
        )
    )
    assert_user_error(result, "l0: option steps='many'")
    broken = tmp_path / "l0.json"
    broken.write_text("{steps: 3")
    result = invoke(
        *prune_args(
            pruned_dir,
            tmp_path / "out",
            "--method",
            "l0",
            "--heads",
            "0.5",
            "--method-config",
            broken,
        )
    )
    assert_user_error(result, "l0.json is not valid json")


@pytest.mark.skipif(glue_dir() is None, reason="needs GLUE data (GLUE_DIR or ../shared)")
def test_pruning_a_model_that_was_never_fine_tuned_is_refused(tmp_path):
    base = tmp_path / "base"
    transformers.BertModel(transformers.BertConfig(**TINY_BERT)).save_pretrained(base)
    word_tokenizer().save_pretrained(base)
    out = tmp_path / "out"
    result = invoke(*prune_args(base, out, "--heads", "0.5", "--data-dir", glue_dir()))
    assert_user_error(result, "never fine-tuned", "classifier", "--allow-untrained-head")
    assert not out.exists()


def test_methods_json_lists_metadata_and_settings():
    result = invoke("methods", "--json")
    assert result.exit_code == 0
    methods = {m["name"]: m for m in json.loads(result.stdout)["methods"]}
    assert {"random", "hisp", "l0", "astar"} <= set(methods)
    assert methods["astar"]["decides_count"] and not methods["astar"]["per_layer"]
    assert methods["l0"]["trains_weights"] and methods["l0"]["needs_data"] == ["train"]
    assert methods["l0"]["options"]["steps"]["default"] == 150
    assert methods["astar"]["options"]["budget"]["type"].startswith("float")
    for info in methods.values():
        assert set(info) >= {"targets", "attn_implementation", "needs_teacher", "prunes_pretrained"}
    assert [name for name, info in methods.items() if info["default"]] == [DEFAULT_HEAD_METHOD]
    # where a setting is read: given anywhere else it is refused, so the listing says so
    assert methods["astar"]["options"]["start"]["read_only_in_mode"] == "budget"
    assert methods["astar"]["options"]["complete"]["read_only_in_mode"] == "count"
    assert methods["hisp"]["options"]["step_fraction"]["read_only_with"] == "iterative"
    assert methods["hisp"]["options"]["iterative"]["read_only_with"] is None
    listing = invoke("methods").output
    assert f"{DEFAULT_HEAD_METHOD} [default]:" in listing and listing.count("[default]") == 1
    assert "[only with iterative]" in listing and "[budget mode only]" in listing


def test_flag_values_the_settings_refuse_are_one_line_errors(pruned_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke(*prune_args(pruned_dir, out, "--method", "astar", "--search-samples", "0"))
    assert_user_error(result, "--search-samples", "greater than or equal to 1")
    result = invoke("finetune", "--task", "rte", "--out", out, "--learning-rate", "-1")
    assert_user_error(result, "--learning-rate", "greater than 0")
    assert not out.exists()


def test_lossless_takes_no_head_count_and_needs_a_method_that_chooses_one(pruned_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        *prune_args(pruned_dir, out, "--method", "peer", "--lossless", "--heads", "0.5")
    )
    assert_user_error(result, "--lossless", "drop --heads")
    result = invoke(*prune_args(pruned_dir, out, "--method", "hisp", "--lossless"))
    assert_user_error(result, "hisp does not choose the head count")
    result = invoke(*prune_args(pruned_dir, out, "--method", "peer", "--epsilon", "-1"))
    assert_user_error(result, "peer: option budget=-1")


def test_smp_train_pruner_rejects_an_unknown_pair_representation(tmp_path):
    result = invoke("smp", "train-pruner", "--out", tmp_path / "p", "--pair-representation", "cls")
    assert_user_error(result, "--pair-representation", "'pooler' or 'mean'")
    assert not (tmp_path / "p").exists()


def test_eval_of_a_model_without_the_tasks_classifier_says_so_and_repeats(
    tiny_bert_with_real_tokenizer,
):
    args = ["eval", "--model", tiny_bert_with_real_tokenizer, "--task", "rte"]
    args += ["--max-samples", "16", "--data-dir", glue_dir(), "--json"]
    first, second = invoke(*args), invoke(*args)
    assert first.exit_code == 0 and "no rte classifier" in first.stderr
    assert json.loads(first.stdout)["metrics"] == json.loads(second.stdout)["metrics"]


def test_a_model_with_pickled_weights_only_is_refused(tmp_path):
    """pytorch_model.bin is a pickle: never loaded, whichever command asks."""
    model = tiny_model("bert")
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    word_tokenizer().save_pretrained(tmp_path / "m")  # so the weights are what it refuses
    assert_user_error(invoke("inspect", tmp_path / "m"), "never unpickles")
    with pytest.raises(ModelLoadError, match="never unpickles"):  # eval, finetune, prune
        load_for_task(str(tmp_path / "m"), get_task("rte"))


@pytest.mark.parametrize(
    ("dev", "fragments"),
    [
        (None, ("dev.tsv", "not found")),
        ("index\tsentence1\tsentence2\tlabel\n", ("rte dev split", "has no examples")),
    ],
)
def test_a_missing_or_empty_dev_file_is_found_before_training(
    tmp_path, monkeypatch, dev, fragments
):
    """dev is read only once training is done: a job must not train for nothing first."""
    import prunekit.train.task

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the dev file was checked")

    monkeypatch.setattr(prunekit.train.task, "finetune", no_training)
    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    rows = [f"{i}\tA man walks {i}.\tA person moves.\t{'entailment' if i % 2 else 'not_entailment'}"
            for i in range(20)]  # fmt: skip
    (rte / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n" + "\n".join(rows) + "\n")
    if dev is not None:
        (rte / "dev.tsv").write_text(dev)
    for command in (["finetune"], ["run", "--floor", "none"]):
        out = tmp_path / "out"
        result = invoke(*command, "--task", "rte", "--out", out, "--data-dir", tmp_path / "glue")
        assert_user_error(result, *fragments)
        assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--recover-max-samples", "0"], "--recover-max-samples must be at least 1"),
        (["--eval-max-samples", "0"], "--eval-max-samples must be at least 1"),
        (["--max-train-samples", "-1"], "--max-train-samples must be at least 0"),
        (["--finetune-epochs", "0"], "--finetune-epochs must be at least 1"),
        (["--budgets", "-1"], "--budgets"),
        (["--seeds", "1.5"], "--seeds expects comma-separated integers"),
        (["--heads", "0.5,0.50001"], "--heads 0.5 and 0.50001 are one row key (0.5000)"),
        (["--seeds", "0,-1"], "--seeds: Input should be greater than or equal to 0"),
        (
            ["--methods", "astar", "--method-option", "astar.budget=1"],
            "astar: --budget is for its budget mode",
        ),
        (  # astar runs fixed fractions only: nothing reads its budget search
            ["--methods", "astar", "--method-option", "astar.budget_search=per-k"],
            "astar: budget_search is read only in its budget mode",
        ),
        (  # astar runs budgets only: nothing reads its fixed-K completion
            ["--methods", "random", "--budgets", "1", "--method-option", "astar.complete=ablation"],
            "astar: complete is read only with a head count",
        ),
        (  # compare would run each of --budgets in its place
            ["--methods", "random", "--budgets", "1", "--method-option", "astar.budget=2"],
            "--method-option astar.budget: a sweep runs each of --budgets; drop it",
        ),
    ],
)
def test_compare_refuses_bad_counts_before_the_dense_fine_tune(tmp_path, extra, fragment):
    """Found at once, not an hour later; and nothing recorded that would lock the run dir."""
    out = tmp_path / "sweep"
    result = invoke(
        "compare", "--task", "rte", "--out", out, "--methods", "random", "--heads", "0.5",
        "--data-dir", tmp_path / "no-glue-needed-yet", *extra,
    )  # fmt: skip
    assert_user_error(result, fragment)
    assert not (out / "config.json").exists()


def test_a_run_dir_without_rows_takes_a_corrected_sweep(tmp_path):
    """A sweep that failed before its first row recorded its settings; they lock nothing."""
    from prunekit.recipes.compare_config import CompareConfig, refuse_other_settings

    out = tmp_path / "sweep"
    out.mkdir()
    recorded = {"recover_max_samples": 7, "task": "rte", "methods": ["random"], "regimes": []}
    (out / "config.json").write_text(json.dumps(recorded))
    config = CompareConfig(task="rte", out=out, methods=("random",), recover_max_samples=4000)
    refuse_other_settings(config, ())  # no rows: passes
    (out / "results.jsonl").write_text(json.dumps({"key": "random|0.5|0|r0"}) + "\n")
    with pytest.raises(ConfigError, match=r"holds results of other settings \(recover_max"):
        refuse_other_settings(config, ())


def test_a_row_appended_after_a_torn_line_is_kept(tmp_path):
    from prunekit.recipes.compare import append_rows, read_results

    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps({"key": "a"}) + '\n{"key": "b", "dev"')  # killed mid-write
    append_rows(results, [{"key": "c"}])
    assert [row["key"] for row in read_results(results)] == ["a", "c"]


def test_train_pruner_without_tasks_is_a_one_line_error(tmp_path):
    result = invoke("smp", "train-pruner", "--out", tmp_path / "p", "--tasks", ",")
    assert_user_error(result, "--tasks names no task")
    assert not (tmp_path / "p").exists()


def test_a_teacher_shaped_unlike_the_model_is_refused():
    """Peer and sparse-kd pair layers and heads by position with the teacher's."""
    from prunekit.train.distill import check_teacher_shape

    student = tiny_model("bert")
    check_teacher_shape("peer", tiny_model("bert"), student)  # passes
    deeper = transformers.BertForSequenceClassification(
        transformers.BertConfig(**(TINY_BERT | {"num_hidden_layers": TINY["layers"] + 2}))
    )
    with pytest.raises(ConfigError, match="num_hidden_layers 5 vs 3"):
        check_teacher_shape("peer", deeper, student)


def test_a_compare_out_that_is_a_file_is_a_one_line_error(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("not a run dir")
    result = invoke(
        "compare", "--task", "rte", "--out", taken, "--methods", "random", "--heads", "0.5",
        "--data-dir", tmp_path / "no-glue-needed-yet",
    )  # fmt: skip
    assert_user_error(result, "is not a directory", "--out")
    assert taken.read_text() == "not a run dir"


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_numpy_cannot_take_is_a_usage_error(tmp_path, seed):
    result = invoke("finetune", "--task", "rte", "--out", tmp_path / "out", "--seed", seed)
    assert result.exit_code == 2 and "--seed" in result.output
    assert "Traceback" not in result.output and "ValueError" not in result.output
    from prunekit.recipes.common import seed_everything

    with pytest.raises(ConfigError, match="--seed must be between 0 and 4294967295"):
        seed_everything(int(seed))  # the Python API: a one-line error, not numpy's


def test_python_dash_m_prunekit_is_the_cli(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "prunekit", "inspect", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2  # a user error, as from the prunekit script
    assert done.stderr.strip().splitlines() == [
        f"prunekit: error: model directory not found: {tmp_path / 'none'}"
    ]

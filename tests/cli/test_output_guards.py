"""An --out that would replace what a command reads, or a sweep that would run nothing: one
line, and nothing deleted."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error, invoke, saved_run_folder


@pytest.fixture
def job(tmp_path):
    """A `run` job's folder: a saved model inside, a summary beside it."""
    return saved_run_folder(tmp_path)


@pytest.mark.parametrize(
    "command",
    [
        ["compact", "{model}", "--out", "{job}", "--overwrite"],
        ["prune", "--model", "{model}", "--task", "rte", "--heads", "0.5", "--out", "{job}",
         "--overwrite"],
        ["finetune", "--model", "{model}", "--task", "rte", "--out", "{job}", "--overwrite"],
    ],
)  # fmt: skip
def test_an_out_holding_the_model_is_refused(job, command):
    args = [a.format(model=job / "pruned", job=job) for a in command]
    assert_user_error(invoke(*args), "holds the model")
    assert (job / "summary.json").read_text() == "{}" and (job / "pruned").is_dir()


def test_compare_refuses_a_folder_that_is_not_a_sweeps(job):
    model = job / "pruned"
    before = (model / "config.json").read_text()
    result = invoke("compare", "--task", "rte", "--methods", "random", "--out", model)
    assert_user_error(result, "not a compare sweep's")
    assert (model / "config.json").read_text() == before


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--seeds", ""], "--seeds is empty"),
        (["--regimes", ""], "--regimes is empty"),
        (["--heads", ""], "nothing to run"),
        (["--budget-methods", "astar"], "--budget-methods runs at --budgets"),
        (["--onnx-timing", "--no-timing"], "drop --no-timing"),
        (["--method-option", "l0.steps=300"], "names l0, which this sweep does not run"),
    ],
)
def test_compare_refuses_choices_that_would_run_nothing_or_be_dropped(tmp_path, flags, fragment):
    result = invoke(
        "compare", "--task", "rte", "--methods", "hisp", "--heads", "0.5", "--out",
        tmp_path / "sweep", *flags,
    )  # fmt: skip
    assert_user_error(result, fragment)
    assert not (tmp_path / "sweep").exists()


def test_compare_resumes_its_own_folder_before_any_row(tmp_path):
    """A sweep killed before its first row left only its config.json: still its own folder."""
    from prunekit.recipes.compare_config import _foreign_folder

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "config.json").write_text(json.dumps({"methods": ["hisp"], "regimes": ["r0"]}))
    assert not _foreign_folder(sweep)
    (sweep / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert _foreign_folder(sweep)


def test_compare_refuses_to_run_under_a_launch(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = invoke("compare", "--task", "rte", "--methods", "hisp", "--out", tmp_path / "s")
    assert_user_error(result, "compare runs as one process")
    assert not (tmp_path / "s").exists()

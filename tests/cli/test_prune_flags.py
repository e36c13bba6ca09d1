"""`prunekit prune`'s flags: a flag the run would never read is refused, not dropped."""

from __future__ import annotations

import pytest
from conftest import assert_user_error, glue_dir, minilm_path
from typer.testing import CliRunner

import prunekit.recipes.prune
from prunekit.cli import app
from prunekit.errors import ConfigError

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--learning-rate", "1e-4"], "--learning-rate applies to recovery"),
        (["--recover-max-samples", "100"], "--recover-max-samples applies to recovery"),
        (["--distill"], "--distill applies to recovery"),
        (["--recover-epochs", "1", "--distill-alpha", "0.9"], "--distill-alpha"),
        (["--recover-epochs", "1", "--distill-temperature", "4"], "--distill-temperature"),
        (["--recover-epochs", "1", "--distill", "--distill-alpha", "1.5"], "must be in [0, 1]"),
        (["--recover-epochs", "1", "--distill", "--distill-temperature", "0"], "> 0"),
        (["--recover-epochs", "-1"], "--recover-epochs must be at least 0"),
        (["--at-least-heads-per-layer", "-1"], "--at-least-heads-per-layer must be at least 0"),
        (["--teacher", "elsewhere"], "--teacher"),
    ],
)
def test_flags_the_run_would_not_read_are_refused(tmp_path, flags, fragment):
    result = invoke(
        "prune", "--model", "default", "--task", "rte", "--heads", "0.5", "--method", "random",
        "--out", tmp_path / "o", *flags,
    )  # fmt: skip
    assert_user_error(result, fragment)
    assert not (tmp_path / "o").exists()


def test_a_teacher_for_magnitude_without_its_kd_is_refused(tmp_path):
    result = invoke(
        "prune", "--model", "default", "--task", "rte", "--method", "magnitude",
        "--sparsity", "0.5", "--teacher", "elsewhere", "--out", tmp_path / "o",
    )  # fmt: skip
    assert_user_error(result, "--method-option distill=true")
    assert not (tmp_path / "o").exists()


def test_a_budget_given_as_a_method_option_stands_with_lossless(tmp_path, monkeypatch):
    seen = {}

    def capture(config):
        seen.update(config.options)
        raise ConfigError("captured")  # stop before any loading

    monkeypatch.setattr(prunekit.recipes.prune, "run_prune", capture)
    args = ["prune", "--model", "m", "--method", "peer", "--lossless", "--out", tmp_path / "o"]
    assert_user_error(invoke(*args, "--method-option", "budget=1"), "captured")
    assert seen["budget"] == 1
    assert_user_error(invoke(*args), "captured")
    assert seen["budget"] == 0.0  # --lossless alone: epsilon 0


@pytest.mark.skipif(minilm_path() is None, reason="needs the default MiniLM package")
def test_budget_mode_refuses_a_floor_that_leaves_nothing_to_remove(tmp_path):
    result = invoke(
        "prune", "--model", "default", "--task", "rte", "--method", "astar",
        "--allow-untrained-head", "--at-least-heads-per-layer", "12",
        "--data-dir", glue_dir(), "--out", tmp_path / "o",
    )  # fmt: skip
    # the model loads first (a warning about its new classifier), then the one-line error
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("prunekit: error: --at-least-heads-per-layer 12 leaves no head")
    assert not (tmp_path / "o").exists()


def test_a_folder_that_is_not_a_model_is_named_before_the_task(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    result = invoke("prune", "--model", tmp_path / "run", "--heads", "0.5", "--out", tmp_path / "o")
    assert_user_error(result, "has no config.json")

"""The main job's train cap: what `prunekit run` fine-tunes on (no training here)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from prunekit.cli import app
from prunekit.cli.study_commands import _train_cap
from prunekit.recipes.run import MAIN_JOB_TRAIN_CAP, RunConfig, _capped


def test_the_job_caps_the_recipes_train_split_and_zero_lifts_the_cap():
    assert RunConfig().max_train_samples == MAIN_JOB_TRAIN_CAP == 20000
    assert _capped(None, MAIN_JOB_TRAIN_CAP) == 20000  # SST-2's recipe: the whole split
    assert _capped(5000, MAIN_JOB_TRAIN_CAP) == 5000  # a recipe's own smaller subset wins
    assert _capped(None, None) is None
    assert RunConfig(**_train_cap(None)).max_train_samples == 20000
    assert RunConfig(**_train_cap(0)).max_train_samples is None
    assert RunConfig(**_train_cap(300)).max_train_samples == 300


def test_a_negative_cap_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(
        app, ["run", "--task", "rte", "--out", str(tmp_path / "o"), "--max-train-samples", "-3"]
    )
    assert result.exit_code == 2
    assert "--max-train-samples" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", [None, 1])
def test_run_config_accepts_no_cap_or_a_positive_one(value):
    assert RunConfig(max_train_samples=value).max_train_samples == value

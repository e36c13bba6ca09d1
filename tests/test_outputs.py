"""Outputs are replaced whole or not at all."""

from __future__ import annotations

import json
import os

import pytest
import torch

from prunekit.errors import OutputExistsError
from prunekit.outputs import atomic_output_dir, check_output_dir, write_json


def test_write_json_replaces_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json(path, {"dev": 84.6})
    assert json.loads(path.read_text()) == {"dev": 84.6}

    def killed(*args):  # the process dies between writing and renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"dev": 0.0})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"dev": 84.6}  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temp left
    write_json(path, [1, 2])
    assert json.loads(path.read_text()) == [1, 2]


def test_an_output_that_cannot_be_created_is_refused_before_any_work(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputExistsError, match="a-file is not a writable directory"):
        check_output_dir(tmp_path / "a-file" / "out", overwrite=False)
    assert check_output_dir(tmp_path / "new" / "out", overwrite=False) == tmp_path / "new" / "out"


def test_saved_models_are_readable_by_others_under_the_usual_umask(tmp_path):
    """tempfile makes 0700 folders and safetensors 0600 files: renamed into place, a saved
    model was private to its writer; it gets what mkdir and open give under the umask."""
    from conftest import tiny_model

    from prunekit import PruningPlan, apply_plan, save

    before = os.umask(0o022)
    try:
        model = tiny_model("bert")
        plan = PruningPlan.dense(3, 4, 37).with_masks({"0.ffn_in": torch.rand(37, 32) > 0.5})
        save(apply_plan(model, plan), tmp_path / "model")  # the masks file: its own writer
    finally:
        os.umask(before)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    for path in (tmp_path / "model").iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path.name


def test_under_a_launch_only_the_main_process_renames_its_output(tmp_path, monkeypatch):
    import prunekit.outputs

    barriers = []
    monkeypatch.setattr(prunekit.outputs, "wait_for_everyone", lambda: barriers.append(1))
    monkeypatch.setattr(prunekit.outputs, "is_main_process", lambda: False)
    monkeypatch.setattr(prunekit.outputs, "launched", lambda: True)
    with atomic_output_dir(tmp_path / "own") as tmp:  # one process's own folder: no waiting
        (tmp / "a.txt").write_text("this rank's")
    assert (tmp_path / "own" / "a.txt").is_file() and not barriers
    with atomic_output_dir(tmp_path / "out", shared=True) as tmp:
        (tmp / "a.txt").write_text("another rank's copy")
    assert not (tmp_path / "out").exists() and sorted(tmp_path.iterdir()) == [tmp_path / "own"]
    assert len(barriers) == 3  # around the check, and after (where the main one has renamed)

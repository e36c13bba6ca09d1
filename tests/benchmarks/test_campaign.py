"""benchmarks/campaign.py: pending steps run in order and are recorded once, a failed step is
not recorded and its dependents wait, a trained artefact is copied into the results, and a
step that does not fit the hours left is not started."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import campaign  # noqa: E402


def _append(path: Path, text: str) -> str:
    return f"python -c \"open(r'{path}', 'a').write('{text}')\""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign, "ROOT", tmp_path)
    monkeypatch.setattr(campaign, "RECORD", tmp_path / "results" / "campaign.json")
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))
    return tmp_path


def _steps(root: Path) -> tuple[campaign.Step, ...]:
    log = root / "log.txt"
    return (
        campaign.Step("first", 1, "writes a", 1, (_append(log, "a"),), ("log.txt",)),
        campaign.Step("broken", 1, "fails", 1, ("python -c 'raise SystemExit(3)'",), ()),
        campaign.Step("needs-broken", 1, "waits", 1, (_append(log, "x"),), (), after=("broken",)),
        campaign.Step(
            "artefact",
            1,
            "trains, then copies",
            1,
            (
                f"python -c \"import os; os.makedirs(r'{root / 'trained'}'); "
                f"open(r'{root / 'trained' / 'w.txt'}', 'w').write('w'); "
                f"open(r'{log}', 'a').write('t')\"",
            ),  # fmt: skip
            ("results/artefact",),
            copy=("trained", "results/artefact"),
        ),
        campaign.Step("long", 1, "too long for the hours", 600, (_append(log, "l"),), ()),
    )


def test_steps_run_once_in_order_and_a_failure_holds_back_its_dependents(
    workspace, monkeypatch, capsys
):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    assert campaign.main(["--hours", "1"]) == 1  # "broken" failed
    log = workspace / "log.txt"
    assert log.read_text() == "at"  # "needs-broken" waited, "long" did not fit in an hour
    assert (workspace / "results" / "artefact" / "w.txt").read_text() == "w"
    record = json.loads(campaign.RECORD.read_text())
    assert sorted(record) == ["artefact", "first"]
    assert record["first"]["issue"] == 1 and record["first"]["device"]
    out = capsys.readouterr().out
    assert "[broken] FAILED" in out and "[needs-broken] skipped: needs broken" in out
    assert "[long] skipped" in out
    # again: the finished steps are not run again, the others are
    assert campaign.main(["--only", "first,long"]) == 0
    assert log.read_text() == "atl"
    assert sorted(json.loads(campaign.RECORD.read_text())) == ["artefact", "first", "long"]


def test_a_trained_artefact_not_yet_copied_is_copied_without_training_again(workspace, monkeypatch):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    (workspace / "trained").mkdir()
    (workspace / "trained" / "w.txt").write_text("kept")
    assert campaign.main(["--only", "artefact"]) == 0
    assert (workspace / "results" / "artefact" / "w.txt").read_text() == "kept"
    assert not (workspace / "log.txt").exists()  # the training command did not run


def test_unknown_steps_are_a_usage_error(workspace, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    with pytest.raises(SystemExit) as exit_:
        campaign.main(["--only", "first,nope"])
    assert exit_.value.code == 2 and "unknown steps ['nope']" in capsys.readouterr().err


def test_the_real_steps_name_existing_scripts_and_their_prerequisites():
    names = [step.name for step in campaign.STEPS]
    assert len(names) == len(set(names))
    for position, step in enumerate(campaign.STEPS):
        assert set(step.after) <= set(names[:position])  # prerequisites come first
        for command in step.commands:
            line = campaign.argv(command, step, "cuda")
            if line[0] == sys.executable:
                assert (campaign.ROOT / line[1]).is_file(), line[1]
            assert ("--device" in line) == step.takes_device


def test_commit_records_each_finished_step_and_the_rows_of_a_failed_one(workspace, monkeypatch):
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=workspace, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    rows = workspace / "rows.txt"
    steps = (
        campaign.Step("ok", 7, "writes rows", 1, (_append(rows, "1"),), ("rows.txt",)),
        campaign.Step(
            "half",
            7,
            "a row, then fails",
            1,
            (_append(rows, "2"), "python -c 'raise SystemExit(1)'"),
            ("rows.txt",),
        ),  # fmt: skip
    )
    monkeypatch.setattr(campaign, "STEPS", steps)
    assert campaign.main(["--commit"]) == 1
    subjects = git("log", "--format=%s").splitlines()
    assert subjects == [
        "campaign half (issue 7): a row, then fails (partial: a command failed, the runs "
        "finished before it)",
        "campaign ok (issue 7): writes rows",
    ]
    assert git("show", "HEAD:rows.txt") == "12"
    assert sorted(json.loads(git("show", "HEAD:results/campaign.json"))) == ["ok"]
    assert git("status", "--porcelain") == ""

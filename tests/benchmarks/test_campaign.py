"""benchmarks/campaign.py: pending steps run in order and are recorded once, a failed step is
not recorded and its dependents wait, a trained artefact is copied into the results, and a
step that does not fit the hours left (dense fine-tunes the cache lacks included) is not
started."""

from __future__ import annotations

import json
import os
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
    assert "[broken] FAILED" in out and "[needs-broken] skipped: waits for broken" in out
    assert "[long] skipped" in out
    # again: the finished steps are not run again, the others are
    assert campaign.main(["--only", "first,long"]) == 0
    assert log.read_text() == "atl"
    assert sorted(json.loads(campaign.RECORD.read_text())) == ["artefact", "first", "long"]


def test_an_artefact_of_this_step_is_copied_without_training_again_and_a_foreign_one_refused(
    workspace, monkeypatch, capsys
):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    (workspace / "trained").mkdir()
    (workspace / "trained" / "w.txt").write_text("kept")
    # not made by this step (other settings, perhaps): neither copied nor trained over
    assert campaign.main(["--only", "artefact"]) == 1
    assert "exists but this step did not make it" in capsys.readouterr().out
    assert not (workspace / "results" / "artefact").exists()
    # made by it, killed before its copy: copied without training again
    campaign._trained_marker(campaign.STEPS[3]).parent.mkdir(parents=True)
    campaign._trained_marker(campaign.STEPS[3]).touch()
    assert campaign.main(["--only", "artefact"]) == 0
    assert (workspace / "results" / "artefact" / "w.txt").read_text() == "kept"
    assert not (workspace / "log.txt").exists()  # the training command did not run


def test_a_step_waits_without_failing_when_its_prerequisite_did_not_fit(workspace, monkeypatch):
    monkeypatch.setattr(
        campaign,
        "STEPS",
        (
            campaign.Step("slow", 1, "long", 600, ("python -c pass",), ()),
            campaign.Step("next", 1, "after it", 1, ("python -c pass",), (), after=("slow",)),
        ),
    )
    assert campaign.main(["--hours", "1"]) == 0
    assert not campaign.RECORD.exists()


def test_estimates_add_the_dense_fine_tunes_the_cache_lacks_once(workspace, monkeypatch, capsys):
    from prunekit.train.task_recipes import dense_key, recipe_for

    cache = workspace / "dense"
    monkeypatch.setenv("PRUNEKIT_DENSE_CACHE", str(cache))
    monkeypatch.setattr(campaign, "DENSE_RECORD", workspace / "dense.json")
    key = dense_key("default", "mrpc", 0, recipe_for("mrpc"))
    other = {"key": "mrpc-default-s0-0123456789", "train_seconds": 6000.0}  # another recipe
    sweep = [{"key": key, "train_seconds": 600.0}, other]
    campaign.write_json(campaign.DENSE_RECORD, {"tasks": {"mrpc": {"sweep": sweep}}})
    run = ("python -c pass",)
    steps = (
        campaign.Step("a", 1, "", 5, run, (), dense=campaign.dense_models("mrpc:0")),
        campaign.Step("b", 1, "", 5, run, (), dense=campaign.dense_models("mrpc:0,1")),
        campaign.Step("c", 1, "", 5, run, ()),
    )
    monkeypatch.setattr(campaign, "STEPS", steps)
    assert steps[1].dense == (("mrpc", 0), ("mrpc", 1))
    monkeypatch.setattr(campaign, "DENSE_SLOWDOWN", 1.5)  # the slower CPU's
    # seed 0's recipe model took 10 min (15 on the slower CPU); seed 1's is counted alike; an
    # untimed task, the default
    assert campaign.estimate(steps[1]) == (35.0, ["mrpc:0", "mrpc:1"])
    assert campaign.dense_minutes("cola") == campaign.UNTIMED_DENSE_MINUTES
    assert campaign.main(["--list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "~  20 min  pending, dense mrpc:0 " in lines["a"]
    assert "~  20 min  pending, dense mrpc:1 " in lines["b"]  # seed 0 comes from step a
    assert "~   5 min  pending " in lines["c"]
    (cache / key).mkdir(parents=True)
    (cache / key / "metrics.json").write_text("{}")  # cached: nothing to add
    assert campaign.estimate(steps[0]) == (5.0, [])
    # --hours counts the dense fine-tune: 20 min do not fit in 12, 5 do
    assert campaign.main(["--hours", "0.2", "--only", "b,c"]) == 0
    assert sorted(json.loads(campaign.RECORD.read_text())) == ["c"]
    assert "[b] skipped: ~20 min (with dense mrpc:1) does not fit" in capsys.readouterr().out


def test_unknown_steps_are_a_usage_error(workspace, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    with pytest.raises(SystemExit) as exit_:
        campaign.main(["--only", "first,nope"])
    assert exit_.value.code == 2 and "unknown steps ['nope']" in capsys.readouterr().err


def test_the_real_steps_name_existing_scripts_that_take_the_device_they_are_given():
    names = [step.name for step in campaign.STEPS]
    assert len(names) == len(set(names))
    for position, step in enumerate(campaign.STEPS):
        assert set(step.after) <= set(names[:position])  # prerequisites come first
        for task, seed in step.dense:  # a task with a recipe, a seed the benchmarks take
            assert campaign.recipe_for(task) and seed in (0, 1, 2)
        for command in step.commands:
            line = campaign.argv(command, step, "cuda")
            if line[0] == sys.executable:  # a benchmark: --device only where it has the option
                script = (campaign.ROOT / line[1]).read_text()
                assert ("add_device_argument(" in script) == step.takes_device, line[1]
            else:
                assert Path(line[0]).name == "prunekit" and step.takes_device


def test_commit_records_each_finished_step_and_the_rows_of_a_failed_one(workspace, monkeypatch):
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=workspace, check=True, capture_output=True, text=True
        ).stdout

    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)  # no signing or hooks of this machine
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (workspace / ".git" / "info" / "exclude").write_text("runs/\n")  # as the repository's
    (workspace / "unrelated.txt").write_text("staged by someone else")
    git("add", "unrelated.txt")
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
        campaign.Step("early", 7, "fails first", 1, ("python -c 'raise SystemExit(1)'",), ("x",)),
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
    assert git("status", "--porcelain") == "A  unrelated.txt\n"  # staged, never committed


def test_a_second_campaign_is_refused_while_one_holds_the_lock(workspace, monkeypatch, capsys):
    monkeypatch.setattr(campaign, "STEPS", _steps(workspace))
    with campaign.campaign_lock() as held:
        assert held is not None
        with pytest.raises(SystemExit) as info:
            campaign.main(["--only", "first"])
        assert info.value.code == 2 and "holds runs/.campaign.lock" in capsys.readouterr().err
    assert campaign.main(["--only", "first"]) == 0  # released with the first

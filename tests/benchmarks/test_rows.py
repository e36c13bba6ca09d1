"""benchmarks/_rows.py: a fresh checkout resumes a benchmark from its committed rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

from _rows import (  # noqa: E402
    devices_description,
    keep_settings,
    keyed_rows,
    restore_run_dir,
    restore_tasks,
)


def test_committed_rows_and_settings_go_back_into_a_missing_run_dir(tmp_path):
    rows = [{"key": "hisp|0.5|0|r0", "task": "rte"}, {"key": "hisp|0.5|0|r1", "task": "rte"}]
    settings = tmp_path / "settings" / "rte.json"
    settings.parent.mkdir()
    settings.write_text(json.dumps({"task": "rte", "recover_max_samples": 10_000}))
    run_dir = tmp_path / "runs" / "rte"

    assert restore_run_dir(run_dir, rows, settings) == 2
    assert list(keyed_rows(run_dir / "results.jsonl")) == [r["key"] for r in rows]
    assert json.loads((run_dir / "config.json").read_text())["recover_max_samples"] == 10_000

    # again: nothing twice; a row the run dir lacks is appended; its own settings stay
    (run_dir / "config.json").write_text(json.dumps({"task": "rte", "recover_max_samples": 5}))
    later = {"key": "l0|0.5|0|r0", "task": "rte"}
    assert restore_run_dir(run_dir, [*rows, later], settings) == 1
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 3
    assert json.loads((run_dir / "config.json").read_text())["recover_max_samples"] == 5


def test_each_task_gets_its_own_rows_back_although_run_keys_repeat_across_tasks(tmp_path):
    results = tmp_path / "results"
    (results / "settings").mkdir(parents=True)
    rows = [
        {"key": f"hisp|0.5000|{seed}|r1", "task": task, "dev": dev}
        for task, dev in (("rte", 55.0), ("mrpc", 85.0))
        for seed in (0, 1)
    ]
    (results / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (results / "settings" / "rte.json").write_text(json.dumps({"task": "rte"}))
    run_dirs = {task: tmp_path / "runs" / task for task in ("rte", "mrpc", "stsb")}

    assert restore_tasks(results, run_dirs) == {"rte": 2, "mrpc": 2, "stsb": 0}
    mrpc = keyed_rows(run_dirs["mrpc"] / "results.jsonl")
    assert [r["dev"] for r in mrpc.values()] == [85.0, 85.0]
    assert (run_dirs["rte"] / "config.json").is_file()
    assert not (run_dirs["mrpc"] / "config.json").exists()  # no settings kept: none made up
    assert restore_tasks(tmp_path / "nothing-committed", run_dirs) == dict.fromkeys(run_dirs, 0)


def test_kept_settings_are_what_a_fresh_run_dir_gets_back(tmp_path):
    run_dir, settings = tmp_path / "runs" / "rte", tmp_path / "results" / "settings" / "rte.json"
    keep_settings(run_dir, settings)  # nothing run yet: nothing kept
    assert not settings.exists()
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"task": "rte", "search_samples": 1000}))
    keep_settings(run_dir, settings)
    fresh = tmp_path / "fresh" / "rte"
    restore_run_dir(fresh, [], settings)
    assert json.loads((fresh / "config.json").read_text())["search_samples"] == 1000


def test_devices_name_the_processors_of_the_rows_that_record_them():
    rows = [
        {"device": "cpu"},  # written before rows named their processor
        {"device": "cpu", "cpu": "AMD EPYC"},
        {"device": "cuda:0 (NVIDIA H200)", "cpu": "AMD EPYC"},
    ]
    assert devices_description(rows) == (
        "cpu + cuda:0 (NVIDIA H200) (AMD EPYC; older rows that do not name theirs: 1)"
    )
    assert devices_description([{"device": "cpu"}]) == "cpu"


def test_a_row_appended_after_a_torn_line_survives(tmp_path):
    from _rows import append_row, keyed_rows

    path = tmp_path / "results.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b", "de')  # a kill mid-write
    append_row(path, {"key": "c"})
    assert list(keyed_rows(path)) == ["a", "c"]

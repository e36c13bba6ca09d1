"""benchmarks/head_baselines.py: a report of some tasks never drops the other tasks' rows."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import head_baselines  # noqa: E402
from _rows import restore_tasks  # noqa: E402

from prunekit.report import read_results  # noqa: E402

COMMITTED = Path(head_baselines.RESULTS) / "full-bf16-grouped"


def test_report_of_one_task_keeps_every_tasks_rows(tmp_path, monkeypatch):
    # the SMP and peer blocks read other benchmarks' rows (and GLUE data): not this test's
    monkeypatch.setattr(head_baselines, "own_protocol_rows", lambda tasks, loop: [])
    preset = head_baselines.PRESETS["full"]
    committed = read_results(COMMITTED / "results.jsonl")
    assert {row["task"] for row in committed} == set(preset["tasks"])
    results, runs = tmp_path / "results", tmp_path / "runs"
    results.mkdir()
    (results / "results.jsonl").write_bytes((COMMITTED / "results.jsonl").read_bytes())
    restore_tasks(results, {task: runs / task for task in preset["tasks"]})

    loop = {"precision": "bf16", "group_by_length": True}
    head_baselines.write_report("full", preset, runs, results, loop, ["mrpc"])

    kept = read_results(results / "results.jsonl")
    assert len(kept) == len(committed)
    assert {row["task"] for row in kept} == set(preset["tasks"])
    report = (results / "report.md").read_text()
    assert "## mrpc" in report and "## rte" not in report and "## sst2" not in report

"""benchmarks/smp_diagnostics.py: a run on other tasks adds to the results file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import smp_diagnostics  # noqa: E402

SETTINGS = {
    "pruner": "builtin",
    "pruner_steps": 1000,
    "seed": 0,
    "examples": 192,
    "random_sets": 16,
}


def test_new_tasks_are_added_and_tasks_measured_again_replace_their_row():
    previous = {
        **SETTINGS,
        "tasks": [{"task": "mrpc", "kl_smp": 1.0}, {"task": "rte", "kl_smp": 2.0}],
    }
    rows = smp_diagnostics.merged(
        previous, SETTINGS, [{"task": "rte", "kl_smp": 3.0}, {"task": "cola", "kl_smp": 4.0}]
    )
    assert rows == [
        {"task": "mrpc", "kl_smp": 1.0},
        {"task": "rte", "kl_smp": 3.0},
        {"task": "cola", "kl_smp": 4.0},
    ]


def test_the_same_pruner_spelled_another_way_keeps_its_rows():
    previous = {**SETTINGS, "pruner": "./builtin", "tasks": [{"task": "mrpc", "kl_smp": 1.0}]}
    rows = smp_diagnostics.merged(previous, SETTINGS, [{"task": "cola", "kl_smp": 4.0}])
    assert [r["task"] for r in rows] == ["mrpc", "cola"]


def test_rows_made_with_other_settings_are_not_mixed_in():
    previous = {**SETTINGS, "examples": 64, "tasks": [{"task": "mrpc", "kl_smp": 1.0}]}
    new = [{"task": "cola", "kl_smp": 4.0}]
    assert smp_diagnostics.merged(previous, SETTINGS, new) == new
    assert smp_diagnostics.merged(None, SETTINGS, new) == new


def test_the_markdown_is_written_with_rows_from_before_the_representation_column(
    tmp_path, monkeypatch
):
    old = {"task": "mrpc", "channel": "pair", "examples": 192, "score_range": [0.1, 1.9]}
    old |= {"kl_smp": 0.08, "kl_inverse": 0.14, "kl_random_mean": 0.09, "kl_random_std": 0.01}
    old |= {"kl_random_min": 0.07, "kl_random_max": 0.12, "random_sets": 16}
    old |= {"smp_beats_random_share": 0.8125}
    (tmp_path / "diagnostics.json").write_text(json.dumps({**SETTINGS, "tasks": [old]}))
    monkeypatch.setattr(smp_diagnostics, "RESULTS", tmp_path)
    args = argparse.Namespace(pruner="builtin", seed=0, examples=192, random=16)
    new = {**old, "task": "cola", "channel": "single", "representation": "mean-pooled"}
    written = smp_diagnostics.write([new], {"steps": 1000}, args)
    text = written.read_text()
    assert "| mrpc | pooled [CLS] | 0.0800 |" in text and "| cola | mean-pooled |" in text
    assert "81% of 16" in text

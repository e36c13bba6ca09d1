"""benchmarks/smp_diagnostics.py: a run on other tasks adds to the results file."""

from __future__ import annotations

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


def test_rows_made_with_other_settings_are_not_mixed_in():
    previous = {**SETTINGS, "examples": 64, "tasks": [{"task": "mrpc", "kl_smp": 1.0}]}
    new = [{"task": "cola", "kl_smp": 4.0}]
    assert smp_diagnostics.merged(previous, SETTINGS, new) == new
    assert smp_diagnostics.merged(None, SETTINGS, new) == new

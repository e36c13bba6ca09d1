"""benchmarks/dense.py: the budget runs that justify a missed target, and the loop they train in."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import dense  # noqa: E402

from prunekit.train.task_recipes import TaskRecipe, dense_key  # noqa: E402


def _asked(monkeypatch, budget_grid: bool, budget_loop: dict | None) -> list[TaskRecipe]:
    """The recipes a missed task's budget stage asks for (no training: `run` is recorded)."""
    chosen = TaskRecipe(learning_rate=1e-4, epochs=3)
    asked: list[tuple[TaskRecipe, int, str]] = []

    def run(task, runs):
        asked.extend(runs)
        return [{"dev": 50.0} for _ in runs]  # below every target: the budget stage runs

    runner = dense.Runner("default", None)
    monkeypatch.setattr(runner, "choose", lambda task: chosen)
    monkeypatch.setattr(runner, "run", run)
    runner.task("rte", budget_grid, budget_loop)
    budget = [(recipe, seed) for recipe, seed, stage in asked if stage == dense.BUDGET]
    assert all(seed == 0 for _, seed in budget)
    return [recipe for recipe, _ in budget]


def test_a_missed_target_trains_four_times_the_epochs_at_every_rate_of_the_grid(monkeypatch):
    only_chosen = _asked(monkeypatch, budget_grid=False, budget_loop=None)
    assert [(r.learning_rate, r.epochs) for r in only_chosen] == [(1e-4, 12)]
    grid = _asked(monkeypatch, budget_grid=True, budget_loop=None)
    assert [r.learning_rate for r in grid] == list(dense.LEARNING_RATES)
    assert {r.epochs for r in grid} == {12} and {r.precision for r in grid} == {"fp32"}


def test_budget_runs_in_another_loop_are_keyed_apart_and_say_so(monkeypatch):
    loop = {"precision": "bf16", "group_by_length": True}
    (fast,) = _asked(monkeypatch, budget_grid=False, budget_loop=loop)
    (plain,) = _asked(monkeypatch, budget_grid=False, budget_loop=None)
    assert fast.precision == "bf16" and fast.group_by_length and fast.epochs == plain.epochs
    assert dense_key("default", "rte", 0, fast) != dense_key("default", "rte", 0, plain)
    assert dense._loop_text(fast.settings()) == ", bf16, length-grouped"
    assert dense._loop_text(plain.settings()) == ""

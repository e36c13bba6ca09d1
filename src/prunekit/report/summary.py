"""Aggregate comparison rows (results.jsonl) into mean ± std per method, fraction and regime."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from scipy import stats

__all__ = [
    "Cell",
    "PairedGap",
    "Retention",
    "aggregate",
    "collapse_mark",
    "collapse_note",
    "constant_floor",
    "dense_reference",
    "no_retention",
    "is_collapsed",
    "mean_std",
    "paired_gaps",
    "retention_summary",
    "spread",
    "structure_rows",
]


@dataclass(frozen=True)
class Cell:
    task: str
    method: str
    regime: str
    fraction: float
    mean: float
    std: float
    n: int
    delta: float  # mean minus the dense mean of the same seeds
    collapsed: int = 0  # runs no better than the best constant prediction

    @property
    def label(self) -> str:
        return mean_std(self.mean, self.std, self.n, 2) + collapse_mark(self.collapsed)


def mean_std(mean: float, std: float, n: int, digits: int) -> str:
    """``mean ± std``; one seed has no spread to show, so ``mean (n=1)`` instead of ``± 0``."""
    if n < 2:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def spread(values: list[float], digits: int = 2) -> str:
    """`mean_std` of ``values`` (sample std)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean_std(statistics.fmean(values), std, len(values), digits)


def collapse_mark(collapsed: int) -> str:
    """``‡n`` after a number that includes n runs no better than a constant prediction."""
    return f" ‡{collapsed}" if collapsed else ""


def collapse_note(floor: dict[str, float]) -> str:
    """The footnote of ``‡n`` marks, naming each task's constant-answer score."""
    scores = ", ".join(f"{task} {value:.2f}" for task, value in sorted(floor.items()))
    return (
        "‡n: n of the runs averaged scored no better on dev than one constant answer for every "
        f"example ({scores}): whatever their Δ, they show nothing learned beyond that."
    )


def is_collapsed(row: dict[str, Any], split: str = "dev") -> bool:
    """Whether a run scored no better than the best constant prediction (rows that record it)."""
    floor = row.get(f"{split}_constant")
    return floor is not None and row[split] <= floor + 1e-9


def constant_floor(rows: list[dict[str, Any]], split: str = "dev") -> dict[str, float]:
    """Per task, the best constant prediction's metric recorded in the rows (tasks that have it)."""
    return {
        r["task"]: r[f"{split}_constant"] for r in rows if r.get(f"{split}_constant") is not None
    }


def dense_reference(rows: list[dict[str, Any]], split: str = "dev") -> dict[str, float]:
    """Mean dense metric per task, one value per seed."""
    per_task: dict[str, dict[int, float]] = defaultdict(dict)
    for row in rows:
        per_task[row["task"]][row["seed"]] = row[f"dense_{split}"]
    return {task: statistics.fmean(seeds.values()) for task, seeds in per_task.items()}


def no_retention(rows: list[dict[str, Any]], split: str = "dev") -> dict[str, list[int]]:
    """Tasks whose dense model scored <= 0 for some seed (a collapsed CoLA at MCC 0), with
    those seeds: a ratio to it is undefined (or flips sign), so the summaries leave them out."""
    seeds: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        dense = row[f"dense_{split}"]
        if dense is not None and dense <= 0 and row["task"] != "wnli":
            seeds[row["task"]].add(row["seed"])
    return {task: sorted(s) for task, s in sorted(seeds.items())}


def _retention(row: dict[str, Any], split: str) -> float | None:
    """``100 * pruned / dense`` of one row, or None: GLUE's WNLI is reported apart, and there is
    no ratio to a dense model that scored <= 0 (`no_retention` names such tasks)."""
    dense = row[f"dense_{split}"]
    if dense is None or dense <= 0 or row["task"] == "wnli":
        return None
    return 100.0 * row[split] / dense


def structure_rows(rows: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """``task``'s rows of one regime, for what a pruned model's structure alone decides (heads
    kept, size, speed): R0's, whose rows every sweep has by default, else the first regime the
    rows have (an R1-only sweep's rows carry the same plans and timings)."""
    of_task = [r for r in rows if r["task"] == task]
    regimes = sorted({r["regime"] for r in of_task}, key=lambda r: (r != "r0", r))
    return [r for r in of_task if regimes and r["regime"] == regimes[0]]


def aggregate(rows: list[dict[str, Any]], split: str = "dev") -> list[Cell]:
    """One `Cell` per (task, method, regime, fraction), sorted; std is the sample std (0 if n=1)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["method"], row["regime"], row["fraction"])].append(row)
    cells = []
    for (task, method, regime, fraction), members in sorted(groups.items()):
        values = [m[split] for m in members]
        dense = statistics.fmean(m[f"dense_{split}"] for m in members)
        mean = statistics.fmean(values)
        cells.append(
            Cell(
                task=task,
                method=method,
                regime=regime,
                fraction=fraction,
                mean=mean,
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                n=len(values),
                delta=mean - dense,
                collapsed=sum(is_collapsed(m, split) for m in members),
            )
        )
    return cells


@dataclass(frozen=True)
class Retention:
    """Dev metric as % of the dense model's, averaged over tasks, then mean ± std over seeds."""

    method: str
    regime: str
    fraction: float
    mean: float
    std: float
    seeds: int
    tasks: tuple[str, ...]
    collapsed: int = 0  # runs (task, seed) no better than a constant prediction

    @property
    def label(self) -> str:
        return mean_std(self.mean, self.std, self.seeds, 1) + collapse_mark(self.collapsed)


def retention_summary(rows: list[dict[str, Any]], split: str = "dev") -> list[Retention]:
    """One `Retention` per (method, regime, fraction): for each seed the mean over tasks of
    ``100 * pruned / dense`` (same seed's dense model), then mean and sample std over the seeds
    that have every task of that cell. When no seed has them all, the cell keeps the task set
    that the most seeds have (then the largest), rather than vanishing from the table. A task
    whose dense model scored <= 0 on some seed (`no_retention`) is left out for every seed."""
    per_seed: dict[tuple, dict[int, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    collapsed: dict[tuple, set[tuple[int, str]]] = defaultdict(set)
    # a task without a ratio on one seed is left out on all: every seed averages the same
    # tasks, so that seed still counts as complete (its other tasks are not dropped with it)
    undefined = no_retention(rows, split)
    for row in rows:
        retained = _retention(row, split)
        if retained is None or row["task"] in undefined:
            continue
        cell = (row["method"], row["regime"], row["fraction"])
        per_seed[cell][row["seed"]][row["task"]] = retained
        if is_collapsed(row, split):
            collapsed[cell].add((row["seed"], row["task"]))
    out = []
    for (method, regime, fraction), seeds in sorted(per_seed.items()):
        tasks = sorted(set().union(*(set(t) for t in seeds.values())))
        complete_seeds = [seed for seed, t in seeds.items() if len(t) == len(tasks)]
        if not complete_seeds:  # seeds ran different tasks: the set most seeds share
            tasks = max(
                (sorted(t) for t in seeds.values()),
                key=lambda s: (sum(set(s) <= set(t) for t in seeds.values()), len(s), s),
            )
            complete_seeds = [seed for seed, t in seeds.items() if set(tasks) <= set(t)]
        complete = [
            statistics.fmean(seeds[seed][task] for task in tasks) for seed in complete_seeds
        ]
        if not complete:
            continue
        out.append(
            Retention(
                method=method,
                regime=regime,
                fraction=fraction,
                mean=statistics.fmean(complete),
                std=statistics.stdev(complete) if len(complete) > 1 else 0.0,
                seeds=len(complete),
                tasks=tuple(tasks),
                collapsed=sum(  # only the runs this cell averages
                    seed in complete_seeds and task in tasks
                    for seed, task in collapsed[(method, regime, fraction)]
                ),
            )
        )
    return out


@dataclass(frozen=True)
class PairedGap:
    """One method's dev retention minus the leader's, paired over the (task, seed) runs that
    every method of its (regime, fraction) has. The leader's own entry has gap 0."""

    method: str
    leader: str
    regime: str
    fraction: float
    mean: float
    low: float  # two-sided 95% t interval of the mean gap (= mean when there is no spread)
    high: float
    wins: int  # runs on which the method retained more than the leader
    runs: int


def paired_gaps(rows: list[dict[str, Any]], split: str = "dev") -> list[PairedGap]:
    """Per (regime, fraction): the leader (highest mean retention over the runs every method
    has) and each method's paired gap to it. Seeds differ in noise from task to task, so
    read the interval as a guide, not a test. Fewer than three shared runs give no entry: with
    one degree of freedom the interval spans everything and says nothing."""
    retention: dict[tuple, dict[str, dict[tuple, float]]] = defaultdict(lambda: defaultdict(dict))
    for row in rows:
        retained = _retention(row, split)
        if retained is not None:
            point = (row["regime"], row["fraction"])
            retention[point][row["method"]][(row["task"], row["seed"])] = retained
    out = []
    for (regime, fraction), methods in sorted(retention.items()):
        shared = sorted(set.intersection(*(set(units) for units in methods.values())))
        if len(shared) < 3:
            continue
        means = {m: statistics.fmean(units[u] for u in shared) for m, units in methods.items()}
        leader = max(sorted(means), key=means.get)
        for method in sorted(methods):
            gaps = [methods[method][u] - methods[leader][u] for u in shared]
            mean = statistics.fmean(gaps)
            half = stats.t.ppf(0.975, len(gaps) - 1) * statistics.stdev(gaps) / math.sqrt(len(gaps))
            out.append(
                PairedGap(
                    method=method,
                    leader=leader,
                    regime=regime,
                    fraction=fraction,
                    mean=mean,
                    low=mean - half,
                    high=mean + half,
                    wins=sum(g > 0 for g in gaps),
                    runs=len(gaps),
                )
            )
    return out

"""The default head-pruning method is the one the committed comparison finds strongest at 50%
of heads with one recovery epoch: when new runs change the leader, this fails until the
default (and the README that quotes it) follow."""

from __future__ import annotations

from pathlib import Path

from prunekit.methods import DEFAULT_HEAD_METHOD, get_method
from prunekit.report.results import read_results
from prunekit.report.summary import paired_gaps

COMPARISON = (
    Path(__file__).parents[2]
    / "benchmarks"
    / "results"
    / "head_baselines"
    / "full-bf16-grouped"
    / "results.jsonl"
)


def _comparison_rows() -> list[dict]:
    # latest row per (task, run key), as the report reads them
    return list({(row["task"], row["key"]): row for row in read_results(COMPARISON)}.values())


def test_the_default_method_leads_the_committed_comparison_at_50_percent_r1():
    gaps = [g for g in paired_gaps(_comparison_rows()) if (g.regime, g.fraction) == ("r1", 0.5)]
    (leader,) = {gap.leader for gap in gaps}
    assert min(gap.runs for gap in gaps) >= 13  # the five-task comparison, not a subset of it
    assert leader == DEFAULT_HEAD_METHOD
    assert get_method(DEFAULT_HEAD_METHOD).to_dict()["default"]

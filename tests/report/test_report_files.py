"""report: a synthetic results.jsonl gives report.md with the expected numbers and the PNGs."""

from __future__ import annotations

import json
import re

import pytest

from prunekit.errors import DataError
from prunekit.recipes.report import run_report
from prunekit.report import aggregate
from prunekit.report.markdown import _budget_table, _seeds_shown
from prunekit.report.summary import paired_gaps, retention_summary


def row(method, fraction, seed, regime, dev):
    kept = [[0, 1], [2]] if fraction == 0.5 else [[0, 1, 2], [0, 2, 3]]
    return {
        "key": f"{method}|{fraction}|{seed}|{regime}",
        "task": "rte",
        "method": method,
        "fraction": fraction,
        "seed": seed,
        "regime": regime,
        "dev": dev,
        "validation": dev,
        "dense_dev": 70.0 + seed,
        "dense_validation": 70.0,
        "kept_heads": kept,
        "heads_kept": sum(map(len, kept)),
        "heads_removed": 8 - sum(map(len, kept)),
        "parameters": 1000 - 100 * fraction,
        "ideal_speedup": 1 + fraction,
        "measured_speedup": 1 + 0.9 * fraction,
    }


@pytest.fixture
def run_dir(tmp_path):
    rows = []
    for method, base in (("random", 60.0), ("hisp", 66.0)):
        for fraction in (0.25, 0.5):
            for seed in (0, 1):
                for regime, bonus in (("r0", 0.0), ("r1", 2.0)):
                    rows.append(row(method, fraction, seed, regime, base + bonus + 2 * seed))
    (tmp_path / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def test_aggregate_mean_std_and_delta(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cell = next(
        c for c in aggregate(rows) if (c.method, c.regime, c.fraction) == ("hisp", "r0", 0.5)
    )
    # seeds give 66 and 68: mean 67, sample std sqrt(2); dense mean (70 + 71) / 2 = 70.5
    assert cell.mean == pytest.approx(67.0)
    assert cell.std == pytest.approx(2**0.5)
    assert cell.delta == pytest.approx(-3.5)
    assert cell.n == 2


def test_report_writes_markdown_and_figures(run_dir):
    report = run_report(run_dir)
    text = report.read_text()
    assert "Dense: **70.50**" in text
    assert "| 50% | 67.00 ± 1.41 (-3.50) | 61.00 ± 1.41 (-9.50) |" in text  # R0 row, hisp | random
    assert "| 50% | 69.00 ± 1.41 (-1.50) | 63.00 ± 1.41 (-7.50) |" in text  # R1 row
    for name in ("rte_curves.png", "rte_heads_at_50.png", "rte_speed.png"):
        assert (run_dir / name).stat().st_size > 1000
        assert f"({name})" in text
    assert not list(run_dir.glob(".report-*"))


def test_report_removes_figures_of_an_earlier_report_only(run_dir):
    run_report(run_dir)
    (run_dir / "cola_curves.png").write_bytes(b"from a report that showed CoLA")
    (run_dir / "my_notes.png").write_bytes(b"the user's own")
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    kept = [r for r in rows if r["fraction"] != 0.5]  # no 50% rows: no head map at 50%
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in kept) + "\n")
    text = run_report(run_dir).read_text()
    assert not (run_dir / "cola_curves.png").exists()
    assert not (run_dir / "rte_heads_at_50.png").exists()
    assert "rte_heads_at_50.png" not in text
    assert (run_dir / "rte_curves.png").stat().st_size > 1000
    assert (run_dir / "my_notes.png").read_bytes() == b"the user's own"


def test_report_keeps_a_users_figure_named_like_its_own(run_dir):
    (run_dir / "paper_curves.png").write_bytes(b"the user's own")  # not a task's name
    (run_dir / "my-final_speed.png").write_bytes(b"the user's own")
    run_report(run_dir)
    assert (run_dir / "paper_curves.png").read_bytes() == b"the user's own"
    assert (run_dir / "my-final_speed.png").read_bytes() == b"the user's own"


def test_a_task_whose_dense_model_scored_zero_is_named_and_left_out_of_the_summary(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cola = [{**r, "task": "cola", "key": "cola|" + r["key"], "dense_dev": 0.0} for r in rows]
    assert retention_summary(rows + cola) == retention_summary(rows)  # cola adds nothing
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows + cola))
    text = run_report(run_dir).read_text()
    assert "no retention exists: cola (seeds 0, 1)" in text
    assert "Mean over tasks (rte)" in text


def test_a_task_without_retention_on_one_seed_drops_that_task_not_the_seed(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cola = [{**r, "task": "cola", "key": "cola|" + r["key"]} for r in rows]
    for r in cola:
        r["dense_dev"] = 0.0 if r["seed"] == 1 else r["dense_dev"]
    summary = retention_summary(rows + cola)
    assert summary == retention_summary(rows)  # rte on both seeds, cola on none
    assert {cell.seeds for cell in summary} == {2}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2]", "is a JSON list, not a result row"),
        ('{"task": "rte"}', "lacks key, method, seed, dev, dense_dev"),
    ],
)
def test_a_malformed_row_is_named_by_its_line(run_dir, line, problem):
    path = run_dir / "results.jsonl"
    rows = path.read_text().splitlines()
    path.write_text("\n".join([rows[0], line, *rows[1:]]) + "\n")
    with pytest.raises(DataError, match=f"results.jsonl:2 {problem}; fix or delete that line"):
        run_report(run_dir)


@pytest.mark.parametrize("value", [None, float("nan"), "84.1"])
def test_a_row_without_a_numeric_dev_is_refused(run_dir, value):
    path = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[-1]["dev"] = value
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=f"results.jsonl:{len(rows)} has dev"):
        run_report(run_dir)


def test_a_run_written_twice_is_named_by_both_lines_instead_of_averaged(run_dir):
    path = run_dir / "results.jsonl"
    rows = path.read_text().splitlines()
    rerun = json.loads(rows[0]) | {"dev": 10.0}
    path.write_text("\n".join([*rows, json.dumps(rerun)]) + "\n")
    key = json.loads(rows[0])["key"]
    with pytest.raises(
        DataError,
        match=rf"results.jsonl:{len(rows) + 1} repeats run {re.escape(key)} of task rte \(line 1\)",
    ):
        run_report(run_dir)


def test_the_same_run_of_two_tasks_is_two_runs(run_dir):
    path = run_dir / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    other = [r | {"task": "mrpc"} for r in rows]
    path.write_text("\n".join(json.dumps(r) for r in rows + other) + "\n")
    assert "mrpc" in run_report(run_dir).read_text().lower()


def test_a_torn_line_is_skipped_wherever_a_resumed_sweep_left_it(run_dir):
    path = run_dir / "results.jsonl"
    before = run_report(run_dir).read_text()
    rows = path.read_text().splitlines()
    # killed mid-write; the resumed sweep ended the torn line and appended after it
    path.write_text("\n".join([*rows[:-1], '{"key": "rte|ran', rows[-1]]) + "\n")
    assert run_report(run_dir).read_text() == before


def test_report_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="prunekit compare"):
        run_report(tmp_path)


def test_methods_that_trained_their_weights_are_marked_r1_equivalent(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for r in rows:
        if r["regime"] == "r1":
            trained = r["method"] == "hisp"  # pretend hisp trained its weights itself
            r |= {"r1_source": "method" if trained else "recovery", "budget_steps": 40}
            r["train_steps"] = 30 if trained else 40
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = run_report(run_dir).read_text()
    assert "| 50% | 69.00 ± 1.41 (-1.50)† | 63.00 ± 1.41 (-7.50) |" in text
    assert "hisp trained its weights itself (30 steps; the others recover for 40 steps)" in text
    assert "| 50% | 67.00 ± 1.41 (-3.50) | 61.00 ± 1.41 (-9.50) |" in text  # R0 unmarked


def test_the_report_opens_with_retention_averaged_over_tasks(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    # a second task where every method keeps exactly 90% of its dense model
    rows += [
        r | {"task": "mrpc", "key": "mrpc" + r["key"], "dev": 0.9 * r["dense_dev"]} for r in rows
    ]
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = run_report(run_dir).read_text()
    assert text.index("## Summary: dev retention") < text.index("## mrpc")
    # hisp, R0, 50%: rte 66/70 and 68/71 -> per seed (94.29 + 90) / 2 and (95.77 + 90) / 2
    seed0, seed1 = (100 * 66 / 70 + 90) / 2, (100 * 68 / 71 + 90) / 2
    mean, std = (seed0 + seed1) / 2, abs(seed0 - seed1) / 2**0.5
    assert f"| 50% | {mean:.1f} ± {std:.1f} |" in text


def test_methods_with_their_own_protocol_get_a_summary_block_and_no_curves(run_dir):
    protocol = "pruned before fine-tuning"
    own = [
        {"task": "rte", "method": "smp", "fraction": 0.5, "seed": s, "regime": protocol}
        | {"dev": 63.0 + s, "dense_dev": 70.0, "metric": "accuracy"}
        for s in (0, 1)
    ]
    text = run_report(run_dir, own_protocol=own).read_text()
    summary = text[: text.index("## rte")]
    assert summary.index("**R1, equal recovery budget**") < summary.index(f"**{protocol}**")
    block = summary[summary.index(f"**{protocol}**") :]
    # smp keeps 90% and 91.43% of its dense model: 90.7 ± 1.0; a block shows its own methods
    assert "| heads removed | smp |" in block and "| 50% | 90.7 ± 1.0 |" in block
    assert "| heads removed | hisp | random |" in summary  # R0 and R1: no empty smp column
    assert "smp" not in text[text.index("## rte") :]  # per-task tables: the sweep's rows only


def test_runs_no_better_than_a_constant_prediction_are_flagged(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    for r in rows:  # random R0's seed 0 (60) is below what the majority class scores (61)
        r["dev_constant"] = 61.0
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    random_r0 = next(
        c for c in aggregate(rows) if (c.method, c.regime, c.fraction) == ("random", "r0", 0.5)
    )
    assert random_r0.collapsed == 1  # seed 0: 60; seed 1: 62
    text = run_report(run_dir).read_text()
    assert "A constant prediction: 61.00." in text
    assert "| 50% | 67.00 ± 1.41 (-3.50) | 61.00 ± 1.41 ‡1 (-9.50) |" in text
    assert "‡n: n of the runs averaged scored no better" in text
    assert "on rte a constant answer alone retains 87% of dense" in text  # 61 / 70.5
    # rows of older runs carry no floor: nothing is flagged
    for r in rows:
        del r["dev_constant"]
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert "‡" not in run_report(run_dir).read_text()


def test_one_seed_shows_no_spread_instead_of_a_zero_std(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    one_seed = [r for r in rows if r["seed"] == 0]
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in one_seed) + "\n")
    text = run_report(run_dir).read_text()
    # hisp R0 50%: dev 66 against dense 70 -> 66.00 in the task table, 94.3% retained
    assert "66.00 (n=1) (-4.00)" in text and "94.3 (n=1)" in text
    assert "± 0.0" not in text


def gap_rows(method: str, runs: list[tuple[str, int]], retained: tuple[float, ...]) -> list:
    """R1 rows at 50% whose dev is ``retained`` % of a dense dev of 80, per (task, seed) run."""
    return [
        {"task": task, "seed": seed, "method": method, "regime": "r1", "fraction": 0.5}
        | {"dev": 0.8 * value, "dense_dev": 80.0}
        for (task, seed), value in zip(runs, retained, strict=True)
    ]


def test_paired_gaps_compare_each_method_with_the_leader_on_the_same_runs():
    runs = [("rte", 0), ("rte", 1), ("mrpc", 0)]
    rows = gap_rows("hisp", runs, (90.0, 92.0, 95.0))
    rows += gap_rows("l0", runs, (91.0, 94.0, 98.0))  # 1, 2, 3 points ahead
    # a run only random has does not enter the pairing
    rows += gap_rows("random", [*runs, ("cola", 0)], (80.0, 85.0, 96.0, 10.0))
    gaps = {g.method: g for g in paired_gaps(rows)}
    assert {g.leader for g in gaps.values()} == {"l0"} and gaps["l0"].mean == 0
    hisp = gaps["hisp"]
    # gaps -1, -2, -3: mean -2, sample std 1, t(0.975, 2 dof) = 4.3027
    half = 4.302653 / 3**0.5
    assert (hisp.runs, hisp.wins) == (3, 0)
    assert hisp.mean == pytest.approx(-2.0)
    assert (hisp.low, hisp.high) == pytest.approx((-2.0 - half, -2.0 + half), abs=1e-5)
    assert (gaps["random"].wins, gaps["random"].runs) == (0, 3)
    assert gaps["random"].mean == pytest.approx((-11 - 9 - 2) / 3)


def test_the_report_shows_each_method_against_the_leader(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert "## Against the leader" not in run_report(run_dir).read_text()  # 2 runs: too few
    # a second task where every method keeps exactly 90% of its dense model
    rows += [
        r | {"task": "mrpc", "key": "mrpc" + r["key"], "dev": 0.9 * r["dense_dev"]} for r in rows
    ]
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = run_report(run_dir).read_text()
    section = text[text.index("## Against the leader") : text.index("## mrpc")]
    # random retains 8.57 and 8.45 points less on rte (6 dev points under dense 70 and 71),
    # the same on mrpc: gaps (-8.57, -8.45, 0, 0), mean -4.26 ± t(0.975, 3) * 4.91 / 2
    assert "| 50% | 4 | leader | -4.3 [-12.1, +3.6], 0/4 |" in section
    assert section.count("**R1, equal recovery budget**") == 1


def test_fewer_than_three_shared_runs_give_no_interval():
    runs = [("rte", 0), ("rte", 1)]
    rows = gap_rows("hisp", runs, (90.0, 92.0)) + gap_rows("l0", runs, (91.0, 92.5))
    assert paired_gaps(rows) == []


def _grid_search_report(run_dir, seconds: float, **certificate) -> str:
    """The report of a run dir with one peer lossless row (two fractions tried) added."""
    budget = row("peer-budget", 0.5, 0, "r0", 69.5)
    budget.update(budget=0.5, dev_drop=0.5, dev_violation=False, decision_seconds=seconds)
    budget["certificate"] = {
        "split": "validation",
        "search_drop": 0.25,
        "evaluations": 2,
        "tried": [[0.5, 69.75, True], [0.75, 65.0, False]],
        "student_seconds": 150.0,
        **certificate,
    }
    with (run_dir / "results.jsonl").open("a") as results:
        results.write(json.dumps(budget) + "\n")
    return run_report(run_dir).read_text()


def test_a_grid_search_budget_row_lists_every_fraction_it_tried(run_dir):
    text = _grid_search_report(run_dir, seconds=12.0)
    assert "| peer | 0.5 | 0 | 5 | 0.25 | – | 0.50 | no | 2 | 12 |" in text
    assert (
        "- peer, B 0.5, seed 0: accuracy on the validation split, in the order of size: "
        "50% → 69.75 (within), 75% → 65.00 (over). Training them took 2.5 min." in text
    )


def test_a_grid_search_says_which_students_it_read_back_instead_of_training(run_dir):
    text = _grid_search_report(run_dir, seconds=3.0, students_from_memo=2)
    assert "| peer | 0.5 | 0 | 5 | 0.25 | – | 0.50 | no | 2 (2) | 3 |" in text
    assert "Training them took 2.5 min (2 of them read back from an earlier search's" in text


def test_the_dense_header_is_the_mean_over_the_seeds_it_names(run_dir):
    """A budget row of a seed the fixed-count table lacks (seed 5, dense 99) has a table of
    its own: the header and every Δ stay on seeds 0 and 1 (70 and 71)."""
    budget = row("peer-budget", 0.5, 5, "r0", 95.0) | {"dense_dev": 99.0}
    budget.update(budget=0.5, dev_drop=4.0, dev_violation=True, decision_seconds=1.0)
    budget["certificate"] = {"split": "validation", "search_drop": 0.1, "evaluations": 1}
    with (run_dir / "results.jsonl").open("a") as results:
        results.write(json.dumps(budget) + "\n")
    text = run_report(run_dir).read_text()
    assert (
        "(mean ± std over seeds 0, 1; Δ vs the dense model of the same seeds). Dense: **70.50**"
        in text
    )


def test_speed_ratios_from_a_busy_machine_are_marked(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert "~" not in run_report(run_dir).read_text()
    rows[0]["timing_warnings"] = ["batch 32 timings vary by 94% of the median"]
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = run_report(run_dir).read_text()
    assert "| 25% | random | 975.0 | 1.25x | 1.23x ~ | 0.98 |" in text
    assert "~: the timings behind this ratio varied by more than 10%" in text


def test_a_method_whose_seeds_ran_different_tasks_keeps_its_summary_cell():
    def retained(task, seed, dev):  # against a dense model at 80
        cell = {"method": "smp", "regime": "r1", "fraction": 0.5}
        return cell | {"task": task, "seed": seed, "dev": dev, "dense_dev": 80.0}

    # seeds 0 and 1 ran mrpc, seed 2 stsb: no seed has every task; mrpc is what most share
    rows = [retained("mrpc", 0, 72.0), retained("mrpc", 1, 76.0), retained("stsb", 2, 20.0)]
    (cell,) = retention_summary(rows)
    assert cell.tasks == ("mrpc",) and cell.seeds == 2
    assert cell.mean == pytest.approx((90.0 + 95.0) / 2)
    # a tie (one seed each) goes to the later name, so the cell never depends on row order
    (cell,) = retention_summary([rows[2], rows[0]])
    assert cell.tasks == ("stsb",) and cell.mean == pytest.approx(25.0)
    # a seed with every task: only such seeds count, as before
    (cell,) = retention_summary([*rows, retained("stsb", 0, 40.0)])
    assert cell.tasks == ("mrpc", "stsb") and cell.seeds == 1
    assert cell.mean == pytest.approx((90.0 + 50.0) / 2)
    # a collapsed run of a task the cell leaves out is not marked on it
    # (seeds: 0 ran stsb and rte, 1 stsb, 2 stsb and mrpc, so the cell averages stsb only)
    rows = [retained("stsb", s, 70.0) for s in (0, 1, 2)]
    rows += [retained("rte", 0, 60.0), retained("mrpc", 2, 60.0)]
    rows[-1]["dev_constant"] = 81.2  # mrpc seed 2 at or under the constant answer
    (cell,) = retention_summary(rows)
    assert cell.tasks == ("stsb",) and cell.seeds == 3 and cell.collapsed == 0
    (cell,) = retention_summary(rows[2:])  # seed 2 alone has both tasks: mrpc is averaged
    assert cell.tasks == ("mrpc", "stsb") and cell.collapsed == 1


def test_the_budget_table_names_the_regime_of_trained_students():
    def budget_row(method, trained):
        row = {"method": f"{method}-budget", "budget": 0.5, "seed": 0, "heads_removed": 9}
        row |= {"dev_drop": 0.1, "dev_violation": False, "certificate": {}}
        return row | ({"trained_by_method": True} if trained else {})

    astar = _budget_table([budget_row("astar", False)], "accuracy")[0]
    assert astar == "### Budget mode: the method picks the head count (R0)"
    both = _budget_table([budget_row("astar", False), budget_row("peer", True)], "accuracy")
    assert both[0].endswith("(R0; peer: its own trained students, R1)")


def test_a_cell_with_fewer_seeds_than_its_table_says_so():
    assert _seeds_shown("80.00 ± 1.00", 2, 3) == "80.00 ± 1.00 (n=2)"
    assert _seeds_shown("80.00 ± 1.00", 3, 3) == "80.00 ± 1.00"
    assert _seeds_shown("80.00 (n=1)", 1, 3) == "80.00 (n=1)"  # said already


def test_a_sweep_of_r1_alone_still_gets_its_speed_table_and_heads(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["regime"] == "r1"]  # `compare --regimes r1`
    (run_dir / "results.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    text = run_report(run_dir).read_text()
    assert "| 50% | hisp | 950.0 | 1.50x | 1.45x | 0.97 |" in text
    from prunekit.report.summary import structure_rows

    assert {r["regime"] for r in structure_rows(rows, "rte")} == {"r1"}


def test_wnli_is_reported_but_left_out_of_the_average_over_tasks(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    only_rte = {(c.method, c.regime, c.fraction): c.mean for c in retention_summary(rows)}
    rows += [r | {"task": "wnli", "key": "wnli" + r["key"], "dev": 0.0} for r in rows]
    with_wnli = {(c.method, c.regime, c.fraction): c.mean for c in retention_summary(rows)}
    assert with_wnli == only_rte
    rte_rows = [r for r in rows if r["task"] == "rte"]
    assert paired_gaps(rows) == paired_gaps(rte_rows)

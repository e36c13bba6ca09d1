"""benchmarks/peer.py: each study's rows go back into its own run dir on a fresh checkout (the
renamed ones as the `peer` rows they were), and the descending search runs only when asked."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import peer  # noqa: E402
from _rows import keyed_rows, write_rows  # noqa: E402

from prunekit.recipes.compare_config import run_key  # noqa: E402
from prunekit.train.task_recipes import recipe_for  # noqa: E402


def _args(**changes) -> argparse.Namespace:
    defaults = dict(
        recover_epochs=1,
        recover_max_samples=10_000,
        precision="bf16",
        group_by_length=True,
        data_dir=None,
        device="auto",
        seeds=(0, 1, 2),
        descend=False,
        peer_reduction="sum",
        lossless_seeds=(0,),
        dense_train_cap={},
    )
    return argparse.Namespace(**(defaults | changes))


def _row(method: str, fraction: float, regime: str, **fields) -> dict:
    """A row as compare writes it into a run dir (budget rows: ``<method>-budget``, the budget
    in the key's fraction slot)."""
    key = run_key(method, fraction, 0, regime)
    return {"key": key, "task": "mrpc", "method": method, "seed": 0, **fields}


def test_each_studys_rows_go_back_to_its_own_run_dir_as_compare_named_them(tmp_path, monkeypatch):
    monkeypatch.setattr(peer, "RUNS", tmp_path / "runs" / "peer")
    monkeypatch.setattr(peer, "RESULTS", tmp_path / "results" / "peer")
    monkeypatch.setattr(peer, "run_report", lambda results, notes: results / "report.md")
    args = _args()
    runs, results = peer.places(args)
    assert runs.name == "peer-bf16-grouped"
    # what each study's run dir holds after a run: the same keys in three of them
    written = {
        runs / "mrpc": [
            _row("peer", 0.5, "r1", dev=1.0),
            _row("hisp", 0.5, "r1", dev=2.0),
            _row("peer-budget", 0.0, "r0", dev=3.0, budget=0.0),
        ],
        runs / "no_peer" / "mrpc": [_row("peer", 0.5, "r1", dev=4.0)],
        runs / "descend" / "mrpc": [_row("peer-budget", 0.0, "r0", dev=5.0, budget=0.0)],
    }
    for out, rows in written.items():
        write_rows(out / "results.jsonl", rows)
    peer.write_results(["mrpc"], args)
    committed = keyed_rows(results / "results.jsonl")
    assert {key: row["dev"] for key, row in committed.items()} == {
        "peer|0.5000|0|r1": 1.0,
        "hisp|0.5000|0|r1": 2.0,
        "peer-budget|0.0000|0|r0": 3.0,
        f"{peer.NO_PEER}|0.5000|0|r1": 4.0,
        f"{peer.DESCEND}-budget|0.0000|0|r0": 5.0,
    }
    assert committed[f"{peer.DESCEND}-budget|0.0000|0|r0"]["method"] == f"{peer.DESCEND}-budget"
    # a fresh checkout: the run dirs are gone; each gets its own rows back, as they were
    shutil.rmtree(tmp_path / "runs")
    peer.restore_committed(args)
    for out, rows in written.items():
        assert list(keyed_rows(out / "results.jsonl").values()) == [
            row | {"device": "cpu"} for row in rows
        ]


def test_the_descending_search_is_lossless_mode_with_its_own_search_and_runs_when_asked():
    studies = {renamed: settings for _, settings, renamed in peer.sweeps("mrpc", _args())}
    descend = studies[peer.DESCEND]
    assert descend["method_options"] == {"peer": {"search": "descend"}}
    assert descend["budgets"] == (0.0, 0.5) and descend["seeds"] == (0,)
    assert descend["budget_methods"] == ("peer",) and descend["methods"] == ()
    assert not peer.runs_now(peer.DESCEND, _args())
    assert peer.runs_now(peer.DESCEND, _args(descend=True))
    assert not peer.runs_now(peer.DESCEND, _args(descend=True, seeds=(1,)))
    assert peer.runs_now(peer.NO_PEER, _args()) and peer.runs_now(None, _args())
    # lossless mode with another seed: its search and descent run on it alone
    other = _args(descend=True, seeds=(1,), lossless_seeds=(1,))
    assert peer.runs_now(peer.DESCEND, other)
    studies = {renamed: settings for _, settings, renamed in peer.sweeps("mrpc", other)}
    assert studies[peer.DESCEND]["seeds"] == (1,)
    assert peer.lossless_seeds(_args(seeds=(1, 2))) == ()  # seed 0 only by default


def test_a_peer_loss_averaged_over_features_is_a_study_of_its_own_without_the_ablation():
    plain = peer.sweeps("mrpc", _args())
    mean = peer.sweeps("mrpc", _args(peer_reduction="mean"))
    assert peer.places(_args(peer_reduction="mean"))[1].name == "peer-bf16-grouped-peer-mean"
    assert all("method_options" not in s for _, s, r in plain if r is None)  # as recorded
    assert peer.NO_PEER not in {r for _, _, r in mean}
    for out, settings, renamed in mean:
        assert "peer-mean" in str(out)
        options = settings["method_options"]["peer"]
        assert options["peer_reduction"] == "mean"
        assert options.get("search") == ("descend" if renamed == peer.DESCEND else None)


def test_the_beta_probe_pairs_the_two_betas_of_each_teacher(tmp_path, monkeypatch):
    import peer_beta

    monkeypatch.setattr(peer_beta, "RESULTS", tmp_path)

    def row(task, seed, name, validation, dev):
        return {"task": task, "seed": seed, "name": name, "validation": validation, "dev": dev,
                "teacher_validation": 30.0, "teacher_dev": 29.0, "cpu": "test"}  # fmt: skip

    rows = [
        row("cola", 1, "beta1", 35.0, 29.5),
        row("cola", 1, "betamse", 36.0, 32.5),
        row("mrpc", 0, "beta1", 86.0, 85.0),
        row("mrpc", 0, "betamse", 85.0, 85.5),
        row("mrpc", 1, "beta1", 80.0, 80.0),  # its pair has not run: left out
    ]
    peer_beta.write_report(rows)
    report = (tmp_path / "report.md").read_text()
    assert "| cola | 1 | 30.00 / 29.00 | 35.00 / 29.50 | 36.00 / 32.50 | +1.00 / +3.00 |" in report
    assert "| mrpc | 1 |" not in report
    assert "Over 2 runs, β = 1/384 minus β = 1: validation +0.00 (ahead on 1), dev +1.75" in report
    assert peer_beta.command("cola", 1, Path("t"), 0.0026, Path("o"))[-3:] == [
        "0.5", "--out", "o"
    ]  # fmt: skip


def test_a_study_cut_short_leaves_the_rows_it_finished_in_the_results(tmp_path, monkeypatch):
    """A campaign step that fails (or is killed) commits the results folder: it must already
    hold each row the study finished, not only the rows of the run before."""
    monkeypatch.setattr(peer, "RUNS", tmp_path / "runs" / "peer")
    monkeypatch.setattr(peer, "RESULTS", tmp_path / "results" / "peer")
    monkeypatch.setattr(peer, "run_report", lambda results, notes: results / "report.md")

    class Killed(Exception):
        pass

    def compare(config, after_run=None):  # one row, then the sweep dies
        row = _row("peer", 0.5, "r1", dev=1.0)
        write_rows(config.out / "results.jsonl", [row])
        after_run(row)
        raise Killed

    monkeypatch.setattr(peer, "run_compare", compare)
    monkeypatch.setattr(sys, "argv", ["peer.py", "--tasks", "mrpc", "--seeds", "0"])
    with pytest.raises(Killed):
        peer.main()
    _, results = peer.places(_args(precision="fp32", group_by_length=False))
    assert [row["dev"] for row in keyed_rows(results / "results.jsonl").values()] == [1.0]


def test_the_report_says_where_one_seed_has_rows_of_two_dense_models():
    rows = [
        {"task": "rte", "seed": 0, "dense_digest": "16430fe0aa", "dense_dev": 56.68},
        {"task": "rte", "seed": 0, "dense_digest": "23e976d0bb", "dense_dev": 56.68},
        {"task": "rte", "seed": 1, "dense_digest": "cccccccc", "dense_dev": 57.76},
        {"task": "mrpc", "seed": 0, "dense_digest": "dddddddd", "dense_dev": 84.62},
    ]
    note = peer.teachers_note(rows)
    assert "rte seed 0 (16430fe0: dev 56.68, 23e976d0: dev 56.68)" in note
    assert "seed 1" not in note and "mrpc" not in note
    assert peer.teachers_note(rows[2:]) == ""


def test_a_capped_teacher_trains_on_a_subset_in_every_study_of_its_task_and_the_report_says_so(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(peer, "RUNS", tmp_path / "runs" / "peer")
    args = _args(dense_train_cap={"sst2": 20000}, descend=True)
    for _, settings, _ in peer.sweeps("sst2", args):
        # the teacher of every study: SST-2's recipe but for the subset
        recipe = recipe_for("sst2").model_dump() | {"max_train_samples": 20000}
        assert settings["recipe"].model_dump() == recipe
    assert all(settings["recipe"] is None for _, settings, _ in peer.sweeps("mrpc", args))
    runs = peer.places(args)[0]
    (runs / "sst2").mkdir(parents=True)
    (runs / "sst2" / "config.json").write_text('{"recipe": {"max_train_samples": 20000}}')
    note = peer.capped_teachers_note(["mrpc", "sst2"], args)
    assert note == (
        " sst2's dense teacher and reference: its recipe on a seeded 20,000-example subset of "
        "the train split (`--dense-train-cap`)."
    )
    with pytest.raises(SystemExit):
        peer.parse_caps(argparse.ArgumentParser(), "--dense-train-cap", "sst3=100", peer.TASKS)

"""benchmarks/peer.py: each study's rows go back into its own run dir on a fresh checkout (the
renamed ones as the `peer` rows they were), and the descending search runs only when asked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import peer  # noqa: E402
from _rows import keyed_rows, write_rows  # noqa: E402


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
    )
    return argparse.Namespace(**(defaults | changes))


def _row(method: str, key: str, task: str = "mrpc") -> dict:
    return {"key": key, "task": task, "method": method, "seed": 0}


def test_committed_rows_go_back_to_their_own_study(tmp_path, monkeypatch):
    monkeypatch.setattr(peer, "RUNS", tmp_path / "runs" / "peer")
    monkeypatch.setattr(peer, "RESULTS", tmp_path / "results" / "peer")
    args = _args()
    runs, results = peer.places(args)
    assert runs.name == "peer-bf16-grouped"
    committed = [
        _row("peer", "peer|b0.5000|0|r0"),
        _row("hisp", "hisp|0.5000|0|r1"),
        _row(peer.NO_PEER, f"{peer.NO_PEER}|0.5000|0|r1"),
        _row(peer.DESCEND, f"{peer.DESCEND}|b0.5000|0|r0"),
        _row(peer.DESCEND, f"{peer.DESCEND}|b0.5000|0|r0", task="rte"),
    ]
    write_rows(results / "results.jsonl", committed)
    peer.restore_committed(args)
    assert sorted(keyed_rows(runs / "mrpc" / "results.jsonl")) == [
        "hisp|0.5000|0|r1",
        "peer|b0.5000|0|r0",
    ]
    no_peer = keyed_rows(runs / "no_peer" / "mrpc" / "results.jsonl")
    assert [r["method"] for r in no_peer.values()] == ["peer"]
    assert list(no_peer) == ["peer|0.5000|0|r1"]
    for task in ("mrpc", "rte"):
        descend = keyed_rows(runs / "descend" / task / "results.jsonl")
        assert list(descend) == ["peer|b0.5000|0|r0"]
        assert descend["peer|b0.5000|0|r0"]["method"] == "peer"
    assert not (runs / "rte" / "results.jsonl").exists()  # rte's descend row stayed in its study


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

"""The curves figure: budget-mode points sit on the panel of the regime their model had, named
by the method that chose them."""

from __future__ import annotations

import matplotlib.figure

from prunekit.report.plots import plot_curves


def curve_row(method, fraction, regime, dev, **extra):
    return {
        "key": f"{method}|{fraction}|0|{regime}",
        "task": "rte",
        "method": method,
        "fraction": fraction,
        "seed": 0,
        "regime": regime,
        "dev": dev,
        "dense_dev": 70.0,
        **extra,
    }


def test_budget_points_are_labelled_by_method_on_the_panel_of_their_regime(tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    rows = [curve_row("hisp", f, regime, 65.0) for f in (0.25, 0.5) for regime in ("r0", "r1")]
    rows += [
        curve_row("astar-budget", 0.4, "r0", 69.0, budget=0.5),  # a set, never retrained
        curve_row("peer-budget", 0.6, "r0", 68.0, budget=0.5, trained_by_method=True),
    ]
    plot_curves(rows, "rte", "accuracy", tmp_path / "curves.png")
    (figure,) = saved
    r0, r1 = figure.axes
    labels = {
        ax.get_title(): [t.get_text() for t in ax.get_legend().get_texts()] for ax in (r0, r1)
    }
    assert "astar-budget (budget mode)" in labels["R0: no retraining"]
    assert "peer-budget (budget mode)" not in labels["R0: no retraining"]
    assert "peer-budget (budget mode)" in labels["R1: equal recovery budget"]
    assert "astar-budget (budget mode)" not in labels["R1: equal recovery budget"]

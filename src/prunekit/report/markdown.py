"""The comparison report: report.md with tables, plus the PNG figures beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunekit.report.plots import plot_curves, plot_heatmaps, plot_speed
from prunekit.report.summary import (
    aggregate,
    collapse_note,
    constant_floor,
    dense_reference,
    no_retention,
    paired_gaps,
    retention_summary,
    structure_rows,
)

__all__ = ["write_report"]


# The figures of a task: ``{task}_{kind}.png`` (`prunekit report` clears those of an earlier
# render that a new one no longer draws).
FIGURE_KINDS = ("curves", "heads_at_50", "speed")


def figure(out_dir: Path, task: str, kind: str) -> Path:
    assert kind in FIGURE_KINDS, kind
    return out_dir / f"{task}_{kind}.png"


def write_report(
    rows: list[dict[str, Any]],
    out_dir: Path,
    notes: str = "",
    own_protocol: Sequence[dict[str, Any]] = (),
) -> Path:
    """Write ``report.md`` and figures into ``out_dir`` (which must exist). Returns report.md.

    ``own_protocol``: rows of methods compared by a benchmark of their own (SMP prunes before
    fine-tuning); each names its protocol in ``regime`` and gets a block of the summary table,
    against its own dense models, and no curves.
    """
    lines = ["# Head pruning comparison", ""]
    budget_rows = [r for r in rows if "budget" in r]
    rows = [r for r in rows if "budget" not in r]  # curves and tables: fixed head counts
    lines += _summary_table(rows + list(own_protocol))
    lines += _paired_table(rows)  # the comparison's own regimes: one protocol, runs paired
    if notes:
        lines += [notes.strip(), ""]
    cells = aggregate(rows)
    floor = constant_floor(rows + budget_rows)
    # Methods that train weights themselves: their R1 is their own model, not a recovery.
    trained = {(r["task"], r["method"]) for r in rows if r.get("r1_source") == "method"}
    for task in sorted({r["task"] for r in rows + budget_rows}):
        task_rows = [r for r in rows if r["task"] == task]
        task_budget_rows = [r for r in budget_rows if r["task"] == task]
        metric = next(r["metric"] for r in rows + budget_rows if r["task"] == task)
        seeds = sorted({r["seed"] for r in task_rows})
        # the seeds the header names, whose models every Δ below is against (budget rows of
        # other seeds have a table of their own)
        dense = dense_reference(task_rows or task_budget_rows)
        lines += [
            f"## {task}",
            "",
            f"Dev {metric} (mean ± std over seeds {', '.join(map(str, seeds))}; Δ vs the dense "
            f"model of the same seeds). Dense: **{dense[task]:.2f}**."
            + (f" A constant prediction: {floor[task]:.2f}." if task in floor else ""),
            "",
        ]
        if any(c.collapsed for c in cells if c.task == task):
            lines += [collapse_note({task: floor[task]}), ""]
        methods = sorted({c.method for c in cells if c.task == task})
        fractions = sorted({c.fraction for c in cells if c.task == task})
        for regime in sorted({c.regime for c in cells if c.task == task}):
            lines += [
                f"### {_regime_title(regime)}",
                "",
                "| heads removed | " + " | ".join(methods) + " |",
                "|---|" + "---|" * len(methods),
            ]
            regime_fractions = sorted(
                {c.fraction for c in cells if c.task == task and c.regime == regime}
            )
            for fraction in regime_fractions:
                row = [f"{fraction:.0%}"]
                for method in methods:
                    cell = next(
                        (
                            c
                            for c in cells
                            if (c.task, c.method, c.regime, c.fraction)
                            == (task, method, regime, fraction)
                        ),
                        None,
                    )
                    mark = "†" if regime == "r1" and (task, method) in trained else ""
                    label = "–" if cell is None else _seeds_shown(cell.label, cell.n, len(seeds))
                    row.append(label if cell is None else f"{label} ({cell.delta:+.2f}){mark}")
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
            if regime == "r1" and any(t == task for t, _ in trained):
                lines += [_trained_note(task_rows), ""]
        lines += _budget_table(task_budget_rows, metric)
        curves = plot_curves(rows + task_budget_rows, task, metric, figure(out_dir, task, "curves"))
        lines += [f"![{task} curves]({curves.name})", ""]
        if any(abs(f - 0.5) < 1e-9 for f in fractions):
            heat = plot_heatmaps(rows, task, 0.5, figure(out_dir, task, "heads_at_50"))
            lines += [f"![{task} heads kept at 50%]({heat.name})", ""]
        speed = plot_speed(rows, task, figure(out_dir, task, "speed"))
        lines += [f"![{task} size and speed]({speed.name})", ""]
        lines += _speed_table(task_rows, task)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary_table(rows: list[dict[str, Any]]) -> list[str]:
    """The table the report opens with: dev retention (% of dense) over all tasks."""
    cells = retention_summary(rows)
    if not cells:
        return []
    tasks = sorted({t for c in cells for t in c.tasks})
    lines = [
        "## Summary: dev retention (% of dense)",
        "",
        f"Mean over tasks ({', '.join(tasks)}) of 100 × pruned dev / dense dev (each seed "
        "against its own dense model), then mean ± std over seeds. A cell averages only the "
        "tasks listed under it when some are missing, and only the seeds that ran all of its "
        "tasks (n says how many when fewer than the most); the tables per task below, and the "
        "paired comparison, use every run.",
        "",
    ]
    left_out = no_retention(rows)
    if left_out:
        named = "; ".join(f"{t} (seeds {', '.join(map(str, s))})" for t, s in left_out.items())
        lines += [
            f"Left out of the summary, on every seed (so each seed averages the same tasks), "
            f"where the dense model scored 0 or less on dev and no retention exists: {named}. "
            "Their tables below still show every run.",
            "",
        ]
    floor, dense = constant_floor(rows), dense_reference(rows)
    if any(c.collapsed for c in cells):
        retained = {t: 100 * floor[t] / dense[t] for t in floor if dense.get(t)}
        task = max(retained, key=retained.get, default=None)
        hidden = (  # a floor near dense (MRPC's F1) makes a collapse look like retention
            f" Retention does not show it: on {task} a constant answer alone retains "
            f"{retained[task]:.0f}% of dense."
            if task and retained[task] >= 50
            else ""
        )
        lines += [collapse_note(floor) + hidden, ""]
    for regime in sorted({c.regime for c in cells}, key=lambda r: (r not in ("r0", "r1"), r)):
        methods = sorted({c.method for c in cells if c.regime == regime})  # this block's only
        title = _regime_title(regime)
        lines += [f"**{title}**", "", "| heads removed | " + " | ".join(methods) + " |"]
        lines.append("|---|" + "---|" * len(methods))
        most_seeds = max(c.seeds for c in cells if c.regime == regime)
        for fraction in sorted({c.fraction for c in cells if c.regime == regime}):
            row = [f"{fraction:.0%}"]
            for method in methods:
                cell = next(
                    (
                        c
                        for c in cells
                        if (c.method, c.regime, c.fraction) == (method, regime, fraction)
                    ),
                    None,
                )
                if cell is None:
                    row.append("–")
                else:
                    partial = "" if len(cell.tasks) == len(tasks) else f" ({', '.join(cell.tasks)})"
                    row.append(f"{_seeds_shown(cell.label, cell.seeds, most_seeds)}{partial}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


def _paired_table(rows: list[dict[str, Any]]) -> list[str]:
    """Each method against the leader of its fraction, paired over the same (task, seed) runs:
    whether a lead in the summary is more than the runs' noise."""
    gaps = paired_gaps(rows)
    if not gaps:
        return []
    lines = [
        "## Against the leader, run by run",
        "",
        "At each fraction the leader is the method with the highest mean dev retention over the "
        "(task, seed) runs every method has (n). Every other cell is that method's retention "
        "minus the leader's on the same runs: mean [95% t interval], and on how many of the n "
        "runs it retained more. An interval that contains 0 means these runs do not separate "
        "it from the leader. Tasks differ in noise, so the interval is a guide, not a test.",
        "",
    ]
    for regime in sorted({g.regime for g in gaps}):
        methods = sorted({g.method for g in gaps if g.regime == regime})
        title = _regime_title(regime)
        lines += [f"**{title}**", "", "| heads removed | n | " + " | ".join(methods) + " |"]
        lines.append("|---|---|" + "---|" * len(methods))
        for fraction in sorted({g.fraction for g in gaps if g.regime == regime}):
            point = {g.method: g for g in gaps if (g.regime, g.fraction) == (regime, fraction)}
            runs = next(iter(point.values())).runs
            cells = [
                "–"
                if method not in point
                else "leader"
                if method == point[method].leader
                else f"{point[method].mean:+.1f} [{point[method].low:+.1f}, "
                f"{point[method].high:+.1f}], {point[method].wins}/{runs}"
                for method in methods
            ]
            lines.append(f"| {fraction:.0%} | {runs} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _regime_title(regime: str) -> str:
    """R0/R1 by what they mean; a protocol of its own (SMP's, peer's) is its own title."""
    return {"r0": "R0, no retraining", "r1": "R1, equal recovery budget"}.get(regime, regime)


def _trained_note(rows: list[dict[str, Any]]) -> str:
    """The footnote for † cells: the method's own training, against the recovery budget."""
    parts = []
    for method in sorted({r["method"] for r in rows if r.get("r1_source") == "method"}):
        mine = [r for r in rows if r["method"] == method and r.get("r1_source") == "method"]
        steps = sorted({r.get("train_steps") for r in mine} - {None})
        budget = sorted({r.get("budget_steps") for r in mine} - {None})
        parts.append(
            f"{method} trained its weights itself ({'/'.join(map(str, steps)) or '?'} steps; "
            f"the others recover for {'/'.join(map(str, budget)) or '?'} steps)"
        )
    return "† R1-equivalent: no recovery step; " + "; ".join(parts) + "."


def _speed_table(rows: list[dict[str, Any]], task: str) -> list[str]:
    timed = sorted(
        (r for r in structure_rows(rows, task) if "measured_speedup" in r),
        key=lambda r: (r["fraction"], r["method"]),
    )
    if not timed:
        return []
    onnx = any("onnx_speedup" in r for r in timed)
    header = (
        "| heads removed | method | parameters | ideal speed-up | measured (b32) | measured/ideal |"
    )
    rule = "|---|---|---|---|---|---|"
    if onnx:
        header += " ONNX Runtime, pruned vs dense (b32) | pruned in ORT vs dense in torch |"
        rule += "---|---|"
    lines = [header, rule]
    for r in timed:
        busy = " ~" if r.get("timing_warnings") else ""
        line = (
            f"| {r['fraction']:.0%} | {r['method']} | {r['parameters']:,} | "
            f"{r['ideal_speedup']:.2f}x | {r['measured_speedup']:.2f}x{busy} | "
            f"{r['measured_speedup'] / r['ideal_speedup']:.2f} |"
        )
        if onnx:
            busy = " ~" if r.get("onnx_timing_warnings") else ""
            line += (
                f" {r['onnx_speedup']:.2f}x{busy} | {r['onnx_vs_torch_dense']:.2f}x{busy} |"
                if "onnx_speedup" in r
                else " – | – |"
            )
        lines.append(line)
    lines.append("")
    if any(r.get("timing_warnings") or r.get("onnx_timing_warnings") for r in timed):
        lines += [
            "~: the timings behind this ratio varied by more than 10% of their median (the "
            "machine was busy); read it as noise, not a measurement.",
            "",
        ]
    if onnx and any("onnx_speedup" in r and "onnx_timing_warnings" not in r for r in timed):
        lines += [
            "Rows written before the ONNX timing recorded its own spread (and timed dense torch "
            "in the same call) may mix two moments of a busy machine in the last column.",
            "",
        ]
    return lines


def _from_memo(certificate: dict[str, Any]) -> str:
    # A*'s evaluations or peer's students: either key, never both
    hits = certificate.get("evaluations_from_memo") or certificate.get("students_from_memo", 0)
    return f" ({hits})" if hits else ""


def _seeds_shown(label: str, n: int, of: int) -> str:
    """A cell's label, with its seed count when it averages fewer seeds than its table's
    header names (one seed already says ``(n=1)``)."""
    return f"{label} (n={n})" if 1 < n < of else label


def _budget_table(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """Budget mode (methods that choose the head count): the certified drop, and dev apart."""
    if not rows:
        return []
    trained = sorted(
        {r["method"].removesuffix("-budget") for r in rows if r.get("trained_by_method")}
    )
    regime = "R0" if not trained else f"R0; {', '.join(trained)}: its own trained students, R1"
    lines = [
        f"### Budget mode: the method picks the head count ({regime})",
        "",
        f"Budget B in points of {metric}. Search drop: on the examples the search saw. "
        "Certified drop: on the held-out certify part, with its one-sided upper bound "
        "(the returned set's bound is within B); rows written before certification was added "
        "show no bound, and their certified drop is the search split's. Dev drop = dense dev "
        "minus pruned dev; a violation is a dev drop above B. Evaluations count distinct "
        "states measured; those in brackets were read from the memo of an earlier search on "
        "the same model and split (A*: no forward, no search time; peer: students evaluated, "
        "not trained again).",
        "",
        "| method | B | seed | heads removed | search drop | certified drop (bound) | dev drop | "
        "violation | evaluations | search time (s) | layer-forwards saved by cache |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["method"], r["budget"], r["seed"])):
        c = r.get("certificate", {})
        bound = c.get("upper_bound")
        certified = _number(c.get("final_drop")) + (f" ({bound:.2f})" if bound is not None else "")
        lines.append(
            f"| {r['method'].removesuffix('-budget')} | {r['budget']:g} | {r['seed']} | "
            f"{r['heads_removed']} | {_number(c.get('search_drop'))} | {certified} | "
            f"{r['dev_drop']:.2f} | {'yes' if r['dev_violation'] else 'no'} | "
            f"{c.get('evaluations', '–')}{_from_memo(c)} | {_number(_search_seconds(r), 0)} | "
            f"{r.get('cache_saved_fraction', 0.0):.0%} |"
        )
    return lines + [""] + _fractions_tried(rows, metric)


def _fractions_tried(rows: list[dict[str, Any]], metric: str) -> list[str]:
    """The fractions a grid search (peer's lossless mode) measured, each with its metric."""
    lines = []
    for r in sorted(rows, key=lambda r: (r["method"], r["budget"], r["seed"])):
        tried = r.get("certificate", {}).get("tried")
        if not tried:
            continue
        steps = ", ".join(
            f"{fraction:.0%} → {value:.2f} ({'within' if ok else 'over'})"
            for fraction, value, ok in tried
        )
        split = r["certificate"].get("split", "search")
        trained = r["certificate"].get("student_seconds")
        cost = ""
        if trained:
            reused = r["certificate"].get("students_from_memo")
            memo = f" ({reused} of them read back from an earlier search's or run's memo)"
            cost = f" Training them took {trained / 60:.1f} min{memo if reused else ''}."
        lines.append(
            f"- {r['method'].removesuffix('-budget')}, B {r['budget']:g}, seed {r['seed']}: "
            f"{metric} on the {split} split, in the order of size: {steps}.{cost}"
        )
    return lines + [""] if lines else []


def _search_seconds(row: dict[str, Any]) -> float | None:
    """The search's own clock (A*), else the whole decision's (peer's lossless mode trains)."""
    return row.get("certificate", {}).get("wall_seconds", row.get("decision_seconds"))


def _number(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"

"""The SMP benchmark's report (`benchmarks/smp.py` writes it after every task): each method's
dev metric and fine-tune time against dense, the issue's two targets at 50%, prune-after-
fine-tuning beside (HISP's R1 in head_baselines' full comparison), the single-shot scoring
time, which heads each method keeps, and the pruners the rows came from."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from _rows import devices_description, keyed_rows, loop_label, loop_suffix, with_dev_constant

from prunekit.report.results import read_results
from prunekit.report.summary import (
    collapse_mark,
    collapse_note,
    constant_floor,
    is_collapsed,
    spread,
)
from prunekit.scoring.smp import BUILTIN_PRUNER, resolve_pruner

# prune-after-fine-tuning at 50%: HISP's R1 rows of the head comparison (bf16, length-grouped)
HEAD_COMPARISON = Path(__file__).parent / "results" / "head_baselines" / "full-bf16-grouped"
TARGET_FRACTION = 0.5


def pruner_record(trained: dict, name: str) -> dict:
    """What an smp row keeps of its pruner: the name its label shows and how it was trained,
    so the report describes every pruner its rows came from."""
    info = trained.get("trained_on", {})
    config = info.get("config", {})
    return {
        "name": name or BUILTIN_PRUNER,
        "steps": info.get("steps"),
        "train_seconds": info.get("train_seconds"),
        "tasks": config.get("tasks", []),
        "pair_representation": config.get("pair_representation", "pooler"),
    }


def pruner_lines(rows: list[dict]) -> list[str]:
    """One line per pruner that smp rows came from; rows older than the record used the
    shipped pruner, described by its own pruner.json."""
    shipped = json.loads((resolve_pruner(BUILTIN_PRUNER) / "pruner.json").read_text())
    records = {BUILTIN_PRUNER: pruner_record(shipped, "")}
    for row in rows:
        if row["method"] == "smp" and "pruner_record" in row:
            records[row["pruner_record"]["name"]] = row["pruner_record"]
    used = {row.get("pruner", BUILTIN_PRUNER) for row in rows if row["method"] == "smp"}
    return [
        f"{name}{' (shipped)' if name == BUILTIN_PRUNER else ''}: {r['steps'] or '?'} steps, "
        f"{(r['train_seconds'] or 0) / 60:.0f} min on {', '.join(r['tasks'])}; pair tasks' "
        f"geometry on the {r['pair_representation']} representation"
        for name, r in sorted(records.items())
        if name in used
    ]


def time_key(row: dict) -> tuple:
    """Fine-tune times compare within one task, seed, variant, device type and processor (the
    project's machine changed between runs; rows that do not record it pair with each other)."""
    device = row.get("device", "cpu").split(":")[0].split(" ")[0]
    cpu = row.get("cpu")
    return (row["task"], row["seed"], loop_suffix(row), row.get("train_cap"), device, cpu)


def ratio_cell(ratios: list[float]) -> str:
    """The median fine-tune time ratio, with the range when the seeds' ratios differ: one
    pair timed on a busy or other machine (older rows do not name the CPU) shows as a wide
    range instead of moving a mean."""
    if not ratios:
        return "–"
    middle = statistics.median(ratios)
    if len(ratios) == 1 or max(ratios) - min(ratios) < 0.005:
        return f"{middle:.2f}"
    return f"{middle:.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


def scoring_cell(members: list[dict]) -> str:
    """Median seconds the method took to choose its heads (dense: nothing to choose)."""
    if members[0]["method"] == "dense":
        return "–"
    return f"{statistics.median(m.get('scoring_seconds', 0.0) for m in members):.1f}"


def method_table(rows: list[dict]) -> list[str]:
    lines = [
        "| task | heads removed per layer | method | seeds | dev | Δ vs dense | fine-tune time "
        "pruned / dense (median, range over seeds) | choosing the heads (s, median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple, list[dict]] = {}
    dense_time = {time_key(r): r["finetune_seconds"] for r in rows if r["method"] == "dense"}
    for row in rows:  # other loop options or caps are rows of their own, named as methods
        groups.setdefault((row["task"], row["fraction"], loop_label(row)), []).append(row)
    for (task, fraction, method), members in sorted(groups.items()):
        devs = [m["dev"] for m in members]
        collapsed = collapse_mark(sum(is_collapsed(m) for m in members))
        dense = statistics.fmean(m["dense_dev"] for m in members)
        ratios = [
            m["finetune_seconds"] / dense_time[time_key(m)]
            for m in members
            if time_key(m) in dense_time
        ]
        held = " (held out)" if members[0]["held_out_of_pruner_training"] else ""
        # the seeds behind each row: Δ is against the dense models of these seeds, which the
        # dense row (every seed) may average differently
        seeds = ", ".join(str(s) for s in sorted({m["seed"] for m in members}))
        lines.append(
            f"| {task}{held} | {fraction:.0%} | {method} | {seeds} | {spread(devs)}{collapsed} | "
            f"{statistics.fmean(devs) - dense:+.2f} | {ratio_cell(ratios)} | "
            f"{scoring_cell(members)} |"
        )
    return lines


def paired_deltas(rows: list[dict], fraction: float) -> dict[str, tuple[float, float, int]]:
    """Per task at ``fraction``, over the seeds where SMP (the shipped pruner) and random both
    ran in the loop every later row uses (bf16, length-grouped): (SMP − dense, SMP − random,
    seeds)."""
    chosen = [
        r
        for r in rows
        if r["fraction"] == fraction
        and r.get("precision") == "bf16"
        and r.get("group_by_length")
        and not r.get("pruner")
    ]
    by_method: dict[tuple[str, int | None, str], dict[int, dict]] = {}
    for row in chosen:  # a train cap makes rows of their own: only like rows are paired
        group = (row["task"], row.get("train_cap"), row["method"])
        by_method.setdefault(group, {})[row["seed"]] = row
    deltas = {}
    variants = sorted({(r["task"], r.get("train_cap") or 0) for r in chosen})
    for task, cap in variants:
        cap = cap or None
        smp = by_method.get((task, cap, "smp"), {})
        random = by_method.get((task, cap, "random"), {})
        seeds = sorted(set(smp) & set(random))
        several = sum(t == task for t, _ in variants) > 1
        name = f"{task} ≤{cap:,}" if several and cap else task
        if seeds:
            deltas[name] = (
                statistics.fmean(smp[s]["dev"] - smp[s]["dense_dev"] for s in seeds),
                statistics.fmean(smp[s]["dev"] - random[s]["dev"] for s in seeds),
                len(seeds),
            )
    return deltas


def target_lines(rows: list[dict]) -> list[str]:
    """The issue's claim under test at 50%: SMP within 1.5 points of dense on average, and
    ahead of random per layer by at least 2, over all tasks and over the pruner's own ones."""
    deltas = paired_deltas(rows, TARGET_FRACTION)
    if not deltas:
        return []
    held = {r["task"] for r in rows if r["held_out_of_pruner_training"]}
    groups = [("every task", sorted(deltas))]
    if trained := [t for t in sorted(deltas) if t.split(" ")[0] not in held]:
        groups.append(("the pruner's meta-training tasks", trained))
    lines = [
        "",
        f"Targets at {TARGET_FRACTION:.0%} (the shipped pruner, bf16, length-grouped; per task "
        "the mean over the seeds where SMP and random both ran, then the mean over tasks): SMP "
        "within 1.5 points of dense, and at least 2 points ahead of random per layer.",
        "",
        "| tasks | SMP − dense | SMP − random | met |",
        "|---|---|---|---|",
    ]
    for name, tasks in groups:
        to_dense = statistics.fmean(deltas[t][0] for t in tasks)
        to_random = statistics.fmean(deltas[t][1] for t in tasks)
        seeds = ", ".join(f"{t} {deltas[t][2]}" for t in tasks)
        met = (
            "both"
            if to_dense >= -1.5 and to_random >= 2
            else (
                "within dense only"
                if to_dense >= -1.5
                else "ahead of random only"
                if to_random >= 2
                else "neither"
            )
        )
        lines.append(f"| {name} (seeds: {seeds}) | {to_dense:+.2f} | {to_random:+.2f} | {met} |")
    return lines


def after_finetuning_lines(comparison: Path = HEAD_COMPARISON) -> list[str]:
    """Prune after fine-tuning, beside pruning before it: HISP's R1 rows at 50% of the head
    comparison (global, on the fine-tuned dense model, then one recovery epoch with KD)."""
    rows = [  # its keys name no task (one run dir per task): every row, not one per key
        r
        for r in read_results(comparison / "results.jsonl")
        if r["method"] == "hisp" and r["regime"] == "r1" and r["fraction"] == TARGET_FRACTION
    ]
    if not rows:
        return []
    lines = [
        "",
        f"Prune after fine-tuning, beside: HISP at {TARGET_FRACTION:.0%} of all heads (chosen "
        "across layers) on the fine-tuned dense model, then one recovery epoch with logit KD "
        "(R1 of `benchmarks/results/head_baselines/full-bf16-grouped`, fp32 dense models of "
        "the full recipe; its Δ against those).",
        "",
        "| task | dev | Δ vs dense | seeds |",
        "|---|---|---|---|",
    ]
    for task in sorted({r["task"] for r in rows}):
        members = [r for r in rows if r["task"] == task]
        devs = [m["dev"] for m in members]
        dense = statistics.fmean(m["dense_dev"] for m in members)
        collapsed = collapse_mark(sum(is_collapsed(m) for m in members))
        seeds = ", ".join(str(s) for s in sorted(m["seed"] for m in members))
        lines.append(
            f"| {task} | {spread(devs)}{collapsed} | {statistics.fmean(devs) - dense:+.2f} | "
            f"{seeds} |"
        )
    return lines


def head_overlap(kept: list[list[int]], reference: list[list[int]]) -> float:
    """The share of ``reference``'s kept heads that ``kept`` keeps too."""
    shared = sum(len(set(a) & set(b)) for a, b in zip(kept, reference, strict=True))
    return shared / max(1, sum(len(b) for b in reference))


def overlap_lines(rows: list[dict]) -> list[str]:
    """Which heads: how many of HISP-per-layer's kept heads (chosen with the task's labels on
    the fine-tuned model) each method keeps too, against chance (per layer, keeping k of H
    heads at random shares k/H of them)."""
    hisp = {
        (r["task"], r["seed"], r["fraction"], loop_suffix(r), r.get("train_cap")): r
        for r in rows
        if r["method"] == "hisp"
    }
    shares: dict[tuple, list[float]] = {}
    for row in rows:
        key = (row["task"], row["seed"], row["fraction"], loop_suffix(row), row.get("train_cap"))
        if row["method"] in ("dense", "hisp") or key not in hisp:
            continue
        group = (row["task"], row["fraction"], loop_label(row))
        shares.setdefault(group, []).append(
            head_overlap(row["kept_heads"], hisp[key]["kept_heads"])
        )
    if not shares:
        return []
    lines = [
        "",
        "Which heads: the share of HISP-per-layer's kept heads (chosen with the labels, on the "
        "fine-tuned model) that each method keeps too, mean over seeds; chance is the share of "
        "heads kept.",
        "",
        "| task | heads removed per layer | method | shared with HISP | chance |",
        "|---|---|---|---|---|",
    ]
    for (task, fraction, method), values in sorted(shares.items()):
        lines.append(
            f"| {task} | {fraction:.0%} | {method} | {statistics.fmean(values):.0%} "
            f"(n={len(values)}) | {1 - fraction:.0%} |"
        )
    return lines


def write_report(results: Path, comparison: Path = HEAD_COMPARISON) -> None:
    rows = with_dev_constant(keyed_rows(results / "results.jsonl").values())
    lines = [
        "# SMP: heads pruned before fine-tuning",
        "",
        "Each pruned pre-trained model fine-tuned with the task's dense recipe; dev, mean ± std "
        "over seeds; Δ vs the dense model of the same seeds and recipe. Choosing the heads: "
        "SMP's single shot (one pass of the pre-trained model over the task's training inputs "
        "and the pruner), HISP's importance on the fine-tuned dense model (its fine-tuning "
        "not counted), random's draw. Δ is taken against the dense models of each row's own "
        f"seeds. Trained on {devices_description(rows)}.",
        "",
        *method_table(rows),
    ]
    if any(is_collapsed(r) for r in rows):
        lines += ["", collapse_note(constant_floor(rows))]
    dense_time = {time_key(r) for r in rows if r["method"] == "dense"}
    if any(r["method"] != "dense" and time_key(r) not in dense_time for r in rows):
        lines += [
            "",
            "–: no dense fine-tune of the same task, seed, loop options and processor to divide "
            "by (rows before 2026-12-06 do not name their processor, so they pair only with "
            "each other).",
        ]
    if any(r.get("train_cap") for r in rows):
        lines += [
            "",
            "Rows marked ≤N train fine-tuned on a seeded N-example subset of the train split "
            "(`--train-cap`), every method and the in-run dense model alike; their Δ is taken "
            "against that in-run dense model, as is that of rows with other loop options.",
        ]
        if any(r.get("train_cap") and r["method"] == "hisp" for r in rows):
            lines[-1] += (
                " Their HISP rows take importance from that in-run dense model of their seed "
                "(the same subset; `importance_from` in the row), not from the dense cache's "
                "full-recipe model."
            )
    lines += target_lines(rows)
    lines += after_finetuning_lines(comparison)
    lines += overlap_lines(rows)
    lines += ["", "Pruners:", ""] + [f"- {line}" for line in pruner_lines(rows)]
    (results / "report.md").write_text("\n".join(lines) + "\n")

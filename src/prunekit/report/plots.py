"""Figures of a comparison: metric-vs-heads curves, per-layer heat-maps, speed vs ideal."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from prunekit.report.summary import aggregate, dense_reference, structure_rows  # noqa: E402

__all__ = ["plot_curves", "plot_heatmaps", "plot_speed"]


def plot_curves(rows: list[dict[str, Any]], task: str, metric: str, path: Path) -> Path:
    """Primary dev metric vs fraction of heads removed: mean ± std band per method, R0 | R1."""
    of_task = [r for r in rows if r["task"] == task]
    # the report's header value: the fixed-count rows' seeds when there are any
    dense = dense_reference([r for r in of_task if "budget" not in r] or of_task)[task]
    budget_points = [r for r in rows if r["task"] == task and "budget" in r]
    rows = [r for r in rows if "budget" not in r]
    cells = [c for c in aggregate(rows) if c.task == task]
    regimes = sorted({c.regime for c in cells}) or ["r0"]
    fig, axes = plt.subplots(
        1, len(regimes), figsize=(5.5 * len(regimes), 4), squeeze=False, sharey=True
    )
    titles = {"r0": "R0: no retraining", "r1": "R1: equal recovery budget"}
    for ax, regime in zip(axes[0], regimes, strict=True):
        for method in sorted({c.method for c in cells}):
            series = sorted(
                (c for c in cells if c.method == method and c.regime == regime),
                key=lambda c: c.fraction,
            )
            x = np.array([c.fraction * 100 for c in series])
            mean = np.array([c.mean for c in series])
            std = np.array([c.std for c in series])
            ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=method)
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        # A budget row sits on the panel its model belongs to: R1 when the method trained the
        # weights itself (peer's lossless students), else R0 (A*'s set, never retrained).
        points = [r for r in budget_points if _budget_panel(r, regimes) == regime]
        for method, marker in zip(sorted({r["method"] for r in points}), "*PXD^v", strict=False):
            chosen = [r for r in points if r["method"] == method]
            ax.scatter(
                [r["fraction"] * 100 for r in chosen],
                [r["dev"] for r in chosen],
                marker=marker,
                s=90,
                zorder=5,
                label=f"{method} (budget mode)",
            )
            for r in chosen:
                ax.annotate(
                    f"B={r['budget']:g}",
                    (r["fraction"] * 100, r["dev"]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
        ax.set_title(titles.get(regime, regime))
        ax.set_xlim(0, 100)
        ax.set_xlabel("heads removed (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)  # each panel: its budget points are not on the others
    axes[0][0].set_ylabel(f"dev {metric}")
    fig.suptitle(f"{task}: metric vs heads removed (mean ± std over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _budget_panel(row: dict[str, Any], regimes: list[str]) -> str:
    wanted = "r1" if row.get("trained_by_method") else "r0"
    return wanted if wanted in regimes else regimes[0]


def plot_heatmaps(rows: list[dict[str, Any]], task: str, fraction: float, path: Path) -> Path:
    """Share of seeds keeping each (layer, head), one panel per method, at ``fraction``."""
    chosen = [r for r in structure_rows(rows, task) if abs(r["fraction"] - fraction) < 1e-9]
    by_method: dict[str, list[np.ndarray]] = defaultdict(list)
    for row in chosen:
        layers = len(row["kept_heads"])
        heads = (row["heads_kept"] + row["heads_removed"]) // layers
        mask = np.zeros((layers, heads))
        for layer, kept in enumerate(row["kept_heads"]):
            mask[layer, kept] = 1.0
        by_method[row["method"]].append(mask)
    methods = sorted(by_method)
    fig, axes = plt.subplots(
        1, max(1, len(methods)), figsize=(3.6 * max(1, len(methods)), 3.4), squeeze=False
    )
    for ax, method in zip(axes[0], methods, strict=False):
        image = ax.imshow(np.mean(by_method[method], axis=0), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(method)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
    if methods:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="kept (share of seeds)")
    fig.suptitle(f"{task}: heads kept at {fraction:.0%} removed")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_speed(rows: list[dict[str, Any]], task: str, path: Path) -> Path:
    """Parameters and measured vs MAC-ideal throughput speed-up against heads removed."""
    chosen = sorted(structure_rows(rows, task), key=lambda r: r["fraction"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    fractions = sorted({r["fraction"] for r in chosen})
    params = [
        np.mean([r["parameters"] for r in chosen if r["fraction"] == f]) / 1e6 for f in fractions
    ]
    left.plot([f * 100 for f in fractions], params, marker="o")
    left.set_xlabel("heads removed (%)")
    left.set_ylabel("parameters (M)")
    left.grid(alpha=0.3)
    timed = [r for r in chosen if "measured_speedup" in r]
    ideal = {r["fraction"]: r["ideal_speedup"] for r in chosen}
    right.plot([f * 100 for f in fractions], [ideal[f] for f in fractions], "k--", label="ideal")
    for method in sorted({r["method"] for r in timed}):
        points = [
            (r["fraction"] * 100, r["measured_speedup"]) for r in timed if r["method"] == method
        ]
        right.plot(*zip(*points, strict=True), marker="o", label=f"measured ({method})")
    right.set_xlabel("heads removed (%)")
    right.set_ylabel("throughput speed-up, batch 32")
    right.grid(alpha=0.3)
    right.legend()
    fig.suptitle(f"{task}: size and speed")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

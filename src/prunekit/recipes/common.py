"""What the recipes share: the console, progress bars, and seeding. Only recipes draw progress
(components take ``on_step``/``on_progress`` callbacks)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from prunekit.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's seeds: 0 .. 2**32 - 1

__all__ = [
    "MAX_SEED",
    "at_least",
    "check_head_method",
    "console",
    "seed_everything",
    "step_progress",
    "method_progress",
    "method_warnings",
]

console = Console(stderr=True)


def at_least(minimum: int, **flags: int | None) -> None:
    """Refuse, as one line naming the flag, the first of ``flags`` under ``minimum`` (None:
    not given), before a count of 0 or less fails deep inside torch or a DataLoader."""
    for name, value in flags.items():
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be at least {minimum}, got {value}")


def check_head_method(method: str, info: Any) -> None:
    """Refuse a method that does not remove heads from a fine-tuned model (``info``: its
    registry entry) where a job removes a fraction of a fine-tuned model's heads."""
    if info.prunes_pretrained:
        raise ConfigError(
            f"{method} prunes the pre-trained model before fine-tuning, not a fine-tuned one: "
            "run it with `prunekit prune` on the pre-trained model"
        )
    if "heads" not in info.targets:
        raise ConfigError(
            f"{method} prunes {'/'.join(info.targets)}, not heads: a head-fraction job does not "
            "apply; run it with `prunekit prune`"
        )


StepDisplay = Callable[[int, int, dict[str, Any] | None], None]


def method_warnings(record: dict[str, Any], method: str) -> list[str]:
    """Print what a method wants the user to know about its decision (its result record's
    ``warnings``) and return them, for the metrics.json that keeps them."""
    warnings = list(record.get("warnings", []))
    for warning in warnings:
        console.print(f"[yellow]note ({method}):[/] {warning}", highlight=False)
    return warnings


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (accelerate's helper covers all three)."""
    from accelerate.utils import set_seed

    if not 0 <= seed <= MAX_SEED:  # numpy's own error would be a bare ValueError from inside
        raise ConfigError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")

    set_seed(seed)


def _status(values: dict[str, Any] | None) -> str:
    """``loss 0.1234 kd 0.0100 ...`` then a note; NaN losses (searches) are left out."""
    if not values:
        return ""
    parts = []
    for name, value in values.items():
        if name in ("step", "steps", "note") or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        parts.append(f"{name} {value:.4f}" if isinstance(value, float) else f"{name} {value}")
    if values.get("note"):
        parts.append(str(values["note"]))
    return " ".join(parts)


@contextmanager
def step_progress(description: str, enabled: bool = True) -> Iterator[StepDisplay | None]:
    """A rich progress bar; yields ``on_step(step, total, values)`` for the training loop
    (``values``: the loss, its named parts and method status, plus an optional ``note``).

    The bar appears at the first step, so input errors found while loading print alone.
    """
    if not enabled:
        yield None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    bars: list = []

    def on_step(step: int, total: int, values: dict[str, Any] | None = None) -> None:
        if not bars:
            progress.start()
            bars.append(progress.add_task(description, total=None, status=""))
        progress.update(bars[0], completed=step, total=total, status=_status(values))

    try:
        yield on_step
    finally:
        if bars:
            progress.stop()


@contextmanager
def method_progress(
    description: str, enabled: bool = True
) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """`step_progress` for a method's ``on_progress({"step", "steps", ...})`` callback."""
    with step_progress(description, enabled) as on_step:
        if on_step is None:
            yield None
            return

        def on_progress(info: dict[str, Any]) -> None:
            if "step" in info:
                on_step(int(info["step"]), int(info["steps"]), info)

        yield on_progress

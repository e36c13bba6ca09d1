"""The loop's metrics log: interval means of every logged value, as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prunekit.files import write_atomic

__all__ = ["METRICS_FILE", "MetricsLog"]

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Means of every logged value over each ``log_every`` steps, appended to metrics.jsonl.

    The sums of an unfinished interval travel in the checkpoint, so a resumed run writes the
    same lines as an uninterrupted one; lines past the checkpoint are dropped on resume.
    """

    def __init__(self, directory: Path | None, every: int, main: bool) -> None:
        self.path = directory / METRICS_FILE if directory is not None else None
        self.every, self.main = every, main
        self.sums: dict[str, float] = {}
        self.count = 0
        self.lines: list[dict[str, float]] = []
        if self.path is not None and main:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        """A fresh run: lines an earlier (finished or killed) run left here do not belong."""
        if self.path is not None and self.main:
            self.path.write_text("")

    def restore(self, step: int, pending: dict[str, Any]) -> None:
        self.sums, self.count = dict(pending.get("sums", {})), int(pending.get("count", 0))
        if self.path is not None and self.path.is_file():
            kept = [_parsed(x) for x in self.path.read_text().splitlines() if x.strip()]
            self.lines = [line for line in kept if line is not None and line["step"] <= step]
            if self.main:  # replaced whole: a kill while rewriting must not lose the log
                text = "".join(json.dumps(x) + "\n" for x in self.lines)
                write_atomic(self.path, lambda tmp: tmp.write_text(text))

    def add(self, step: int, values: dict[str, float], lr: float, final: bool) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += 1
        if step % self.every and not final:
            return
        line = {"step": step, "lr": lr, **{k: v / self.count for k, v in self.sums.items()}}
        self.lines.append(line)
        self.sums, self.count = {}, 0
        if self.path is not None and self.main:
            with self.path.open("a") as handle:
                handle.write(json.dumps(line) + "\n")

    def pending_state(self) -> dict[str, Any]:
        return {"sums": self.sums, "count": self.count}

    def read(self) -> list[dict[str, float]]:
        return list(self.lines)


def _parsed(line: str) -> dict[str, Any] | None:
    """One logged line; None for the torn last line of a run killed while appending it."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None

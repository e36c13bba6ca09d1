"""The benchmarks' result files: one JSON object per line, keyed by ``row["key"]``, appended as
each run finishes (so a killed benchmark resumes after its last finished run), and rewritten
whole only through a temporary file (so a kill never leaves half a file)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def keyed_rows(path: Path) -> dict[str, dict]:
    """The rows of ``path`` by key (the last row of a key wins); empty when there is no file."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def append_row(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())  # the row of a run that took an hour survives a crash


def write_rows(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(path)


def precision_suffix(precision: str, separator: str = "-") -> str:
    """What a precision adds to a folder or key: nothing for fp32, so that results written
    before the option existed keep their names."""
    return "" if precision == "fp32" else f"{separator}{precision}"

"""Reading a comparison's results.jsonl (written by `prunekit compare`, one row per run)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from prunekit.errors import DataError

__all__ = ["read_results"]

# What every table, summary and resume check reads from a row.
_REQUIRED = ("key", "task", "method", "seed", "dev", "dense_dev")


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.jsonl; a torn last line (killed mid-write) is ignored.

    Raises:
        DataError: an earlier line that is not JSON, or a row that is not an object with the
            keys above and finite ``dev`` and ``dense_dev``, named by its line number (a row
            skipped without a word would vanish from every table).
    """
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise DataError(f"{path}:{number} is not JSON; fix or delete that line") from None
        if problem := _row_problem(row):
            raise DataError(f"{path}:{number} {problem}; fix or delete that line")
        rows.append(row)
    return rows


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"is a JSON {type(row).__name__}, not a result row"
    if missing := [key for key in _REQUIRED if key not in row]:
        return f"lacks {', '.join(missing)}"
    for key in ("dev", "dense_dev"):
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"has {key} {json.dumps(value)}, not a number"
        if not math.isfinite(value):
            return f"has {key} {value}, not a finite number"
    return None

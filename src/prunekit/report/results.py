"""Reading a comparison's results.jsonl (written by `prunekit compare`, one row per run)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunekit.errors import DataError

__all__ = ["REPORT_KEYS", "read_results"]

# What every table and summary of `prunekit report` reads from a row.
REPORT_KEYS = ("key", "task", "method", "seed", "dev", "dense_dev")
_NUMBERS = ("dev", "dense_dev")


def read_results(path: Path, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Rows of a results.jsonl. A line that is not JSON is a row torn by a kill mid-write
    (`compare` ends it and appends after it on resume, so it may be anywhere): skipped, its
    run is not in the file and runs again.

    Raises:
        DataError: a line that is JSON but not an object, a row without the ``required``
            keys (those of ``dev`` and ``dense_dev`` must be finite numbers), or, when ``key``
            is required, a second row of one task's run (`compare` writes each run once; a
            file assembled by hand with a run twice would average both), named by its line
            number: a traceback from deep inside a table otherwise, or a row lost.
    """
    if not path.is_file():
        return []
    rows = []
    first_line: dict[tuple[Any, Any], int] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if problem := _row_problem(row, required):
            raise DataError(f"{path}:{number} {problem}; fix or delete that line")
        if "key" in required:
            run = (row.get("task"), row["key"])
            if run in first_line:
                raise DataError(
                    f"{path}:{number} repeats run {row['key']} of task {row.get('task')} "
                    f"(line {first_line[run]}); delete the row you do not want"
                )
            first_line[run] = number
        rows.append(row)
    return rows


def _row_problem(row: Any, required: Sequence[str]) -> str | None:
    if not isinstance(row, dict):
        return f"is a JSON {type(row).__name__}, not a result row"
    if missing := [key for key in required if key not in row]:
        return f"lacks {', '.join(missing)}"
    for key in (k for k in _NUMBERS if k in required):
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"has {key} {json.dumps(value)}, not a number"
        if not math.isfinite(value):
            return f"has {key} {value}, not a finite number"
    return None

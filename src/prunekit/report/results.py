"""Reading a comparison's results.jsonl (written by `prunekit compare`, one row per run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_results"]


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.jsonl; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows

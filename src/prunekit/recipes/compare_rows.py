"""`compare`'s rows in results.jsonl: what one row holds, and appending rows so that a kill
keeps every finished one."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunekit.errors import ConfigError
from prunekit.recipes.compare_config import run_key, value_key

__all__ = ["append_rows", "mismatched", "refuse_one_key_twice", "result_row", "scalars"]


def append_rows(results: Path, rows: list[dict[str, Any]]) -> None:
    """Append rows and flush them to disk at once: a kill right after keeps them."""
    torn = _ends_mid_line(results)
    with results.open("a") as handle:
        if torn:  # a kill mid-write left half a line: end it, or the next row would join it
            handle.write("\n")
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _ends_mid_line(path: Path) -> bool:
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def result_row(base: dict[str, Any], regime: str, results: dict[str, dict]) -> dict[str, Any]:
    return {
        "key": run_key(base["method"], base["fraction"], base["seed"], regime),
        **base,
        "regime": regime,
        "validation": results["validation"]["primary"],
        "dev": results["dev"]["primary"],
        "dev_metrics": results["dev"]["metrics"],
        # what a model collapsed to one answer scores on dev: the report flags runs at it
        "dev_constant": results["dev"].get("constant"),
        **mismatched(results),
    }


def mismatched(results: dict[str, dict], prefix: str = "") -> dict[str, float]:
    """MNLI's mismatched dev metric, which GLUE reports beside the matched one."""
    extra = results.get("dev_mismatched")
    return {} if extra is None else {f"{prefix}dev_mismatched": extra["primary"]}


def scalars(certificate: dict[str, Any]) -> dict[str, Any]:
    """A certificate's scalars and head lists for a row; the nested records stay out."""
    return {k: v for k, v in certificate.items() if not isinstance(v, dict)}


def refuse_one_key_twice(values: Sequence[float], option: str) -> None:
    """Two values with one row key (`value_key`) would share one row, and the second would be
    reported as done without having run."""
    seen: dict[str, float] = {}
    for value in values:
        shown = value_key(value)
        if shown in seen and seen[shown] != value:
            raise ConfigError(
                f"{option} {seen[shown]} and {value} are one row key ({shown}); "
                "give values at least 0.0001 apart"
            )
        seen[shown] = value

"""Timing helpers (library side; runnable suites live in the top-level benchmarks/)."""

from prunekit.bench.latency import (
    SPREAD_THRESHOLD,
    Timing,
    environment,
    spread_warning,
    summarize,
    time_models,
    unreliable,
)
from prunekit.bench.speed import speed_table

__all__ = [
    "SPREAD_THRESHOLD",
    "Timing",
    "environment",
    "spread_warning",
    "summarize",
    "time_models",
    "speed_table",
    "unreliable",
]

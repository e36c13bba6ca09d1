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
from prunekit.bench.speed import TIMING_DTYPES, speed_table, timing_dtype

__all__ = [
    "SPREAD_THRESHOLD",
    "TIMING_DTYPES",
    "Timing",
    "environment",
    "spread_warning",
    "summarize",
    "time_models",
    "speed_table",
    "timing_dtype",
    "unreliable",
]

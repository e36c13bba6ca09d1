"""Timing helpers (library side; runnable suites live in the top-level benchmarks/)."""

from prunekit.bench.latency import Timing, environment, time_models

__all__ = ["Timing", "environment", "time_models"]

"""Reports of comparison sweeps: aggregation, Markdown tables and figures. Reads result rows
only (never models or methods)."""

from prunekit.report.markdown import FIGURE_KINDS, write_report
from prunekit.report.results import read_results
from prunekit.report.summary import Cell, aggregate, dense_reference

__all__ = ["FIGURE_KINDS", "Cell", "aggregate", "dense_reference", "read_results", "write_report"]

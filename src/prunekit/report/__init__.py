"""Reports of comparison sweeps: aggregation, Markdown tables and figures."""

from prunekit.report.markdown import write_report
from prunekit.report.summary import Cell, aggregate, dense_reference

__all__ = ["Cell", "aggregate", "dense_reference", "write_report"]

"""Recipes for the small commands: `inspect`, `export` and `methods`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prunekit.methods import get_method, list_methods
from prunekit.models import load, model_stats
from prunekit.models.export import export_onnx
from prunekit.models.sources import resolve_model
from prunekit.models.sparse_storage import storage_report

__all__ = ["run_inspect", "run_export", "run_methods"]


def run_inspect(model: str, seq_len: int = 128) -> dict[str, Any]:
    """Architecture, heads, FFN widths, parameters (dense and nonzero), encoder MACs, and bytes
    on disk (per file; for sparse-stored weights, their dense fp32 size against storage)."""
    directory = resolve_model(model)
    loaded = load(directory)
    stats = model_stats(loaded, seq_len).to_dict()
    stats["disk_bytes"] = storage_report(Path(directory))
    dropped = getattr(loaded, "prunekit_dropped_modules", None)
    if dropped:
        stats["dropped_modules"] = list(dropped)
    return stats


def run_export(
    model: str, out: Path, opset: int = 18, tolerance: float = 1e-4, overwrite: bool = False
) -> dict[str, Any]:
    return export_onnx(resolve_model(model), out, opset, tolerance, overwrite).to_dict()


def run_methods() -> list[dict[str, Any]]:
    """Every registered method's metadata and settings."""
    return [get_method(name).to_dict() for name in list_methods()]

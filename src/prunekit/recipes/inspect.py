"""Recipes for the small commands: `inspect`, `export`, `compact` and `methods`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from prunekit.errors import ModelLoadError
from prunekit.methods import get_method, list_methods
from prunekit.models import load, load_tokenizer, model_stats
from prunekit.models.checkpoint import WEIGHTS_NAME, write_model_files
from prunekit.models.export import export_onnx
from prunekit.models.sources import model_dir
from prunekit.models.sparse_storage import (
    MASKS_NAME,
    QUANTIZED_NAME,
    SPARSE_NAME,
    StorageOptions,
    storage_report,
)
from prunekit.models.weights_file import SHARD_INDEX_NAME, shard_files
from prunekit.outputs import atomic_output_dir, refuse_output_holding
from prunekit.recipes.common import at_least

__all__ = ["run_inspect", "run_export", "run_compact", "run_methods"]


def run_inspect(model: str, seq_len: int = 128) -> dict[str, Any]:
    """Architecture, heads, FFN widths, parameters (dense and nonzero), encoder MACs, and bytes
    on disk (per file; for sparse-stored weights, their dense fp32 size against storage)."""
    at_least(1, seq_len=seq_len)
    directory = model_dir(model)
    loaded = load(directory)
    stats = model_stats(loaded, seq_len).to_dict()
    stats["disk_bytes"] = storage_report(Path(directory))
    dropped = getattr(loaded, "prunekit_dropped_modules", None)
    if dropped:
        stats["dropped_modules"] = list(dropped)
    return stats


def run_export(
    model: str,
    out: Path,
    opset: int = 18,
    tolerance: float = 1e-4,
    overwrite: bool = False,
    optimize: bool = False,
) -> dict[str, Any]:
    return export_onnx(model_dir(model), out, opset, tolerance, overwrite, optimize).to_dict()


# The model's own files, which a new save writes (or, for storage it no longer uses, leaves
# out): never carried over from the old folder
_MODEL_FILES = (
    "config.json",
    "README.md",
    WEIGHTS_NAME,
    MASKS_NAME,
    SPARSE_NAME,
    QUANTIZED_NAME,
)


def run_compact(
    model: str,
    out: Path,
    sparse_values: str = "float32",
    embeddings: str = "float32",
    overwrite: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Save ``model`` again with smaller storage; bytes before and after, and how far the
    reloaded model's outputs moved on a random batch (the rounding's effect; measure task
    metrics with `prunekit eval`)."""
    storage = StorageOptions(sparse_values=sparse_values, embeddings=embeddings)
    directory = model_dir(model)
    refuse_output_holding(out, directory, same=True)  # in place, yes; its parent, never
    bytes_before = storage_report(Path(directory))["total"]  # before an in-place save replaces it
    original = load(directory)
    try:  # carried along when there is one; compaction itself needs none
        tokenizer = load_tokenizer(directory)
    except ModelLoadError:
        tokenizer = None
    # compacting in place replaces the folder: what a prune run or the user put beside the
    # model (plan.json, metrics.json, an onnx/ export...) is copied into the new one, written
    # with it; the model's own files (weights, storage, config, card) are the new save's alone
    beside: list[Path] = []
    if Path(out).resolve() == Path(directory).resolve():
        # a sharded checkpoint's files are the old weights too: the save writes one file
        shards = {p.name for p in shard_files(Path(directory))} | {SHARD_INDEX_NAME}
        beside = [  # plan.json's masks file stays
            p for p in Path(directory).iterdir() if p.name not in {*_MODEL_FILES, *shards}
        ]
    with atomic_output_dir(out, overwrite, shared=True) as tmp:
        write_model_files(original, tmp, tokenizer, storage)
        for path in beside:
            if (tmp / path.name).exists():  # a tokenizer saved again wins over the old copy
                continue
            if path.is_symlink():  # a link stays a link: never a copy of what it points to
                (tmp / path.name).symlink_to(path.readlink())
            elif path.is_dir():
                shutil.copytree(path, tmp / path.name, symlinks=True)
            else:
                shutil.copy2(path, tmp / path.name)
    compacted = load(out)
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, original.config.vocab_size, (4, 64), generator=generator)
    with torch.no_grad():
        before, after = (m(input_ids=ids)[0] for m in (original, compacted))
    return {
        "out": str(out),
        "storage": storage.to_dict(),
        "bytes_before": bytes_before,
        "bytes_after": storage_report(Path(out))["total"],
        "max_abs_output_change": float((before - after).abs().max()),
    }


def run_methods() -> list[dict[str, Any]]:
    """Every registered method's metadata and settings."""
    return [get_method(name).to_dict() for name in list_methods()]

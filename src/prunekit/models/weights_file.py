"""A saved model's weight files read into the model rebuilt from its config: each tensor in the
dtype it was stored in, compactly stored tensors (sparse values, quantized embeddings) from
their own files, and a strict check that the files hold exactly the model's tensors."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from prunekit.errors import ModelLoadError
from prunekit.models.sparse_storage import (
    QUANTIZED_NAME,
    SPARSE_NAME,
    StorageOptions,
    compact_parameters,
    emptied,
    read_compact,
    sparse_parameters,
    stored_sparse_names,
)
from prunekit.plan import PruningPlan

__all__ = [
    "SHARD_INDEX_NAME",
    "file_dtypes",
    "load_weights",
    "match_dtypes",
    "parameter_dtype",
    "shard_files",
]

# transformers' index of a checkpoint saved in several files (save_pretrained's max_shard_size)
SHARD_INDEX_NAME = "model.safetensors.index.json"

_FLOAT_DTYPES = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}


def parameter_dtype(model: nn.Module) -> torch.dtype | None:
    """The most common floating dtype among the parameters (by count), or None."""
    counts = Counter(p.dtype for p in model.parameters() if p.is_floating_point())
    return counts.most_common(1)[0][0] if counts else None


def file_dtypes(weights: Path) -> dict[str, torch.dtype]:
    """Floating dtype of each tensor in a safetensors file, read from its header only."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = handle.keys()  # noqa: SIM118 (the handle is not iterable)
            found = {key: handle.get_slice(key).get_dtype() for key in names}
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{weights} is corrupt: {err}") from None
    return {key: _FLOAT_DTYPES[name] for key, name in found.items() if name in _FLOAT_DTYPES}


def shard_files(directory: Path) -> list[Path]:
    """The weight files a sharded Hugging Face checkpoint's index names, each checked to exist;
    [] when ``directory`` has no index. prunekit itself writes one ``model.safetensors``."""
    index = directory / SHARD_INDEX_NAME
    if not index.is_file():
        return []
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelLoadError(f"{index} is corrupt ({type(err).__name__}: {err})") from None
    files = [directory / name for name in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        raise ModelLoadError(
            f"{index} names weight files that are not there: {', '.join(missing) or 'none'}; "
            "download or copy the whole checkpoint"
        )
    return files


def match_dtypes(model: nn.Module, file_dtypes: dict[str, torch.dtype]) -> None:
    # A strict load casts into the existing tensors, so any tensor stored in another dtype than
    # the one the model was built in (mixed precision) is converted first, for an exact reload.
    for key, tensor in model.state_dict(keep_vars=True).items():
        dtype = file_dtypes.get(key)
        if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
            tensor.data = tensor.data.to(dtype)


def load_weights(
    model: nn.Module,
    weights: Path,
    plan: PruningPlan,
    storage: StorageOptions,
    directory: Path,
) -> None:
    """Strict load; compactly stored weights come from their own files."""
    compact = compact_parameters(model, plan, storage)
    try:  # older directories hold unmasked linears in the sparse file too: read them there
        older = stored_sparse_names(directory)
    except (SafetensorError, OSError) as err:
        raise ModelLoadError(f"{directory}'s compact weight files are corrupt: {err}") from None
    compact |= {name: p for name, p in model.named_parameters() if name in older}
    if not compact:
        _load_weights_strict(model, weights)
        return
    needed = {SPARSE_NAME: bool(sparse_parameters(model, plan))}
    needed[QUANTIZED_NAME] = storage.embeddings != "float32"
    for name, required in needed.items():
        if required and not (directory / name).is_file():
            raise ModelLoadError(
                f"{directory} has no {name}, which holds some of its weights; the directory "
                "is incomplete"
            )
    try:
        stored = read_compact(directory, model, plan)
    except (SafetensorError, KeyError, ValueError, RuntimeError) as err:
        raise ModelLoadError(f"{directory}'s compact weight files are corrupt: {err}") from None
    with emptied(compact):
        _load_weights_strict(model, weights)
    for name, param in compact.items():
        if name not in stored or tuple(stored[name].shape) != tuple(param.shape):
            raise ModelLoadError(f"{directory} does not hold {name} as its config says")
        with torch.no_grad():
            param.copy_(stored[name])


def _load_weights_strict(model: nn.Module, weights: Path) -> None:
    try:
        missing, unexpected = safetensors.torch.load_model(model, str(weights), strict=False)
    except SafetensorError as err:
        raise ModelLoadError(f"{weights} is corrupt: {err}") from None
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ModelLoadError(
            f"{weights} does not match the architecture rebuilt from config.json: "
            f"{first[0].strip()}"
        ) from None
    # the instance's real ties (v5); the class's `_tied_weights_keys` lists the decoder even
    # when tie_word_embeddings is off, and an untied decoder missing from the file is an error
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    missing = [k for k in missing if k not in tied]
    if unexpected:  # transformers 4.x saved the Q/K/V of a layer pruned whole as 0-row tensors
        with safe_open(str(weights), framework="pt") as handle:
            unexpected = [k for k in unexpected if math.prod(handle.get_slice(k).get_shape())]
    if missing or unexpected:
        raise ModelLoadError(
            f"{weights} does not match config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )

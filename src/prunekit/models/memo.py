"""Trained weights kept for reuse: a method that trains the same student twice (peer's lossless
mode at two budgets, or at a budget and at the same fixed fraction) reads the first one back.

A memo is a folder with ``model.safetensors`` (the state dict, shared tensors handled by
safetensors) and ``record.json``, written through `atomic_output_dir`, so a kill never leaves
half of one. Its name comes from `weights_digest` of the model it started from and
whatever else decided the training (the caller's key).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from prunekit.outputs import atomic_output_dir

__all__ = [
    "hash_inputs",
    "inputs_digest",
    "hash_weights",
    "load_weights_memo",
    "save_weights_memo",
    "weights_digest",
]

_WEIGHTS, _RECORD = "model.safetensors", "record.json"


def hash_weights(digest: Any, model: nn.Module) -> None:
    """Feed the model's state dict to a hashlib ``digest``: names, shapes, dtypes and bytes."""
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())


def hash_inputs(digest: Any, items: Iterable[Mapping[str, Any]]) -> None:
    """Feed model inputs (batches or single encoded examples) to a hashlib ``digest``: each
    field's name, then its bytes (a tensor's) or its repr (anything else), fields sorted."""
    for item in items:
        for name in sorted(item):
            value = item[name]
            digest.update(name.encode())
            if torch.is_tensor(value):
                digest.update(value.cpu().contiguous().numpy().tobytes())
            else:
                digest.update(repr(value).encode())


def inputs_digest(dataset: Any) -> str:
    """16 hex digits of `hash_inputs` over an indexable dataset of encoded examples (token ids,
    so another tokenizer or --max-seq-length gives other digits than the same text would)."""
    digest = hashlib.sha256()
    hash_inputs(digest, (dataset[i] for i in range(len(dataset))))
    return digest.hexdigest()[:16]


def weights_digest(model: nn.Module) -> str:
    """24 hex digits of `hash_weights`."""
    digest = hashlib.sha256()
    hash_weights(digest, model)
    return digest.hexdigest()[:24]


def load_weights_memo(directory: Path, model: nn.Module) -> dict[str, Any] | None:
    """Load the memo's weights into ``model`` (same architecture) and return its record; None,
    and ``model`` untouched, when there is no memo."""
    if not (directory / _RECORD).is_file():  # written last: its presence means complete
        return None
    load_model(model, str(directory / _WEIGHTS), device=str(next(model.parameters()).device))
    return json.loads((directory / _RECORD).read_text())


def save_weights_memo(directory: Path, model: nn.Module, record: dict[str, Any]) -> None:
    """Keep ``model``'s weights and a JSON ``record`` under ``directory``."""
    with atomic_output_dir(directory, overwrite=True, shared=True) as tmp:
        save_model(model, str(tmp / _WEIGHTS))
        (tmp / _RECORD).write_text(json.dumps(record))

"""Latency and throughput, measured fairly: every model timed in the same process, alternately,
on the same random inputs, after warm-up; medians over several rounds."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Timing", "time_models", "environment"]


@dataclass(frozen=True)
class Timing:
    batch_size: int
    seq_len: int
    median_s: float
    mean_s: float
    std_s: float
    rounds: int
    warmup: int

    @property
    def sequences_per_s(self) -> float:
        return self.batch_size / self.median_s

    def to_dict(self) -> dict:
        return {**asdict(self), "sequences_per_s": self.sequences_per_s}


@torch.inference_mode()
def time_models(
    models: dict[str, nn.Module],
    batch_size: int,
    seq_len: int = 128,
    rounds: int = 10,
    warmup: int = 2,
    seed: int = 0,
    sessions: dict[str, Any] | None = None,
) -> dict[str, Timing]:
    """Median forward time of each model on a ``[batch_size, seq_len]`` batch without padding.

    Rounds interleave the models (A, B, A, B, ...) so drifts in machine speed hit all alike.
    With ``sessions`` (onnxruntime sessions under the same names as ``models``) the exported
    graphs are timed instead of the PyTorch modules, on the same inputs.
    """
    vocab = min(m.config.vocab_size for m in models.values())
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(
        1000 if vocab > 2000 else 5, vocab, (batch_size, seq_len), generator=generator
    )
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    runners = {name: _torch_runner(model, batch) for name, model in models.items()}
    if sessions is not None:
        runners = {name: _onnx_runner(sessions[name], batch) for name in models}
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {
        name: Timing(
            batch_size=batch_size,
            seq_len=seq_len,
            median_s=statistics.median(values),
            mean_s=statistics.fmean(values),
            std_s=statistics.stdev(values) if len(values) > 1 else 0.0,
            rounds=rounds,
            warmup=warmup,
        )
        for name, values in samples.items()
    }


def _torch_runner(model: nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    model.eval()
    return lambda: model(**batch)


def _onnx_runner(session: Any, batch: dict[str, torch.Tensor]) -> Callable[[], Any]:
    ids = batch["input_ids"].numpy()
    available = {
        "input_ids": ids,
        "attention_mask": batch["attention_mask"].numpy(),
        "token_type_ids": np.zeros_like(ids),
    }
    feed = {i.name: available[i.name] for i in session.get_inputs()}
    return lambda: session.run(None, feed)


def environment() -> dict[str, str | int]:
    """What a timing was measured on."""
    return {
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": "float32",
        "python": platform.python_version(),
    }

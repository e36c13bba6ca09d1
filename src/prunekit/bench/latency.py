"""Latency and throughput, measured fairly: every model timed in the same process, alternately,
on the same random inputs, after warm-up; medians over several rounds."""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass

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
) -> dict[str, Timing]:
    """Median forward time of each model on a ``[batch_size, seq_len]`` batch without padding.

    Rounds interleave the models (A, B, A, B, ...) so drifts in machine speed hit all alike.
    """
    vocab = min(m.config.vocab_size for m in models.values())
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(
        1000 if vocab > 2000 else 5, vocab, (batch_size, seq_len), generator=generator
    )
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    for model in models.values():
        model.eval()
        for _ in range(warmup):
            model(**batch)
    samples: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model(**batch)
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

"""Latency and throughput, measured fairly: every model timed in the same process, alternately,
on the same random inputs, after warm-up; medians over several rounds.

Timings are only as good as the machine is quiet. Each `Timing` carries its spread (interquartile
range over the median) and `unreliable` / `spread_warning` say when that spread is too large for
the median to be trusted, and what to do about it. On a GPU the clock is read only after the
device has finished its queued work (kernels are launched asynchronously).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from prunekit.device import cpu_name, module_device, synchronize
from prunekit.errors import ConfigError

__all__ = [
    "SPREAD_THRESHOLD",
    "Timing",
    "environment",
    "spread_warning",
    "summarize",
    "time_models",
    "unreliable",
]

# Above 10 % of the median, run-to-run noise is as large as the speed-ups being measured.
SPREAD_THRESHOLD = 0.10
# Pause before each block of a timing with onnxruntime, and between its sessions (`time_models`).
ORT_SETTLE_S = 0.2


@dataclass(frozen=True)
class Timing:
    """Forward times of one model at one batch size, in seconds.

    ``iqr_s`` is the interquartile range of the samples and ``spread`` that range over the
    median: unlike ``std_s`` it is not inflated by a single hiccup, yet it grows as soon as a
    quarter of the rounds are disturbed.
    """

    batch_size: int
    seq_len: int
    median_s: float
    mean_s: float
    std_s: float
    rounds: int
    warmup: int
    min_s: float = 0.0
    iqr_s: float = 0.0

    @property
    def sequences_per_s(self) -> float:
        return self.batch_size / self.median_s

    @property
    def spread(self) -> float:
        """Interquartile range over the median (0.85 means the middle half spans 85 %)."""
        return self.iqr_s / self.median_s if self.median_s > 0 else 0.0

    def trustworthy(self, threshold: float = SPREAD_THRESHOLD) -> bool:
        """Whether the spread is at most ``threshold``."""
        return self.spread <= threshold

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "sequences_per_s": self.sequences_per_s,
            "spread": self.spread,
        }


def summarize(samples: Sequence[float], batch_size: int, seq_len: int, warmup: int = 0) -> Timing:
    """The `Timing` of measured forward times (seconds), one per round.

    Raises:
        ConfigError: there are no samples, or a sample is negative.
    """
    values = [float(v) for v in samples]
    if not values:
        raise ConfigError("no timing samples; use --rounds 1 or more")
    if min(values) < 0:
        raise ConfigError(f"timing samples must be >= 0 seconds, got {min(values)}")
    # Quartiles by linear interpolation, which stays defined for a handful of rounds.
    q1, q3 = np.percentile(values, [25, 75])
    return Timing(
        batch_size=batch_size,
        seq_len=seq_len,
        median_s=statistics.median(values),
        mean_s=statistics.fmean(values),
        std_s=statistics.stdev(values) if len(values) > 1 else 0.0,
        rounds=len(values),
        warmup=warmup,
        min_s=min(values),
        iqr_s=float(q3 - q1),
    )


def unreliable(timings: Iterable[Timing], threshold: float = SPREAD_THRESHOLD) -> list[Timing]:
    """The timings whose spread exceeds ``threshold`` (fraction of the median)."""
    if threshold <= 0:
        raise ConfigError(f"spread threshold must be > 0, got {threshold}")
    return [t for t in timings if not t.trustworthy(threshold)]


def spread_warning(timings: Iterable[Timing], threshold: float = SPREAD_THRESHOLD) -> str | None:
    """One line that says which batch sizes vary too much and how to measure cleanly, or None.

    Example: ``batch 1 timings vary by 85% of the median (threshold 10%): the machine is busy;
    close other jobs, pin threads (OMP_NUM_THREADS) and raise --rounds``.
    """
    noisy = unreliable(timings, threshold)
    if not noisy:
        return None
    worst: dict[int, float] = {}
    for timing in noisy:
        worst[timing.batch_size] = max(worst.get(timing.batch_size, 0.0), timing.spread)
    sizes = ", ".join(str(b) for b in sorted(worst))
    noun = "batch" if len(worst) == 1 else "batches"
    return (
        f"{noun} {sizes} timings vary by {max(worst.values()):.0%} of the median "
        f"(threshold {threshold:.0%}): the machine is busy; close other jobs, "
        "pin threads (OMP_NUM_THREADS) and raise --rounds"
    )


@torch.inference_mode()
def time_models(
    models: dict[str, nn.Module],
    batch_size: int,
    seq_len: int = 128,
    rounds: int = 10,
    warmup: int = 2,
    seed: int = 0,
    sessions: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Timing]:
    """Median forward time of each model on a ``[batch_size, seq_len]`` batch without padding.

    Rounds interleave the models (A, B, A, B, ...) so drifts in machine speed hit all alike.
    With ``sessions`` (onnxruntime sessions under names of ``models``) those models' exported
    graphs are timed instead of their PyTorch modules, on the same inputs, in a block of their
    own after the torch models' rounds. Interleaved, the two runtimes' thread pools (both spin
    between runs) slowed each other on the 2-core CPU of this project: onnxruntime by ~25%,
    torch by 5-20%, and two identical torch models differed by 15% depending on which ran
    right after onnxruntime; in blocks the identical ones agree within 1%.

    Args:
        device: where to time; models elsewhere are moved there (in place). ``None`` keeps
            them where they are, which must then be one device for all.

    Raises:
        ConfigError: no models, ``rounds < 1``, or models on different devices.
    """
    if not models:
        raise ConfigError("no models to time")
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    sessions = sessions or {}
    target = _timing_device(models, device)
    if sessions and target.type != "cpu":  # before any model moves: a refusal leaves them be
        raise ConfigError("onnxruntime is timed on the CPU: time torch models there too")
    for model in models.values():
        model.to(target)
    vocab = min(m.config.vocab_size for m in models.values())
    generator = torch.Generator().manual_seed(seed)  # CPU generator: same ids on every device
    input_ids = torch.randint(
        1000 if vocab > 2000 else 5, vocab, (batch_size, seq_len), generator=generator
    )
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}
    on_device = {k: v.to(target) for k, v in batch.items()}
    runners = {
        name: _onnx_runner(sessions[name], batch)
        if name in sessions
        else _torch_runner(model, on_device)
        for name, model in models.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in runners}
    blocks = [[n for n in runners if n not in sessions], [n for n in runners if n in sessions]]
    for block in [b for b in blocks if b]:
        if sessions:
            time.sleep(ORT_SETTLE_S)  # let the other runtime's threads (or an earlier call's) idle
        for name in block:
            for _ in range(warmup):
                runners[name]()
        synchronize(target)
        for _ in range(rounds):
            for name in block:
                start = time.perf_counter()
                runners[name]()
                synchronize(target)  # the forward call returns before a GPU has finished it
                samples[name].append(time.perf_counter() - start)
                if name in sessions and len(block) > 1:
                    time.sleep(ORT_SETTLE_S)  # sessions' spinning pools would slow the next
    return {
        name: summarize(values, batch_size, seq_len, warmup) for name, values in samples.items()
    }


def _timing_device(models: dict[str, nn.Module], device: torch.device | str | None) -> torch.device:
    """Where to time: ``device``, else the one the models share (nothing is moved here)."""
    if device is not None:
        return torch.device(device)
    devices = {name: module_device(model) for name, model in models.items()}
    if len(set(devices.values())) > 1:
        where = ", ".join(f"{name} on {d}" for name, d in devices.items())
        raise ConfigError(f"models to compare must share a device ({where}); pass device=")
    return next(iter(devices.values()))


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


def environment(
    models: Iterable[nn.Module] = (), device: torch.device | str | None = None
) -> dict[str, str | int]:
    """What a timing was measured on: the real device (GPU name) and the models' dtype.

    Args:
        models: the timed models; their device and dtype are recorded (``device`` wins).
        device: where the timing ran, when known.
    """
    models = list(models)
    devices = [torch.device(device)] if device is not None else _devices(models)
    info: dict[str, str | int] = {
        "device": "+".join(str(d) for d in devices),
        "cpu": cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": _dtype_name(models),
        "python": platform.python_version(),
    }
    gpus = [torch.cuda.get_device_name(d) for d in devices if d.type == "cuda"]
    if gpus:
        info["gpu"] = "+".join(dict.fromkeys(gpus))
        info["cuda"] = str(torch.version.cuda)
    return info


def _devices(models: list[nn.Module]) -> list[torch.device]:
    """The distinct devices of the models, in order; the CPU when there are none."""
    found = {str(module_device(m)): module_device(m) for m in models}
    return list(found.values()) or [torch.device("cpu")]


def _dtype_name(models: list[nn.Module]) -> str:
    """``float32``, ``bfloat16``, ...; several joined by ``+`` when the models differ."""
    if not models:
        return "float32"  # the default of every loader prunekit uses
    names = set()
    for model in models:
        dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
        names.update(str(d).removeprefix("torch.") for d in dtypes)
    return "+".join(sorted(names)) or "float32"

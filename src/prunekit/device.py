"""Which device to run on: ``--device`` names resolved once, checked against this machine.

Only torch and `prunekit.errors` are imported here, so every layer (components, recipes, CLI)
can use it without creating an import cycle.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch
from torch import nn

from prunekit.errors import ConfigError

__all__ = [
    "AUTO",
    "cpu_name",
    "describe_device",
    "module_device",
    "resolve_device",
    "synchronize",
]

AUTO = "auto"
_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device to use for ``name``: ``auto``/``None`` is CUDA when present, else the CPU.

    Args:
        name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a `torch.device`.

    Returns:
        A device that exists on this machine.

    Raises:
        ConfigError: the name is not a device, or that device is not available here.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() == AUTO):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use one of {_CHOICES}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        _check_cuda(device)
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError("device 'mps' is not available on this machine; use --device cpu")
        return device
    raise ConfigError(f"device type {device.type!r} is not supported; use one of {_CHOICES}")


def _check_cuda(device: torch.device) -> None:
    if not torch.cuda.is_available():
        # torch.version.cuda is None for CPU-only wheels: then no driver can help.
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise ConfigError(f"device {str(device)!r} requested but {why}; use --device cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device {str(device)!r} does not exist: {count} CUDA device(s) visible; "
            f"use cuda:0 to cuda:{count - 1}"
        )


def module_device(module: nn.Module) -> torch.device:
    """Device of the module's first parameter (or buffer); the CPU for an empty module."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """``"cpu"``, or a GPU with its name (``"cuda:0 (NVIDIA H200)"``): what results record
    about where they were computed."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's processor model (``"AMD EPYC"``, ``"Intel(R) Xeon(R) ..."``): timings and
    bf16 numerics depend on it, and one project's results can span machines. Linux names it in
    ``/proc/cpuinfo``; elsewhere `platform` says what it can (often just ``"x86_64"``)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels on ``device``: GPU calls return before the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()

"""Which process writes. Under `accelerate launch` every process runs the same recipe, so a
shared output folder is written by the main process only while the others wait for it: two
processes renaming their own copies onto one ``--out`` would fail or leave either rank's copy.
One plain process is the main one and never waits; accelerate is imported only under a launch.
"""

from __future__ import annotations

import os

__all__ = [
    "is_main_process",
    "launched",
    "main_process_value",
    "process_count",
    "wait_for_everyone",
]

_TRUE = ("1", "true", "yes")


def process_count() -> int:
    """How many processes the launcher started (``WORLD_SIZE``); 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether this process is one of several started by a launcher (``WORLD_SIZE`` > 1)."""
    return process_count() > 1


def _state():
    """accelerate's process state, formed as the training loop's `Accelerator` will form it: on
    the CPU (gloo) where no GPU is visible or the launcher says ``--cpu``. Without ``cpu=True``
    accelerate forms no process group on a CPU-only host, every rank would call itself the main
    one, and the loop's Accelerator would inherit that state."""
    import torch
    from accelerate import PartialState

    cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in _TRUE
    return PartialState(cpu=cpu or not torch.cuda.is_available())


def is_main_process() -> bool:
    return not launched() or _state().is_main_process


def main_process_value(value: bool) -> bool:
    """The main process's ``value``, in every launched process (a collective call: each one
    must make it); ``value`` itself in one plain process."""
    if not launched():
        return value
    from accelerate.utils import broadcast_object_list

    _state()  # the process group exists before the broadcast
    return bool(broadcast_object_list([value], from_process=0)[0])


def wait_for_everyone() -> None:
    """A barrier across the launched processes; nothing in one plain process."""
    if launched():
        _state().wait_for_everyone()

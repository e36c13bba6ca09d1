"""Which process writes. Under `accelerate launch` every process runs the same recipe, so an
output folder is written by the main process only while the others wait for it: two processes
renaming their own copies onto one ``--out`` would fail or leave either rank's copy. One plain
process is the main one and never waits; accelerate is imported only under a launch."""

from __future__ import annotations

import os

__all__ = ["is_main_process", "launched", "wait_for_everyone"]


def launched() -> bool:
    """Whether this process is one of several started by a launcher (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    if not launched():
        return True
    from accelerate import PartialState

    return PartialState().is_main_process


def wait_for_everyone() -> None:
    """A barrier across the launched processes; nothing in one plain process."""
    if launched():
        from accelerate import PartialState

        PartialState().wait_for_everyone()

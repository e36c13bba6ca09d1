"""Checkpoints of the one loop: written beside ``last/`` and swapped in, so a kill never leaves
half of one, and stamped with a fingerprint of the run so another run never resumes them.

accelerate writes the model (safetensors), the optimizer and the RNG states, and reads them back
with ``torch.load(weights_only=True)``. The loop's other state (its LR scheduler, a method's
masks, scores or samplers) is kept here rather than registered with accelerate, which would
pickle each object and unpickle it on resume with ``weights_only=False``: a checkpoint folder
could then run code. Here it is read with ``weights_only=True`` (tensors and plain containers).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from prunekit.train.extras import Stateful

__all__ = ["drop_checkpoint", "load_objects", "run_fingerprint", "save_checkpoint", "saved_state"]

_STATE_FILE = "trainer_state.json"
_OBJECTS_FILE = "objects.pt"
# Bumped when a checkpoint's layout changes: the fingerprint then refuses older ones (format 1
# kept the loop's objects in accelerate's pickles).
_FORMAT = 2


def run_fingerprint(fields: dict[str, Any], total: int, examples: int) -> str:
    """What a checkpoint must share with the run that resumes it: the settings ``fields``, the
    step count and the number of training examples."""
    return hashlib.sha256(
        json.dumps([fields, total, examples, _FORMAT], sort_keys=True).encode()
    ).hexdigest()[:16]


def saved_state(last_dir: Path | None) -> dict[str, Any] | None:
    """The state of the checkpoint in ``last_dir``; when a kill came between `save_checkpoint`'s
    renames, the complete previous one (``last.old``) is moved back first."""
    if last_dir is None:
        return None
    old = _swap_dirs(last_dir)[1]
    if not last_dir.exists() and (old / _STATE_FILE).is_file():
        with contextlib.suppress(OSError):  # another process of the run moved it first
            old.rename(last_dir)
    if not (last_dir / _STATE_FILE).is_file():
        return None
    return json.loads((last_dir / _STATE_FILE).read_text())


def _swap_dirs(last_dir: Path) -> tuple[Path, Path]:
    """`save_checkpoint`'s two folders beside ``last/``: the one it writes, the one it replaces."""
    return last_dir.with_name(f"{last_dir.name}.tmp"), last_dir.with_name(f"{last_dir.name}.old")


def drop_checkpoint(last_dir: Path) -> None:
    """Delete the checkpoint in ``last_dir`` and what a swap cut short left beside it
    (`saved_state` would move a ``last.old`` back). The state file goes first: a kill while
    the rest is deleted leaves a folder `saved_state` ignores, never one it would resume."""
    folders = (last_dir, *_swap_dirs(last_dir))
    for folder in folders:  # every one's first: ``last.old`` would be moved back otherwise
        with contextlib.suppress(OSError):
            (folder / _STATE_FILE).unlink(missing_ok=True)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    last_dir: Path,
    step: int,
    pending: dict[str, Any],
    run: str,
    seconds: float = 0.0,
    loss: float | None = None,
    objects: Mapping[str, Stateful] | None = None,
) -> None:
    """Write the checkpoint beside ``last/`` and swap it in, so a kill never leaves half of one.
    ``seconds``: training time up to ``step``, resumes included (a resumed run adds its own);
    ``objects``: the loop's state beside accelerate's, restored by `load_objects`."""
    tmp, old = _swap_dirs(last_dir)
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every rank's random states are in tmp before the swap
    if accelerator.is_main_process:
        states = {name: obj.state_dict() for name, obj in (objects or {}).items()}
        torch.save(states, tmp / _OBJECTS_FILE)
        state = {"step": step, "pending": pending, "run": run, "seconds": round(seconds, 3)}
        state["loss"] = loss  # the last step's, reported by a run resumed after its last step
        (tmp / _STATE_FILE).write_text(json.dumps(state))
        # Swap by renames only: a kill at any point leaves a complete last/ or last.old/.
        if old.exists():
            shutil.rmtree(old)
        if last_dir.exists():
            last_dir.rename(old)
        tmp.rename(last_dir)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_objects(last_dir: Path, objects: Mapping[str, Stateful]) -> None:
    """Restore ``objects`` from the checkpoint in ``last_dir`` (see the module docstring)."""
    path = last_dir / _OBJECTS_FILE
    states = torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else {}
    missing = sorted(set(objects) - set(states))
    if missing:
        raise ValueError(f"the checkpoint in {last_dir} has no state for {', '.join(missing)}")
    for name, obj in objects.items():
        obj.load_state_dict(states[name])

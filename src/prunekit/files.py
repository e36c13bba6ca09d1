"""File helpers under every layer that writes: atomic replacement with the modes a plain
``open`` or ``mkdir`` would give, and the packed-bit form of boolean masks.

`prunekit.plan` and `prunekit.outputs` are independent layers, so what both need lives here,
once.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and torch load with the functions that need them: outputs needs none
    import torch

__all__ = ["pack_bits", "unpack_bits", "usual_mode", "write_atomic"]


def usual_mode(directory: bool) -> int:
    """The permissions a plain ``mkdir`` or ``open`` would give under this process's umask
    (``tempfile`` makes its files and folders private, 0600 and 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary sibling that ``write`` fills and a rename, so readers
    never see half a file (or half of the file it replaces); the file gets the usual mode."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(usual_mode(directory=False))  # mkstemp's 0600 would stay after the rename
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as uint8 bytes of 8 entries each (row-major; shape kept elsewhere)."""
    import numpy as np
    import torch

    return torch.from_numpy(np.packbits(mask.detach().cpu().contiguous().flatten().numpy()))


def unpack_bits(packed: torch.Tensor, shape: Sequence[int], name: str) -> torch.Tensor:
    """A boolean tensor of ``shape`` from its `pack_bits` form, checked first: uint8, one
    dimension, exactly the bytes the shape needs (numpy would pad a short array with zeros, so
    a truncated file would load with its tail dropped, and a hostile shape would allocate
    before anything failed). ``ValueError`` names ``name`` otherwise."""
    import numpy as np
    import torch

    shape = tuple(int(n) for n in shape)
    if any(n < 0 for n in shape):
        raise ValueError(f"{name}: negative shape {list(shape)}")
    count = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != (count + 7) // 8:
        raise ValueError(
            f"{name}: {packed.numel()} {packed.dtype} values do not pack the {count} bits of "
            f"shape {list(shape)}"
        )
    bits = np.unpackbits(packed.numpy(), count=count).astype(bool)
    return torch.from_numpy(bits).view(shape)

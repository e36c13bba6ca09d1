"""Atomic output directories: a command either leaves a complete result or nothing at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunekit.errors import OutputExistsError
from prunekit.files import usual_mode, write_atomic
from prunekit.processes import is_main_process, launched, wait_for_everyone

__all__ = [
    "atomic_output_dir",
    "check_output_dir",
    "checkpoint_dir_for",
    "refuse_output_holding",
    "write_json",
]


def check_output_dir(path: str | Path, overwrite: bool) -> Path:
    """Fail early (before any work) when ``path`` exists and ``overwrite`` is false."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output directory {path} already exists; pass --overwrite")
    if path.exists() and not path.is_dir():
        raise OutputExistsError(
            f"output path {path} exists and is not a directory; choose another --out"
        )
    # An output that cannot be created would otherwise fail only after the work is done.
    ancestor = next(p for p in (path, *path.parents) if p.exists())
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputExistsError(
            f"cannot create {path}: {ancestor} is not a writable directory; choose another --out"
        )
    return path


def refuse_output_holding(out: str | Path, source: str | Path, same: bool = False) -> None:
    """Refuse an output folder that holds ``source`` (a local model folder the command reads):
    the atomic swap would replace it, and everything beside the model, by the new output.
    ``same``: the source itself is allowed (a command that rewrites a model in place)."""
    out_path, source_path = Path(out).resolve(), Path(source).resolve()
    if not source_path.exists():
        return  # a hub id
    holders = [*source_path.parents] + ([] if same else [source_path])
    if out_path in holders:
        raise OutputExistsError(
            f"--out {out} holds the model {source} being read; --overwrite would replace it, "
            "so use another folder"
        )


@contextlib.contextmanager
def atomic_output_dir(
    path: str | Path, overwrite: bool = False, shared: bool = False
) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``path`` only if the block succeeds.

    On error the temporary directory is deleted and ``path`` is left as it was.

    ``shared``: every process of an `accelerate launch` runs this block for the same ``path``
    (a recipe's output, a cache entry): the main one renames its folder into place, the others
    delete theirs, and all return once ``path`` is there. Without it (the default: a folder of
    one process's own, or a caller that saves on the main process only) nobody waits.
    """
    collective = shared and launched()
    if collective:
        wait_for_everyone()  # every process checks ``path`` before the main one replaces it
    path = check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    if collective:
        wait_for_everyone()  # ... and none checks it after
    try:
        yield tmp
        # safetensors (0.8) writes 0600 files, tempfile made the folder 0700: give the output
        # the modes a plain mkdir and open would, so others may read it as the umask allows
        folder_mode, file_mode = usual_mode(directory=True), usual_mode(directory=False)
        for folder, _, files in os.walk(tmp):  # links are left alone (chmod would follow)
            Path(folder).chmod(folder_mode)
            for written in (Path(folder) / name for name in files):
                if not written.is_symlink():
                    written.chmod(file_mode)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if collective and not is_main_process():
        shutil.rmtree(tmp, ignore_errors=True)
        wait_for_everyone()
        return
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if collective:
        wait_for_everyone()


def checkpoint_dir_for(out: str | Path) -> Path:
    """Checkpoints of the run that writes ``out`` live beside it, since ``out`` only appears
    once the run is complete (`atomic_output_dir`)."""
    out = Path(out)
    return out.parent / f".{out.name}.checkpoints"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file renamed over ``path``, so a kill never
    leaves half a file (or half of the file it replaces)."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))

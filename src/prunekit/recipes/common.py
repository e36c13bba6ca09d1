"""Helpers shared by the recipes: data for a task, reproducibility, progress and JSON files."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from prunekit.data import (
    EncodedDataset,
    TaskSpec,
    encode_examples,
    get_task,
    load_examples,
    make_collate,
)
from prunekit.errors import ConfigError

__all__ = [
    "console",
    "SPLIT_SEED",
    "task_dataset",
    "seed_everything",
    "step_progress",
    "write_json",
    "TaskData",
]

console = Console(stderr=True)

# The validation split is carved from train with this fixed seed whatever --seed says, so a
# model fine-tuned with one seed is never pruned or selected on examples it was trained on.
SPLIT_SEED = 0


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (accelerate's helper covers all three)."""
    from accelerate.utils import set_seed

    set_seed(seed)


def task_dataset(
    task: TaskSpec,
    split: str,
    tokenizer: Any,
    data_dir: str | os.PathLike | None,
    seed: int,
    max_seq_length: int = 128,
    max_samples: int | None = None,
) -> EncodedDataset:
    """Tokenised examples of one split; ``max_samples`` keeps a ``seed``-ed random subset."""
    examples = load_examples(task, split, data_dir=data_dir, seed=SPLIT_SEED)
    if max_samples is not None:
        if max_samples < 1:
            raise ConfigError(f"--max-*-samples must be at least 1, got {max_samples}")
        if max_samples < len(examples):
            order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))
            examples = [examples[i] for i in sorted(order[:max_samples].tolist())]
    return encode_examples(examples, tokenizer, max_seq_length, is_regression=task.is_regression)


@dataclass
class TaskData:
    """One task's tokenised splits, built lazily and cached, plus batch iterators over them."""

    task: TaskSpec
    tokenizer: Any
    data_dir: str | os.PathLike | None
    seed: int
    max_seq_length: int = 128
    batch_size: int = 32
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_task(
        cls,
        task: str | TaskSpec,
        tokenizer: Any,
        data_dir: str | os.PathLike | None,
        seed: int,
        max_seq_length: int = 128,
        batch_size: int = 32,
    ) -> TaskData:
        """Checks that the task's train data exists before anything expensive happens."""
        spec = get_task(task)
        load_examples(spec, "train", data_dir=data_dir, seed=SPLIT_SEED)
        return cls(spec, tokenizer, data_dir, seed, max_seq_length, batch_size)

    def with_tokenizer(self, tokenizer: Any) -> TaskData:
        return TaskData(
            self.task, tokenizer, self.data_dir, self.seed, self.max_seq_length, self.batch_size
        )

    @property
    def collate(self) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
        return make_collate(self.tokenizer)

    def dataset(self, split: str, max_samples: int | None = None) -> EncodedDataset:
        key = (split, max_samples)
        if key not in self._cache:
            self._cache[key] = task_dataset(
                self.task,
                split,
                self.tokenizer,
                self.data_dir,
                self.seed,
                self.max_seq_length,
                max_samples,
            )
        return self._cache[key]

    def batches(
        self, split: str, max_samples: int | None = None, shuffle_seed: int | None = None
    ) -> Callable[[], Iterator[dict[str, torch.Tensor]]]:
        """A re-iterable source of padded batches; with ``shuffle_seed`` each pass reshuffles
        (deterministically: pass k uses seed ``shuffle_seed + k``)."""
        passes = iter(range(1 << 30))

        def iterate() -> Iterator[dict[str, torch.Tensor]]:
            dataset = self.dataset(split, max_samples)
            generator = None
            if shuffle_seed is not None:
                generator = torch.Generator().manual_seed(shuffle_seed + next(passes))
            yield from DataLoader(
                dataset,
                batch_size=self.batch_size,
                collate_fn=self.collate,
                shuffle=generator is not None,
                generator=generator,
            )

        return iterate


@contextmanager
def step_progress(description: str, enabled: bool = True):
    """A rich progress bar; yields ``on_step(step, total, loss, note="")`` for long loops
    (``loss`` None for searches; ``note`` shows method state, e.g. L0's expected open heads)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        bar = progress.add_task(description, total=None, status="")

        def on_step(step: int, total: int, loss: float | None, note: str = "") -> None:
            status = "" if loss is None or math.isnan(loss) else f"loss {loss:.4f} "
            progress.update(bar, completed=step, total=total, status=status + note)

        yield on_step


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")

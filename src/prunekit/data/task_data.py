"""One task's tokenised splits and batch iterators: what every recipe and method reads."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from prunekit.data.encode import EncodedDataset, by_length, encode_examples, make_collate
from prunekit.data.glue import TaskSpec, examples_digest, get_task, load_examples
from prunekit.errors import ConfigError, DataError

__all__ = ["SPLIT_SEED", "CERTIFY_CAP", "TaskData", "task_dataset", "train_examples_digest"]

# The validation split is carved from train with this fixed seed whatever --seed says, so a
# model fine-tuned with one seed is never pruned or selected on examples it was trained on.
SPLIT_SEED = 0
# Each part of a search/certify split holds at most this many examples (large tasks).
CERTIFY_CAP = 1000


def train_examples_digest(task: str | TaskSpec, data_dir: str | os.PathLike | None = None) -> str:
    """The examples every fine-tune of ``task`` trains on (train less the validation carve,
    which is `SPLIT_SEED`'s whatever the run's seed), by content: what a checkpoint or a cached
    model trained on the train split is keyed by."""
    return examples_digest(task, "train", data_dir, SPLIT_SEED)


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
        check_dev: bool = True,
        every_dev_split: bool = False,
    ) -> TaskData:
        """Checks that the task's train data, and (``check_dev``) its dev data, exist before
        anything expensive happens: a missing dev file would otherwise fail only once training
        is done. ``every_dev_split``: MNLI's mismatched dev file too, for runs that report it
        (finetune, compare); the others never read it."""
        spec = get_task(task)
        dev = spec.dev_splits if every_dev_split else ("dev",)
        for split in ("train", *dev) if check_dev else ("train",):
            load_examples(spec, split, data_dir=data_dir, seed=SPLIT_SEED)
        return cls(spec, tokenizer, data_dir, seed, max_seq_length, batch_size)

    def with_tokenizer(self, tokenizer: Any) -> TaskData:
        return TaskData(
            self.task, tokenizer, self.data_dir, self.seed, self.max_seq_length, self.batch_size
        )

    @property
    def collate(self) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
        return make_collate(self.tokenizer)

    def dataset(
        self, split: str, max_samples: int | None = None, subset_seed: int | None = None
    ) -> EncodedDataset:
        """One split, or a random subset of ``max_samples`` of it drawn with ``subset_seed``
        (default: the run's seed)."""
        subset_seed = self.seed if subset_seed is None else subset_seed
        # a whole split is one entry whatever seed would draw a subset of it
        key = (split, max_samples, subset_seed if max_samples is not None else None)
        if key not in self._cache:
            self._cache[key] = task_dataset(
                self.task,
                split,
                self.tokenizer,
                self.data_dir,
                subset_seed,
                self.max_seq_length,
                max_samples,
            )
        return self._cache[key]

    def search_certify_split(
        self, split: str, seed: int, search_samples: int | None = None, cap: int = CERTIFY_CAP
    ) -> tuple[list[int], list[int]]:
        """Disjoint, seeded halves of ``split``: examples a search may look at, and examples
        kept from it to certify its result. Each part holds at most ``cap`` examples (the
        search part at most ``search_samples``); the same seed gives the same parts."""
        size = len(self.dataset(split))
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed)).tolist()
        half = size // 2
        search_cap = min(cap, search_samples) if search_samples is not None else cap
        search, certify = sorted(order[:half][:search_cap]), sorted(order[half:][:cap])
        if not search or not certify:
            raise DataError(
                f"the {split} split of {self.task.name} ({size} examples) is too small to cut "
                "into a search and a certify part; give --search-samples of at least 1"
            )
        return search, certify

    def batches(
        self,
        split: str,
        max_samples: int | None = None,
        shuffle_seed: int | None = None,
        indices: list[int] | None = None,
    ) -> Callable[[], Iterator[dict[str, torch.Tensor]]]:
        """A re-iterable source of padded batches (of the examples at ``indices`` only, when
        given); with ``shuffle_seed`` each pass reshuffles (pass k uses ``shuffle_seed + k``),
        without it the batches are cut from the examples sorted by length (`by_length`: less
        padding; a metric over the whole pass does not depend on the order)."""
        passes = iter(range(1 << 30))

        def iterate() -> Iterator[dict[str, torch.Tensor]]:
            dataset = self.dataset(split, max_samples)
            if indices is not None:
                dataset = Subset(dataset, indices)
            generator = None
            if shuffle_seed is not None:
                generator = torch.Generator().manual_seed(shuffle_seed + next(passes))
            else:
                order = by_length(dataset)
                dataset = Subset(dataset, order) if order is not None else dataset
            yield from DataLoader(
                dataset,
                batch_size=self.batch_size,
                collate_fn=self.collate,
                shuffle=generator is not None,
                generator=generator,
            )

        return iterate

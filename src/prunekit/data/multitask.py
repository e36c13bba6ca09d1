"""Micro-batches drawn from several tasks, one task per micro-batch (SMP's meta-training).

Each micro-batch comes from task i with probability ∝ ⌊|D_i|^α⌋ (α = 0.2 in thunlp/SMP's
``train_all.py``, which builds a pool repeating each task int(size^α) times and samples from
it); its examples are drawn at random from that task. Everything is drawn up front from one
seed, so the sequence is the same on every run and a resumed run continues it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["TaskMixture"]


class TaskMixture(Dataset):
    """``items`` micro-batches of ``batch_size`` examples; item k is ``(task, examples)``.

    Tasks are drawn with weight ⌊|D|^alpha⌋, |D| the size of the dataset given. SMP's
    recipe gives the train split after prunekit's 10% validation carve-out (what it samples
    from), OUR CHOICE where the spec counts the whole GLUE train split: CoLA weighs 5 (7,696
    examples) instead of 6 (8,551); RTE, MRPC and SST-2 are unchanged.

    Args:
        datasets: one dataset per task (encoded examples; labels are dropped by `collate`).
        tags: per task, a value added to each of its micro-batches as ``tag`` (e.g. SMP's
            score channel: pair or single-sentence).
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        tags: Sequence[int],
        batch_size: int,
        items: int,
        seed: int,
        collate_examples: Any,
        alpha: float = 0.2,
    ) -> None:
        self.datasets, self.tags, self.collate_examples = (
            list(datasets),
            list(tags),
            collate_examples,
        )
        pool = [i for i, d in enumerate(self.datasets) for _ in range(int(len(d) ** alpha))]
        if not pool:
            raise ValueError("no task has any example")
        generator = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(items):
            task = pool[int(torch.randint(len(pool), (1,), generator=generator))]
            size = len(self.datasets[task])
            chosen = torch.randperm(size, generator=generator)[: min(batch_size, size)]
            self.items.append((task, sorted(chosen.tolist())))
        self.weights = {i: pool.count(i) / len(pool) for i in range(len(self.datasets))}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, list[int]]:
        return self.items[index]

    def collate(self, items: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
        """One item per loader batch: its task's examples padded together, labels dropped."""
        ((task, indices),) = items
        examples = [
            {k: v for k, v in self.datasets[task][i].items() if k != "labels"} for i in indices
        ]
        batch = self.collate_examples(examples)
        batch["tag"] = torch.tensor(self.tags[task])
        return batch

"""Length-grouped batches for training: the order stays random, padding shrinks.

A batch is padded to its longest example, so random batches of GLUE text carry many padding
slots: 1.5x the real tokens on MRPC, 1.9x on RTE, 2.5x on STS-B and 2.9x on SST-2 (MiniLM's
tokenizer, batches of 32). `LengthGroupedSampler` shuffles, cuts the order into mega-batches
of ``group`` batches, sorts each mega-batch by length and shuffles its batches again: every
batch holds examples of similar length, while what lands in a batch, and when, still changes
every epoch (as transformers' ``group_by_length``, whose mega-batches are also 50 batches).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from prunekit.data import input_lengths
from prunekit.errors import ConfigError

__all__ = [
    "SHUFFLE_ORDER",
    "LengthGroupedSampler",
    "ShuffledSampler",
    "loader_order",
    "order_fields",
    "row_divisors",
    "step_groups",
]

# 2: `ShuffledSampler`. Before it, shuffled batches came from accelerate's seedable sampler,
# which draws epoch e of seed s as seed s + e: seed 1's first epoch was seed 0's second, and
# seeds 0-2 of a 3-epoch run shared most of their orders. Runs since carry this version in
# their keys, so a dense model cached with the old order is not taken for a new one.
SHUFFLE_ORDER = 2


def loader_order(
    dataset: Dataset, batch_size: int, group_by_length: bool, seed: int
) -> dict[str, Any]:
    """A training DataLoader's order (its keyword arguments): shuffled, or length-grouped.
    Either way the loader gets its own generator: without one, every pass over it draws a seed
    from the global RNG, and a run resumed mid-epoch (one more pass) would shift dropout."""
    generator = torch.Generator().manual_seed(seed)
    if not group_by_length:
        return {"sampler": ShuffledSampler(len(dataset), seed), "generator": generator}
    lengths = input_lengths(dataset)
    if lengths is None:
        raise ConfigError(
            "group_by_length needs training items with input_ids; turn it off for this data"
        )
    return {"sampler": LengthGroupedSampler(lengths, batch_size, seed), "generator": generator}


def order_fields(group_by_length: bool) -> dict[str, Any]:
    """What a key or a resume fingerprint adds for the order: the shuffle's version for
    shuffled batches (none for length-grouped ones, whose order never changed)."""
    return {} if group_by_length else {"shuffle_order": SHUFFLE_ORDER}


def _epoch_seed(seed: int, epoch: int) -> int:
    # far apart per seed: seed s's epoch e is no other seed's epoch within 100,003 epochs
    return seed * 100_003 + epoch


class ShuffledSampler(Sampler[int]):
    """A random permutation per epoch that depends only on ``seed`` and the epoch
    (`set_epoch`, which accelerate calls), so a run resumed mid-epoch replays its batches and
    no two seeds share an epoch's order."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        yield from torch.randperm(self.size, generator=generator).tolist()


class LengthGroupedSampler(Sampler[int]):
    """Indices whose consecutive runs of ``batch_size`` are batches of similar length.

    The order depends only on ``seed`` and the epoch (`set_epoch`, which accelerate calls), so
    a run resumed mid-epoch replays the same batches. Every mega-batch but the last holds only
    full batches, so the one short batch an epoch may have comes last and cuts no other.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, seed: int = 0, group: int = 50
    ) -> None:
        if batch_size < 1 or group < 1:
            raise ValueError(f"batch_size and group must be >= 1, got {batch_size} and {group}")
        self.lengths = list(lengths)
        self.batch_size, self.seed, self.group = batch_size, seed, group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        span = self.batch_size * self.group
        for start in range(0, len(order), span):
            mega = sorted(order[start : start + span], key=self.lengths.__getitem__)
            batches = [mega[i : i + self.batch_size] for i in range(0, len(mega), self.batch_size)]
            full = [b for b in batches if len(b) == self.batch_size]
            short = [b for b in batches if len(b) < self.batch_size]  # only in the last one
            shuffled = torch.randperm(len(full), generator=generator).tolist()
            for index in shuffled:
                yield from full[index]
            for batch in short:
                yield from batch


def step_groups(batches: Iterable[Any], accumulate: int, steps: int) -> Iterable[list[Any]]:
    """The micro-batches of each of the next ``steps`` optimizer steps, ``accumulate`` a step.

    The incomplete last group of an epoch makes no step (the schedule counted whole steps).
    """
    group: list[Any] = []
    if steps < 1:
        return
    for batch in batches:
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []
            steps -= 1
            if steps == 0:
                return


def row_divisors(group: list[Any]) -> list[float]:
    """What each micro-batch's loss is divided by in its step: the group's rows over its own.

    Losses are means over a micro-batch's rows, so dividing them this way makes an accumulated
    step the mean over all its examples, as one big batch would be: a short last batch (a
    dataset that does not divide into batches) would otherwise weigh as a full one. Equal
    batches divide by the group's size exactly, as before rows were counted. A batch whose
    rows cannot be told (no tensor in it) counts as a full share.
    """
    if len(group) == 1:
        return [1.0]
    rows = [_rows(batch) for batch in group]
    if any(r is None for r in rows):
        return [float(len(group))] * len(group)
    total = sum(rows)
    return [total / r for r in rows]


def _rows(batch: Any) -> int | None:
    values = batch.values() if isinstance(batch, dict) else [batch]
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    return None

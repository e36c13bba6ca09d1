"""Tokenisation of GLUE examples into a torch Dataset, and a dynamic-padding collate function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset
from transformers import DataCollatorWithPadding, PreTrainedTokenizerBase

from prunekit.data.glue import Example
from prunekit.errors import ConfigError, DataError

__all__ = ["EncodedDataset", "by_length", "encode_examples", "input_lengths", "make_collate"]

_BATCH = 1000


class EncodedDataset(Dataset):
    """Tokenised examples, unpadded, ready for :func:`make_collate`.

    Item ``i`` is a dict with ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the
    tokenizer produces them) as lists of ints, and ``labels`` as a 0-d tensor (long for
    classification, float32 for regression).

    Args:
        encodings: Column name to one list of token ids per example.
        labels: One label per example, long or float32.
    """

    def __init__(self, encodings: dict[str, list[list[int]]], labels: torch.Tensor) -> None:
        lengths = {name: len(col) for name, col in encodings.items()}
        if any(n != len(labels) for n in lengths.values()):
            raise ValueError(f"column lengths {lengths} differ from {len(labels)} labels")
        # Stored by column, as the tokenizer returns it, rather than as one dict per example:
        # no per-example dicts stay alive for the 400k-example tasks.
        self._encodings = encodings
        self._labels = labels

    @property
    def is_regression(self) -> bool:
        """Whether the labels are float scores."""
        return self._labels.dtype.is_floating_point

    @property
    def labels(self) -> torch.Tensor:
        """All labels as one 1-D tensor."""
        return self._labels

    @property
    def columns(self) -> tuple[str, ...]:
        """The token columns (``input_ids``, ``attention_mask``, ...)."""
        return tuple(self._encodings)

    def column(self, name: str) -> list[list[int]]:
        """One column: a list of token ids (or mask values) per example."""
        return self._encodings[name]

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {name: col[index] for name, col in self._encodings.items()}
        item["labels"] = self._labels[index]
        return item


def input_lengths(dataset: Dataset) -> list[int] | None:
    """Each item's number of input tokens, or None when its items carry no ``input_ids``."""
    lengths = []
    for index in range(len(dataset)):
        item = dataset[index]
        if not isinstance(item, dict) or "input_ids" not in item:
            return None
        lengths.append(len(item["input_ids"]))
    return lengths


def by_length(dataset: Dataset) -> list[int] | None:
    """The indices of ``dataset`` from its shortest input to its longest (ties keep their
    order), or None when its items carry no ``input_ids``.

    Batches cut from this order pad far less than batches in dataset order. With MiniLM's
    tokenizer, random batches of 32 of the GLUE train sets hold 1.5x (MRPC), 1.9x (RTE), 2.5x
    (STS-B) and 2.9x (SST-2) as many token slots as there are tokens. So every pass whose result
    does not depend on the batches (evaluation, importance sums) runs in this order; training
    can ask for batches of similar length too (``TrainConfig.group_by_length``)."""
    lengths = input_lengths(dataset)
    if lengths is None:
        return None
    return sorted(range(len(lengths)), key=lengths.__getitem__)


def encode_examples(
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int = 128,
    is_regression: bool = False,
) -> EncodedDataset:
    """Tokenise examples without padding; :func:`make_collate` pads each batch later.

    Args:
        examples: Examples from :func:`prunekit.data.load_examples`.
        tokenizer: A Hugging Face tokenizer.
        max_seq_length: Longest sequence kept, special tokens included; longer pairs are
            truncated longest-first. A tokenizer's smaller ``model_max_length`` wins.
        is_regression: Store labels as float32 (STS-B) instead of long.

    Returns:
        The encoded dataset.

    Raises:
        ConfigError: If ``max_seq_length`` is below 2 (no room for a token between specials).
        DataError: If the examples mix single sentences and pairs, or a classification label
            is not a whole number.
    """
    if not isinstance(max_seq_length, int) or max_seq_length < 2:
        raise ConfigError(
            f"max_seq_length must be an integer >= 2, got {max_seq_length!r}; pass a larger "
            f"--max-seq-length (128 is the GLUE default)."
        )
    # a tokenizer from `prunekit.load_tokenizer` knows its model's position table: an input
    # longer than it would fail inside the model's embedding
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < max_seq_length:
        max_seq_length = limit
    pairs = {ex.text_b is not None for ex in examples}
    if len(pairs) > 1:
        raise DataError(
            "The examples mix single sentences and sentence pairs; encode one task's examples "
            "at a time."
        )
    is_pair = pairs == {True}
    # each text keeps at least one token beside the specials ([CLS] a [SEP] b [SEP]: 5 for
    # BERT, 6 for RoBERTa's double separator): below that the tokenizer silently empties a text
    # ([CLS] [SEP] [SEP] at 3) and the model trains on nothing
    least = tokenizer.num_special_tokens_to_add(pair=is_pair) + (2 if is_pair else 1)
    if max_seq_length < least:
        raise ConfigError(
            f"max_seq_length {max_seq_length} leaves no room for the text: this tokenizer "
            f"needs at least {least} for {'a pair' if is_pair else 'one sentence'}; pass a "
            "larger --max-seq-length (128 is the GLUE default)."
        )

    encodings: dict[str, list[list[int]]] = {}
    for start in range(0, len(examples), _BATCH):
        chunk = examples[start : start + _BATCH]
        out = tokenizer(
            [ex.text_a for ex in chunk],
            [ex.text_b for ex in chunk] if is_pair else None,
            truncation=True,
            max_length=max_seq_length,
        )
        for name, col in out.items():
            encodings.setdefault(name, []).extend(col)

    raw = [ex.label for ex in examples]
    if is_regression:
        labels = torch.tensor(raw, dtype=torch.float32)
    else:
        if any(float(x) != int(x) for x in raw):
            raise DataError(
                "A classification label is not a whole number; pass is_regression=True for "
                "STS-B or load the examples with load_examples."
            )
        labels = torch.tensor([int(x) for x in raw], dtype=torch.long)
    return EncodedDataset(encodings, labels)


def make_collate(
    tokenizer: PreTrainedTokenizerBase,
) -> Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]:
    """Build a DataLoader ``collate_fn`` that pads each batch to its longest sequence.

    Args:
        tokenizer: The tokenizer used by :func:`encode_examples` (its pad token and side apply).

    Returns:
        A function mapping a list of dataset items to a dict of tensors: the padded model
        inputs plus ``labels`` (float32 for regression items, else long) when every item has
        one.
    """
    padder = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        inputs = [{k: v for k, v in f.items() if k != "labels"} for f in features]
        batch = dict(padder(inputs))
        if any("labels" not in f for f in features):
            return batch  # unlabelled inputs (SMP scoring, meta-training): no labels at all
        labels = [f["labels"] for f in features]
        if all(isinstance(x, torch.Tensor) for x in labels):
            batch["labels"] = torch.stack(labels)
        else:
            # Plain-number labels from hand-built items: any float means a regression batch.
            is_float = any(isinstance(x, float) for x in labels)
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if is_float else torch.long)
        return batch

    return collate

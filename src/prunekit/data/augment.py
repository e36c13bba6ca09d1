"""TinyBERT-style data augmentation with word-piece embedding neighbours (SparseBERT's
``--aug_train``, methods.md §4(c)), on already tokenised examples.

TinyBERT replaces each non-stopword of a sentence, with probability 0.4, by one of its 15 best
candidates (BERT-MLM predictions for single-piece words, GloVe neighbours otherwise) and makes N
copies of every example. Neither an MLM head (the default MiniLM ships without one) nor GloVe is
available here, so (OUR CHOICE) a word's candidates are its 15 nearest whole-word vocabulary
entries by cosine similarity of the model's own input embeddings, and only words that are a
single piece are replaced (multi-piece words stay as they are). A replacement is one whole-word
piece for another, so lengths, attention masks and token types are unchanged. Byte-level BPE
(RoBERTa) spells a sentence's first word without its space marker ("Hello", not "ĠHello"): such
a word borrows the neighbours of its marked twin and takes each back in its bare spelling, so
first words are replaced like any other. Labels are
copied: SparseBERT distils the teacher's logits, so they only matter for regression (STS-B).

Cost: N copies make an epoch N + 1 times longer (TinyBERT uses N = 30 for the small tasks,
which on a 2-core CPU turns a 4-minute MRPC epoch into about two hours), so it is off by
default.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from torch.utils.data import ConcatDataset, Dataset

from prunekit.data.encode import EncodedDataset
from prunekit.errors import ConfigError

__all__ = ["WordPieces", "embedding_neighbours", "augment_dataset"]

_WORD_START = ("Ġ", "▁")  # byte-level BPE (RoBERTa) and SentencePiece (XLM-R) markers


class WordPieces:
    """Which vocabulary entries start a word, and which are whole words a replacement may use
    (alphabetic, two letters or more, not a stopword, not special)."""

    def __init__(self, tokenizer: Any) -> None:
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        marked = sum(t.startswith(_WORD_START) for t in vocab if t) > len(vocab) // 4
        self.starts_word = torch.zeros(len(vocab), dtype=torch.bool)
        self.replaceable = torch.zeros(len(vocab), dtype=torch.bool)
        self.special = torch.zeros(len(vocab), dtype=torch.bool)
        # BPE only: a sentence-initial bare word's marked twin, and back (see the module doc).
        self.marked_twin: dict[int, int] = {}
        self.bare_twin: dict[int, int] = {}
        ids = {token: index for index, token in enumerate(vocab) if token}
        for index, token in enumerate(vocab):
            token = token or ""
            if index in special:
                self.starts_word[index] = True  # a special token ends the word before it
                self.special[index] = True
                continue
            if marked:  # BPE: pieces that begin a word carry the marker
                starts, word = token.startswith(_WORD_START), token.lstrip("".join(_WORD_START))
                # punctuation glued to the word before it ("great" "." in "great.") carries
                # no marker, yet ends that word: the word stays a single-piece candidate
                starts = starts or (bool(word) and not any(c.isalnum() for c in word))
            else:  # WordPiece: continuations carry "##"
                starts, word = not token.startswith("##"), token
            self.starts_word[index] = starts
            lowered = word.lower()
            self.replaceable[index] = (
                starts
                and word.isascii()
                and word.isalpha()
                and len(word) > 1
                and lowered not in ENGLISH_STOP_WORDS
            )
        if marked:
            for index, token in enumerate(vocab):
                if not token or self.special[index]:
                    continue
                twin = ids.get(_WORD_START[0] + token)
                if twin is not None and self.replaceable[twin]:
                    self.marked_twin[index], self.bare_twin[twin] = twin, index

    def resized(self, rows: int) -> WordPieces:
        """For an embedding matrix of ``rows`` rows: padding rows past the tokenizer's
        vocabulary (some models round it up) are never replaceable and end words."""
        count = len(self.starts_word)
        if rows < count:
            raise ConfigError(
                f"the tokenizer has {count} tokens but the model only {rows} embeddings; "
                "use the model's own tokenizer"
            )
        out = copy.copy(self)
        out.starts_word = torch.cat([self.starts_word, torch.ones(rows - count, dtype=torch.bool)])
        out.replaceable = torch.cat([self.replaceable, torch.zeros(rows - count, dtype=torch.bool)])
        out.special = torch.cat([self.special, torch.zeros(rows - count, dtype=torch.bool)])
        return out


def embedding_neighbours(
    embeddings: torch.Tensor,
    words: torch.Tensor,
    candidates: torch.Tensor,
    count: int = 15,
    chunk: int = 1024,
) -> dict[int, torch.Tensor]:
    """``{id: the count nearest candidate ids}`` for each id in ``words``, by cosine similarity
    of the ``[vocab, d]`` embedding rows (the id itself excluded)."""
    # computed where the embeddings are (a GPU model's: fast), returned on the CPU with the data
    device = embeddings.device
    pool = candidates.nonzero().flatten().to(device)
    if len(pool) <= count:
        raise ConfigError(f"only {len(pool)} replacement words in the vocabulary; need > {count}")
    normal = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)
    words = words.to(device)
    found: dict[int, torch.Tensor] = {}
    for start in range(0, len(words), chunk):
        rows = words[start : start + chunk]
        similarity = normal[rows] @ normal[pool].T
        similarity[pool[None, :] == rows[:, None]] = -2.0  # never a word's own id
        nearest = pool[similarity.topk(count, dim=-1).indices].cpu()
        found.update({int(w): n for w, n in zip(rows, nearest, strict=True)})
    return found


def augment_dataset(
    dataset: Dataset,
    pieces: WordPieces,
    embeddings: torch.Tensor,
    copies: int,
    probability: float = 0.4,
    candidates: int = 15,
    seed: int = 0,
) -> Dataset:
    """The examples followed by ``copies`` augmented copies of each (same seed, same copies).

    In each copy every replaceable single-piece word is replaced, with ``probability``, by one
    of its ``candidates`` nearest embedding neighbours drawn uniformly. An `EncodedDataset`
    stays one (stored by column); other datasets of dict items get the copies appended.
    """
    if copies < 0 or not 0 <= probability <= 1:
        raise ConfigError(
            f"augmentation needs copies >= 0 and 0 <= probability <= 1, got {copies}, {probability}"
        )
    if copies == 0:
        return dataset
    pieces = pieces.resized(embeddings.shape[0])
    items = [dataset[i] for i in range(len(dataset))]
    ids = [_as_list(item["input_ids"]) for item in items]
    seen = {t for row in ids for t in row}
    seen |= {pieces.marked_twin[t] for t in seen if t in pieces.marked_twin}
    used = torch.tensor(sorted(seen), dtype=torch.long)
    used = used[pieces.replaceable[used]]
    neighbours = embedding_neighbours(embeddings, used, pieces.replaceable, candidates)
    generator = torch.Generator().manual_seed(seed)
    new_ids = [
        _replace(row, pieces, neighbours, probability, generator)
        for _ in range(copies)
        for row in ids
    ]
    if isinstance(dataset, EncodedDataset):
        columns = {name: dataset.column(name) for name in dataset.columns}
        merged = {name: list(column) * (copies + 1) for name, column in columns.items()}
        merged["input_ids"] = list(columns["input_ids"]) + new_ids
        return EncodedDataset(merged, dataset.labels.repeat(copies + 1))
    extra = []
    for index, row in enumerate(new_ids):
        item = dict(items[index % len(items)])
        original = item["input_ids"]
        item["input_ids"] = (
            torch.tensor(row, dtype=original.dtype) if torch.is_tensor(original) else row
        )
        extra.append(item)
    return ConcatDataset([dataset, extra])


def _as_list(ids: Any) -> list[int]:
    return ids.tolist() if torch.is_tensor(ids) else list(ids)


def _replace(
    row: list[int],
    pieces: WordPieces,
    neighbours: dict[int, torch.Tensor],
    probability: float,
    generator: torch.Generator,
) -> list[int]:
    draws = torch.rand(len(row), generator=generator).tolist()
    picks = torch.randint(0, 1 << 30, (len(row),), generator=generator).tolist()
    out = list(row)
    for i, token in enumerate(row):
        single = i + 1 == len(row) or bool(pieces.starts_word[row[i + 1]])
        bare_first = token in pieces.marked_twin and (i == 0 or bool(pieces.special[row[i - 1]]))
        options = neighbours.get(pieces.marked_twin[token] if bare_first else token)
        if options is not None and single and draws[i] < probability:
            new = int(options[picks[i] % len(options)])
            if not bare_first:
                out[i] = new
            elif new in pieces.bare_twin:  # a neighbour with no bare spelling is skipped
                out[i] = pieces.bare_twin[new]
    return out

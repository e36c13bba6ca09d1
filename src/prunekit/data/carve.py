"""The validation split every task carves out of its train file (GLUE's test labels are hidden,
so dev is kept for reporting and model choices are made on this carve).

Most tasks carve rows: 10% of train (2,000 rows for the large tasks), drawn with the split seed.

SST-2 carves *sentences*. Its train file holds every phrase of each training sentence's parse
tree (67,349 rows from 6,885 sentences; a sentence is a row no other row contains), so a carve of
rows left 89% of the validation phrases inside a train row (measured on GLUE's file), and
validated on 9-word phrases while dev holds 19-word sentences. Here validation is 10% of the
sentences, and train drops the phrases that only those sentences contain: a phrase that also
occurs in a train sentence ("the film") stays, as it does across SST's own train/dev split.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from prunekit.errors import DataError

if TYPE_CHECKING:
    from prunekit.data.glue import Example, TaskSpec

__all__ = ["validation_carve"]

# Validation rows of a large task (QQP, MNLI, QNLI and SST-2's sentences): 10% would be more
# than a selection needs and would take tens of thousands of rows out of train.
LARGE_VALIDATION_SIZE = 2000


def validation_carve(
    spec: TaskSpec, rows: Sequence[Example], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(validation, train)``: boolean masks over ``rows``. Disjoint; their union is every
    row for a task carved by rows, and for SST-2 every row but the phrases only validation
    sentences contain."""
    if spec.carve_by_sentence:
        return _sentence_carve(spec, tuple(rows), seed)
    validation = _row_mask(spec, len(rows), seed)
    return validation, ~validation


def _carve_size(spec: TaskSpec, n: int, unit: str) -> int:
    if n < 2:
        raise DataError(
            f"The {spec.name} train data has {n} {unit}(s), too few to carve a validation "
            f"split; point --data-dir or GLUE_DIR at the complete glue_data folder."
        )
    # n / 10, not n * 0.1: the float product overshoots (2490 * 0.1 = 249.00000000000003).
    size = max(1, round(n / 10))
    if spec.is_large:
        # Identical to 2000 for QQP, MNLI and QNLI (>= 100k rows); the cap only matters for
        # subsampled or synthetic files, where 2000 would swallow the whole train set.
        size = min(LARGE_VALIDATION_SIZE, size)
    return size


def _row_mask(spec: TaskSpec, n: int, seed: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[: _carve_size(spec, n, "example")]] = True
    return mask


@lru_cache(maxsize=4)  # ~5 s for SST-2; every split of a command reads it
def _sentence_carve(
    spec: TaskSpec, rows: tuple[Example, ...], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    texts = [_words(row.text_a) for row in rows]
    unique = set(texts)
    sentences = _sentences(unique)
    size = _carve_size(spec, len(sentences), "sentence")
    order = np.random.default_rng(seed).permutation(len(sentences))
    chosen = {sentences[i] for i in order[:size].tolist()}
    kept = _Containers([s for s in sentences if s not in chosen])
    in_train = {text: kept.contain(text) for text in unique}
    validation = np.array([text in chosen for text in texts], dtype=bool)
    train = np.array([in_train[text] for text in texts], dtype=bool)
    return validation, train


def _words(text: str) -> str:
    """The text with one space around every word, so that ``in`` matches whole words."""
    return f" {' '.join(text.split())} "


def _sentences(phrases: set[str]) -> list[str]:
    """The phrases no other phrase contains, longest first (ties by text: deterministic).
    Containment is transitive, so a phrase is a sentence exactly when no sentence found
    before it (all longer) contains it."""
    found = _Containers([])
    for phrase in sorted(phrases, key=lambda p: (-len(p), p)):
        if not found.contain(phrase):
            found.add(phrase)
    return found.texts


class _Containers:
    """Texts indexed by word: whether one of them contains a phrase is checked against the
    texts holding the phrase's rarest word only."""

    def __init__(self, texts: list[str]) -> None:
        self.texts: list[str] = []
        self._by_word: dict[str, list[int]] = collections.defaultdict(list)
        for text in texts:
            self.add(text)

    def add(self, text: str) -> None:
        for word in set(text.split()):
            self._by_word[word].append(len(self.texts))
        self.texts.append(text)

    def contain(self, phrase: str) -> bool:
        words = set(phrase.split())
        if not words:
            return bool(self.texts)  # an empty phrase is inside any text
        rarest = min(words, key=lambda w: len(self._by_word.get(w, ())))
        return any(phrase in self.texts[i] for i in self._by_word.get(rarest, ()))

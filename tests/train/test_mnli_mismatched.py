"""MNLI reports its mismatched dev split beside the matched one (GLUE's two MNLI numbers)."""

from __future__ import annotations

import json

import pytest
from conftest import write_synthetic_mnli

from prunekit.data import TaskData
from prunekit.errors import DataError
from prunekit.recipes.finetune import FinetuneConfig, run_finetune
from prunekit.train import TrainConfig


def test_fine_tuning_mnli_reports_matched_and_mismatched_dev(
    tiny_bert_with_real_tokenizer, tmp_path
):
    data = write_synthetic_mnli(tmp_path / "glue")
    out = tmp_path / "mnli"
    run_finetune(
        FinetuneConfig(
            model=str(tiny_bert_with_real_tokenizer),
            task="mnli",
            out=out,
            data_dir=data,
            train=TrainConfig(max_steps=1, batch_size=4),
        ),
        progress=False,
    )
    record = json.loads((out / "metrics.json").read_text())
    assert record["dev"]["examples"] == 2 and record["dev_mismatched"]["examples"] == 1
    assert record["dev_mismatched"]["split"] == "dev_mismatched"


def test_a_missing_mismatched_file_is_named_before_training(tmp_path):
    data = write_synthetic_mnli(tmp_path / "glue")
    (data / "MNLI" / "dev_mismatched.tsv").unlink()
    with pytest.raises(DataError, match="dev_mismatched"):
        TaskData.for_task("mnli", None, data, seed=0, every_dev_split=True)
    TaskData.for_task("mnli", None, data, seed=0)  # prune and eval never read it


def test_compare_rows_of_mnli_carry_the_mismatched_metric(tiny_bert_with_real_tokenizer, tmp_path):
    from prunekit.recipes.compare import CompareConfig, run_compare
    from prunekit.train.task_recipes import TaskRecipe

    config = CompareConfig(
        task="mnli",
        out=tmp_path / "sweep",
        model=str(tiny_bert_with_real_tokenizer),
        methods=("random",),
        fractions=(0.5,),
        budgets=(),
        seeds=(0,),
        regimes=("r0",),
        data_dir=write_synthetic_mnli(tmp_path / "glue", train_rows=60),
        recipe=TaskRecipe(learning_rate=5e-5, epochs=1, max_steps=1, batch_size=8),
        dense_cache=tmp_path / "dense",
        time_speed=False,
        progress=False,
    )
    (row,) = run_compare(config)
    assert 0 <= row["dev_mismatched"] <= 100 and 0 <= row["dense_dev_mismatched"] <= 100

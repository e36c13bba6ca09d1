"""A model whose position table is shorter than the 128 tokens GLUE inputs are cut to:
fine-tuning and evaluating it cut inputs to its table instead of failing inside transformers."""

from __future__ import annotations

import json

import pytest
import transformers
from conftest import glue_dir, save_tiny_bert_with_real_tokenizer

from prunekit.models.checkpoint import load_tokenizer
from prunekit.models.positions import max_sequence_length
from prunekit.recipes.evaluate import run_evaluate
from prunekit.recipes.finetune import FinetuneConfig, run_finetune
from prunekit.train import TrainConfig

POSITIONS = 24  # RTE's pairs run far longer


@pytest.fixture(scope="module")
def short_bert(tmp_path_factory):
    return save_tiny_bert_with_real_tokenizer(
        tmp_path_factory.mktemp("short") / "bert", positions=POSITIONS
    )


def test_the_longest_input_follows_the_family_position_offset():
    bert = transformers.BertConfig(max_position_embeddings=66)
    roberta = transformers.RobertaConfig(max_position_embeddings=66, pad_token_id=1)
    assert (max_sequence_length(bert), max_sequence_length(roberta)) == (66, 64)


def test_a_short_position_table_cuts_inputs_to_it_through_finetune_and_eval(short_bert, tmp_path):
    out = tmp_path / "rte"
    run_finetune(
        FinetuneConfig(
            model=str(short_bert),
            task="rte",
            out=out,
            data_dir=glue_dir(),
            max_train_samples=8,
            train=TrainConfig(max_steps=1, batch_size=4),
        ),
        progress=False,
    )
    record = json.loads((out / "metrics.json").read_text())
    assert record["dev"]["examples"] == 277
    assert load_tokenizer(out).model_max_length == POSITIONS
    again = run_evaluate(str(out), "rte", data_dir=glue_dir(), max_samples=16)
    assert again.examples == 16

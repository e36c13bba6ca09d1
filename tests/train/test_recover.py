"""Recovery checkpoints: a killed recovery resumes to the same weights; another pruned model
never resumes it."""

from __future__ import annotations

import pytest
import torch
from conftest import glue_dir

from prunekit import PruningPlan, apply_plan
from prunekit.data import TaskData, get_task
from prunekit.models.sources import load_for_task
from prunekit.train import TrainConfig
from prunekit.train.recover import recover

pytestmark = pytest.mark.integration


class Killed(Exception):
    pass


def pruned_and_data(model_dir, heads=((0, 1), (2,))):
    torch.manual_seed(0)
    model, tokenizer = load_for_task(str(model_dir), get_task("rte"))
    plan = PruningPlan.dense(2, 4, 37).without_heads(
        [(layer, h) for layer, hs in enumerate(heads) for h in hs]
    )
    data = TaskData.for_task("rte", tokenizer, glue_dir(), seed=0, max_seq_length=32)
    return apply_plan(model, plan), data


def test_a_killed_recovery_resumes_to_the_same_weights(tiny_bert_with_real_tokenizer, tmp_path):
    # no checkpoint_every: a recovery given a checkpoint folder checkpoints within its epoch
    config = TrainConfig(learning_rate=1e-3, max_steps=6, batch_size=8)
    reference, data = pruned_and_data(tiny_bert_with_real_tokenizer)
    recover(reference, data, config, 48, checkpoint_dir=tmp_path / "ref")

    def kill_at_5(step, total, values):
        if step == 5:
            raise Killed

    model, data = pruned_and_data(tiny_bert_with_real_tokenizer)
    with pytest.raises(Killed):
        recover(model, data, config, 48, on_step=kill_at_5, checkpoint_dir=tmp_path / "run")
    model, data = pruned_and_data(tiny_bert_with_real_tokenizer)
    resumed = recover(model, data, config, 48, checkpoint_dir=tmp_path / "run")
    assert resumed.resumed_from_step == 4 and resumed.steps == 6  # a checkpoint every step
    expected = reference.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name

    # another pruned model (other heads) starts over instead of resuming these weights
    other, data = pruned_and_data(tiny_bert_with_real_tokenizer, heads=((0,), (1, 2)))
    assert recover(other, data, config, 48, checkpoint_dir=tmp_path / "run").resumed_from_step == 0


@pytest.mark.parametrize("accumulation", [1, 2, 4])
def test_the_budget_compare_gives_is_the_steps_recovery_takes(
    tiny_bert_with_real_tokenizer, accumulation
):
    from prunekit.train import recovery_steps

    config = TrainConfig(
        learning_rate=1e-3, epochs=1, batch_size=8, accumulation_steps=accumulation
    )
    model, data = pruned_and_data(tiny_bert_with_real_tokenizer)
    taken = recover(model, data, config, 44).steps  # 6 batches, the last one short
    assert taken == 6 // accumulation
    assert recovery_steps(data, config, 44) == taken


def test_a_budget_too_small_for_one_accumulated_step_is_refused(tiny_bert_with_real_tokenizer):
    from prunekit.errors import ConfigError
    from prunekit.train import recovery_steps

    config = TrainConfig(epochs=1, batch_size=8, accumulation_steps=4)
    _, data = pruned_and_data(tiny_bert_with_real_tokenizer)
    with pytest.raises(ConfigError, match="too few for one step of 4 accumulated batches"):
        recovery_steps(data, config, 20)  # 3 batches

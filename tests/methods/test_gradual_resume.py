"""Every gradual sparsifier (magnitude, movement, SparseBERT) killed mid-run and resumed ends at
the weights and masks of the run that was never interrupted."""

from __future__ import annotations

import shutil

import pytest
import torch
from conftest import glue_dir, tiny_model, train_request, word_tokenizer

from prunekit.data import TaskData
from prunekit.methods import HeadTarget, get_method
from prunekit.methods.decide import _run_id


def request(method: str, **options):
    model = tiny_model("bert", attn="eager")
    teacher = tiny_model("bert", attn="eager", seed=1)
    defaults = {"epochs": 4, "batch_size": 2, "events": 4, "sparsity": 0.8}
    return train_request(model, teacher, defaults | options)


@pytest.mark.parametrize("method", ["magnitude", "movement", "sparse-kd"])
def test_a_killed_run_resumes_to_the_same_masks_and_weights(method, tmp_path):
    reference = get_method(method)(request(method))

    class Killed(Exception):
        pass

    def kill(info):
        if info["step"] == 11:
            raise Killed

    interrupted = request(method, checkpoint_every=5)
    interrupted.state_dir, interrupted.on_progress = tmp_path, kill
    with pytest.raises(Killed):
        get_method(method)(interrupted)
    again = request(method, checkpoint_every=5)
    steps = []
    again.state_dir, again.on_progress = tmp_path, lambda info: steps.append(info.get("step"))
    resumed = get_method(method)(again)
    # resumed from the checkpoint at step 10, not restarted (a restart ends the same way)
    assert [s for s in steps if s is not None][0] == 11
    expected, actual = reference.model.state_dict(), resumed.model.state_dict()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert reference.plan.masks and reference.plan.masks.keys() == resumed.plan.masks.keys()
    for key, mask in reference.plan.masks.items():
        assert torch.equal(mask, resumed.plan.masks[key]), key


def test_a_checkpoint_is_keyed_by_the_weights_teacher_and_data_it_started_from(tmp_path):
    """A rerun after a kill with another --model, --teacher or --data-dir must not resume the
    first run's weights: its checkpoint folder differs."""
    model, other, teacher = tiny_model("bert"), tiny_model("bert"), tiny_model("bert")
    with torch.no_grad():
        other.classifier.weight.add_(1.0)
        teacher.classifier.weight.add_(2.0)
    info = get_method("l0")
    config, target = info.parse_config(None), HeadTarget(keep=6)
    data = TaskData.for_task("rte", word_tokenizer(), glue_dir(), 0)
    copied = tmp_path / "glue"
    shutil.copytree(glue_dir() / "RTE", copied / "RTE")
    train = copied / "RTE" / "train.tsv"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join([lines[0], lines[1].replace("\t", "\tNot ", 1), *lines[2:]]))
    edited = TaskData.for_task("rte", word_tokenizer(), copied, 0)

    def run_id(model=model, teacher=None, data=data, seed=0):
        return _run_id("l0", config, target, seed, model, teacher, data, (None, None, None))

    assert run_id() == run_id()
    assert run_id(model=model, teacher=model) == run_id()  # the model as its own teacher
    others = [run_id(model=other), run_id(teacher=teacher), run_id(data=edited), run_id(seed=1)]
    assert len({run_id(), *others}) == 5

"""Every gradual sparsifier (magnitude, movement, SparseBERT) killed mid-run and resumed ends at
the weights and masks of the run that was never interrupted."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model, train_request

from prunekit.methods import get_method


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
    again.state_dir = tmp_path
    resumed = get_method(method)(again)
    expected, actual = reference.model.state_dict(), resumed.model.state_dict()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert reference.plan.masks and reference.plan.masks.keys() == resumed.plan.masks.keys()
    for key, mask in reference.plan.masks.items():
        assert torch.equal(mask, resumed.plan.masks[key]), key

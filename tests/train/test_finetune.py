"""Fine-tuning learns, resumes to the same result, and runs on 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from torch.utils.data import default_collate

from prunekit.train import TrainConfig, finetune

HERE = Path(__file__).parent


def toy_dataset(n: int = 48, seq: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Label = whether token 7 occurs: learnable by a tiny model in a few dozen steps."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        ids = torch.randint(10, 120, (seq,), generator=generator)
        if i % 2:
            ids[i % seq] = 7
        rows.append(
            {
                "input_ids": ids,
                "attention_mask": torch.ones(seq, dtype=torch.long),
                "labels": torch.tensor(i % 2),
            }
        )
    return rows


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_training_lowers_the_loss():
    model = tiny_model("bert")
    data = toy_dataset()
    losses = []
    config = TrainConfig(learning_rate=1e-3, epochs=6, batch_size=8, warmup_ratio=0.0)
    finetune(
        model,
        data,
        default_collate,
        config,
        on_step=lambda s, t, values: losses.append(values["loss"]),
    )
    assert len(losses) == 36
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    assert not model.training


def test_resume_after_a_kill_reaches_the_same_weights(tmp_path):
    config = TrainConfig(learning_rate=1e-3, epochs=3, batch_size=8, checkpoint_every=4)
    reference = tiny_model("bert")
    finetune(reference, toy_dataset(), default_collate, config)

    class Killed(Exception):
        pass

    def kill_at_step_10(step, total, values):
        if step == 10:
            raise Killed

    interrupted = tiny_model("bert")
    with pytest.raises(Killed):
        finetune(
            interrupted,
            toy_dataset(),
            default_collate,
            config,
            checkpoint_dir=tmp_path,
            on_step=kill_at_step_10,
        )
    assert (tmp_path / "last" / "trainer_state.json").is_file()

    resumed = tiny_model("bert")  # a fresh process would start from the initial weights too
    result = finetune(
        resumed, toy_dataset(), default_collate, config, checkpoint_dir=tmp_path, resume=True
    )
    assert result.resumed_from_step == 8
    assert result.steps == 18
    expected, actual = weights(reference), weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert not (tmp_path / "last").exists()


def test_two_process_gloo_finetune_gives_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        str(HERE / "ddp_worker.py"),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    import safetensors.torch

    rank0 = safetensors.torch.load_file(tmp_path / "rank0.safetensors")
    rank1 = safetensors.torch.load_file(tmp_path / "rank1.safetensors")
    initial = safetensors.torch.load_file(tmp_path / "initial.safetensors")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert any(not torch.equal(rank0[k], initial[k]) for k in rank0)

"""Training-time work on CUDA: the one loop, L0's gates and their resume, and exact saves.

Every test here is ``@pytest.mark.gpu``; tests/conftest.py skips them without CUDA.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_batch, tiny_model, unbatch
from torch.utils.data import default_collate

from prunekit import current_plan, load, save
from prunekit.methods import PruneRequest, get_method, head_target
from prunekit.train import TrainConfig, finetune

pytestmark = pytest.mark.gpu

BATCH = {**tiny_batch(batch=4, seq=9), "labels": torch.tensor([0, 1, 1, 0])}


def l0_request(model, **options) -> PruneRequest:
    plan = current_plan(model)
    return PruneRequest(
        model=model,
        plan=plan,
        target=head_target(plan, keep_heads=4),
        seed=0,
        train_set=unbatch(BATCH),
        collate=default_collate,
        options=options,
    )


def test_finetune_trains_on_cuda():
    model = tiny_model("bert").cuda()
    losses = []
    config = TrainConfig(learning_rate=1e-3, max_steps=8, batch_size=4, device="cuda")
    finetune(
        model,
        unbatch(BATCH),
        default_collate,
        config,
        on_step=lambda s, t, v: losses.append(v["loss"]),
    )
    assert next(model.parameters()).is_cuda
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_l0_gates_train_on_cuda_and_hit_the_budget():
    model = tiny_model("bert").cuda()
    result = get_method("l0")(l0_request(model, steps=300, gate_lr=0.1, lagrangian_lr=0.2))
    assert result.plan.heads_kept == 4
    assert abs(result.plan.meta["expected_open_heads"] - 4) < 1.5


def test_l0_resumes_on_cuda(tmp_path):
    options = {"steps": 12, "checkpoint_every": 3}
    reference = get_method("l0")(l0_request(tiny_model("bert").cuda(), **options)).plan

    class Killed(Exception):
        pass

    def kill(info):
        if info["step"] == 7:
            raise Killed

    request = l0_request(tiny_model("bert").cuda(), **options)
    request.state_dir, request.on_progress = tmp_path, kill
    with pytest.raises(Killed):
        get_method("l0")(request)
    assert (tmp_path / "last").is_dir()  # checkpointed at step 6
    request = l0_request(tiny_model("bert").cuda(), **options)
    steps = []
    request.state_dir, request.on_progress = tmp_path, lambda info: steps.append(info.get("step"))
    resumed = get_method("l0")(request)
    assert [s for s in steps if s is not None][0] == 7  # resumed at step 6, not restarted
    assert resumed.record["train_steps"] == 12
    assert resumed.plan.kept_heads == reference.kept_heads


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_cuda_models_reload_bit_identical(tmp_path, dtype):
    model = tiny_model("bert").to("cuda", dtype)
    save(model, tmp_path / "m")
    again = load(tmp_path / "m").to("cuda")
    for (name, a), (_, b) in zip(
        model.state_dict().items(), again.state_dict().items(), strict=True
    ):
        assert a.dtype == b.dtype == dtype and torch.equal(a, b), name
    batch = {k: v.cuda() for k, v in tiny_batch().items()}
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch).logits)


def test_one_process_trains_on_cpu_then_cuda_then_cpu():
    """accelerate keeps one device per process; the loop switches it when a run asks."""
    for device in ("cpu", "cuda", "cpu"):
        model = tiny_model("bert").to(device)
        before = [p.detach().clone() for p in model.parameters()]
        config = TrainConfig(learning_rate=1e-3, max_steps=2, batch_size=4, device=device)
        finetune(model, unbatch(BATCH), default_collate, config)
        assert next(model.parameters()).device.type == device
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

"""Fine-tuning learns, resumes to the same result, and runs on 2 CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from torch.utils.data import default_collate

from prunekit import apply_plan, current_plan
from prunekit.train import GeneratorState, ParamGroup, TrainConfig, TrainExtras, finetune

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


def test_bf16_training_lowers_the_loss_and_switches_precision_within_a_process():
    config = TrainConfig(learning_rate=1e-3, epochs=4, batch_size=8, warmup_ratio=0.0)
    fp32_before = tiny_model("bert")
    finetune(fp32_before, toy_dataset(), default_collate, config)
    losses = []
    bf16 = tiny_model("bert")
    finetune(  # after an fp32 run in this process: accelerate's state must switch
        bf16,
        toy_dataset(),
        default_collate,
        config.model_copy(update={"precision": "bf16"}),
        on_step=lambda s, t, values: losses.append(values["loss"]),
    )
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # master weights stay fp32
    fp32_after = tiny_model("bert")
    finetune(fp32_after, toy_dataset(), default_collate, config)  # and back, bit-identical
    for name, value in weights(fp32_before).items():
        assert torch.equal(value, weights(fp32_after)[name]), name
        assert not torch.equal(value, weights(bf16)[name]) or "position_ids" in name


def test_a_bf16_trained_model_runs_in_fp32_as_it_will_after_a_reload():
    config = TrainConfig(learning_rate=1e-3, epochs=1, batch_size=8, precision="bf16")
    trained = tiny_model("bert")
    finetune(trained, toy_dataset(), default_collate, config)
    reloaded = tiny_model("bert")
    reloaded.load_state_dict(trained.state_dict())
    reloaded.eval()
    batch = {k: v for k, v in default_collate(toy_dataset(8)).items() if k != "labels"}
    with torch.no_grad():
        # accelerate's bf16 autocast patch on forward would give other logits here
        assert torch.equal(trained(**batch).logits, reloaded(**batch).logits)
    assert "forward" not in vars(trained)  # the class's forward, as before training


def test_resume_after_a_kill_reaches_the_same_weights(tmp_path):
    config = TrainConfig(learning_rate=1e-3, epochs=3, batch_size=8, checkpoint_every=4)
    reference = tiny_model("bert")
    finetune(reference, toy_dataset(), default_collate, config)

    class Killed(Exception):
        pass

    def kill_at_step_10(step, total, values):
        time.sleep(0.5)  # a slow first process: its time must count in the resumed result
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
    before = json.loads((tmp_path / "last" / "trainer_state.json").read_text())["seconds"]
    assert before >= 8 * 0.5  # the eight steps the checkpoint keeps

    resumed = tiny_model("bert")  # a fresh process would start from the initial weights too
    result = finetune(
        resumed, toy_dataset(), default_collate, config, checkpoint_dir=tmp_path, resume=True
    )
    assert result.resumed_from_step == 8
    assert result.steps == 18
    assert result.seconds > before  # the whole run's time, not only the resumed process's
    expected, actual = weights(reference), weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert not (tmp_path / "last").exists()


def test_two_process_gloo_finetune_gives_identical_weights_and_extra_parameters(tmp_path):
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
    assert any(not torch.equal(rank0[k], initial[k]) for k in initial)
    # the scale outside the model (a method's parameter group) trained, in step on both ranks
    assert not torch.equal(rank0["extra.scale"], torch.ones(1))
    # one output folder, the main process's, and no rank's temporary folder left beside it
    assert (tmp_path / "saved" / "rank.txt").read_text() == "0"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".saved")]
    assert (tmp_path / "locked0.txt").is_file() and (tmp_path / "locked1.txt").is_file()
    last = tmp_path / "checkpoints" / "last"
    assert {p.name for p in last.glob("random_states_*")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }


class Killed(Exception):
    pass


def masked_training(model, checkpoint_dir=None, resume=False, kill_at=None):
    """A tiny method on the loop: a two-part loss (task + L1 on a trained scale), an extra
    parameter group, a mask re-applied after every step, and a generator in the state."""
    mask = (torch.arange(32 * 32).reshape(32, 32) % 3 != 0).float()
    target = model.bert.encoder.layer[0].attention.self.query
    scale = torch.nn.Parameter(torch.ones(1))
    holder = torch.nn.Module()
    holder.scale = scale
    generator = torch.Generator().manual_seed(5)

    def loss_fn(model, batch, step):
        noise = torch.rand(1, generator=generator)  # consumes method RNG: must resume exactly
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits * scale
        task = torch.nn.functional.cross_entropy(logits, batch["labels"])
        return {"task": task, "l1": 0.01 * (scale - noise).abs().sum()}

    def reapply_mask(step):
        with torch.no_grad():
            target.weight.mul_(mask)

    seen = []

    def on_step(step, total, values):
        seen.append(values)
        if step == kill_at:
            raise Killed

    config = TrainConfig(
        learning_rate=1e-3, epochs=3, batch_size=8, checkpoint_every=4, log_every=3
    )
    extras = TrainExtras(
        param_groups=[ParamGroup(holder.parameters(), lr=0.01)],
        after_step=[reapply_mask],
        state={"holder": holder, "rng": GeneratorState(generator)},
    )
    result = finetune(
        model,
        toy_dataset(),
        default_collate,
        config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        loss_fn=loss_fn,
        on_step=on_step,
        extras=extras,
    )
    return result, scale, mask, target, seen


def test_a_method_killed_mid_epoch_resumes_bit_identical(tmp_path):
    reference = tiny_model("bert")
    full, ref_scale, mask, ref_target, seen = masked_training(reference, tmp_path / "ref")
    assert {"loss", "task", "l1"} <= set(seen[0])  # named parts reach the progress line
    assert torch.equal(ref_target.weight * mask, ref_target.weight)  # the mask held
    lines = [json.loads(x) for x in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [3, 6, 9, 12, 15, 18]
    assert {"task", "l1", "loss", "lr"} <= set(lines[0])
    assert lines == full.log

    with pytest.raises(Killed):  # step 10 is mid-epoch (6 steps each), after a checkpoint at 8
        masked_training(tiny_model("bert"), tmp_path / "run", kill_at=10)
    resumed = tiny_model("bert")
    result, scale, _, target, _ = masked_training(resumed, tmp_path / "run", resume=True)
    assert result.resumed_from_step == 8 and result.steps == 18
    assert torch.equal(scale, ref_scale)
    expected, actual = weights(reference), weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    assert result.log == full.log  # the loss curve too: same lines, same values
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == (
        tmp_path / "ref" / "metrics.jsonl"
    ).read_text()


def test_ascent_groups_maximise_the_loss():
    model = tiny_model("bert")
    for p in model.parameters():
        p.requires_grad_(False)
    multiplier = torch.nn.Parameter(torch.zeros(1))

    def loss_fn(model, batch, step):
        return {"task": model(**batch).loss, "penalty": multiplier.sum() * 1.0}

    extras = TrainExtras(param_groups=[ParamGroup([multiplier], lr=0.1, ascent=True)])
    config = TrainConfig(max_steps=5, batch_size=8)
    finetune(model, toy_dataset(), default_collate, config, loss_fn=loss_fn, extras=extras)
    assert multiplier.item() > 0.3  # d(loss)/d(multiplier) = 1 > 0: ascent raised it


def test_weights_a_plan_masks_stay_zero_through_training():
    model = tiny_model("bert")
    weight = model.bert.encoder.layer[1].output.dense.weight  # ffn_out of layer 1: [32, 37]
    mask = torch.rand(weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    apply_plan(model, current_plan(model).with_masks({"1.ffn_out": mask}))
    config = TrainConfig(learning_rate=1e-2, max_steps=4, batch_size=8)
    finetune(model, toy_dataset(), default_collate, config)
    weight = model.bert.encoder.layer[1].output.dense.weight
    assert bool((weight[~mask] == 0).all())
    assert bool((weight[mask] != 0).all())


def test_a_checkpoint_of_other_settings_is_not_resumed_and_logs_start_clean(tmp_path):
    config = TrainConfig(learning_rate=1e-3, epochs=3, batch_size=8, checkpoint_every=4)

    def kill_at_10(step, total, values):
        if step == 10:
            raise Killed

    with pytest.raises(Killed):
        finetune(
            tiny_model("bert"),
            toy_dataset(),
            default_collate,
            config,
            checkpoint_dir=tmp_path,
            on_step=kill_at_10,
        )
    other = config.model_copy(update={"learning_rate": 5e-4})
    result = finetune(
        tiny_model("bert"),
        toy_dataset(),
        default_collate,
        other,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    assert result.resumed_from_step == 0 and result.steps == 18
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [10, 18]  # the killed run's lines are gone


def without_dropout(model):
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def test_accumulating_two_half_batches_matches_one_full_batch():
    common = dict(learning_rate=1e-3, epochs=2, warmup_ratio=0.0)
    whole = without_dropout(tiny_model("bert"))
    finetune(whole, toy_dataset(), default_collate, TrainConfig(batch_size=8, **common))
    halves = without_dropout(tiny_model("bert"))
    result = finetune(
        halves,
        toy_dataset(),
        default_collate,
        TrainConfig(batch_size=4, accumulation_steps=2, **common),
    )
    assert result.steps == 12  # 48 examples / 8 per step, 2 epochs
    expected, actual = weights(whole), weights(halves)
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-6), name


def test_a_short_batch_weighs_by_its_rows_in_an_accumulated_step():
    # 6 examples as batches of 4 and 2 accumulated into one step must train as one batch of
    # 6: the mean over every example, not the mean of two batch means (the 2 rows at 1/4 each)
    common = dict(optimizer="sgd", learning_rate=0.5, epochs=3, warmup_ratio=0.0, weight_decay=0.0)
    whole = without_dropout(tiny_model("bert"))
    finetune(whole, toy_dataset(n=6), default_collate, TrainConfig(batch_size=6, **common))
    parts = without_dropout(tiny_model("bert"))
    result = finetune(
        parts,
        toy_dataset(n=6),
        default_collate,
        TrainConfig(batch_size=4, accumulation_steps=2, **common),
    )
    assert result.steps == 3
    expected, actual = weights(whole), weights(parts)
    for name in expected:
        assert torch.allclose(expected[name], actual[name], atol=1e-6), name


def test_plain_sgd_takes_the_gradient_step():
    model = without_dropout(tiny_model("bert"))
    start = weights(model)
    batch = default_collate(toy_dataset()[:8])
    reference = without_dropout(tiny_model("bert"))
    reference(**batch).loss.backward()
    config = TrainConfig(
        optimizer="sgd",
        learning_rate=0.1,
        max_steps=1,
        batch_size=8,
        warmup_ratio=0.0,
        lr_schedule="constant",
        weight_decay=0.0,
        max_grad_norm=1e9,
    )
    finetune(model, toy_dataset()[:8], default_collate, config)
    name, param = "classifier.weight", dict(reference.named_parameters())["classifier.weight"]
    assert torch.allclose(weights(model)[name], start[name] - 0.1 * param.grad, atol=1e-6)


def test_a_run_killed_after_its_last_step_resumes_there_with_nothing_left_to_train(tmp_path):
    """keep_checkpoint: a kill while the caller evaluates or saves must not cost the run."""
    config = TrainConfig(learning_rate=1e-3, epochs=2, batch_size=8, checkpoint_every=4)
    trained = tiny_model("bert")
    first = finetune(
        trained, toy_dataset(), default_collate, config, tmp_path, keep_checkpoint=True
    )
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["step"] == 12
    again = tiny_model("bert")  # the caller was killed: a new process starts from scratch
    steps = []
    result = finetune(
        again,
        toy_dataset(),
        default_collate,
        config,
        tmp_path,
        resume=True,
        on_step=lambda *args: steps.append(args),
        keep_checkpoint=True,
    )
    assert result.resumed_from_step == result.steps == 12 and not steps  # no step trained
    assert result.final_loss == pytest.approx(first.final_loss)
    expected, actual = weights(trained), weights(again)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_a_checkpoint_of_another_start_is_not_resumed(tmp_path):
    config = TrainConfig(learning_rate=1e-3, epochs=1, batch_size=8)
    data = toy_dataset()
    finetune(tiny_model("bert"), data, default_collate, config, tmp_path, keep_checkpoint=True)
    other = finetune(
        tiny_model("bert"),
        data,
        default_collate,
        config,
        tmp_path,
        resume=True,
        start={"weights": "another model"},
    )
    assert other.resumed_from_step == 0 and other.steps == 6


def test_a_kill_between_the_checkpoint_renames_resumes_from_the_previous_one(tmp_path):
    from prunekit.train.checkpoints import saved_state

    (tmp_path / "last.old").mkdir()  # last/ renamed away, the new one not yet in place
    (tmp_path / "last.old" / "trainer_state.json").write_text('{"step": 8}')
    assert saved_state(tmp_path / "last") == {"step": 8}
    assert (tmp_path / "last" / "trainer_state.json").is_file()


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path):
    from prunekit.train.metrics_log import METRICS_FILE, MetricsLog

    (tmp_path / METRICS_FILE).write_text('{"step": 10, "loss": 0.5}\n{"step": 20, "lo')
    log = MetricsLog(tmp_path, 10, main=True)
    log.restore(20, {})
    assert log.read() == [{"step": 10, "loss": 0.5}]


class _Planted:
    """A pickle that, once unpickled without ``weights_only``, leaves a file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_resuming_a_checkpoint_never_runs_code_planted_in_its_pickles(tmp_path):
    """A checkpoint folder could come from anywhere: every state file it holds is read with
    ``weights_only=True`` (the scheduler and a method's state are not accelerate's pickles)."""
    config = TrainConfig(learning_rate=1e-3, epochs=1, batch_size=8)
    sampler = GeneratorState(torch.Generator().manual_seed(0))
    extras = TrainExtras(state={"sampler": sampler})
    data = toy_dataset()
    run = tmp_path / "run"
    finetune(
        tiny_model("bert"), data, default_collate, config, run, extras=extras, keep_checkpoint=True
    )
    assert not list((run / "last").glob("custom_checkpoint_*"))  # nothing accelerate unpickles
    evidence = tmp_path / "code-ran"
    pickles = [p for p in (run / "last").rglob("*") if p.suffix in {".pkl", ".pt", ".bin"}]
    assert pickles
    for path in pickles:
        torch.save({"state": _Planted(evidence)}, path)
    with pytest.raises(Exception, match="(?i)weights.only|unpickl"):
        finetune(tiny_model("bert"), data, default_collate, config, run, True, extras=extras)
    assert not evidence.exists()


def test_a_runs_seconds_leave_out_its_checkpoint_writes(tmp_path, monkeypatch):
    """compare's R1 recoveries checkpoint and the committed rows they meet did not: a run's
    training time must not depend on how often it saves."""
    import importlib

    loop = importlib.import_module("prunekit.train.finetune")
    real_save = loop.save_checkpoint

    def slow_save(*args, **kwargs):
        time.sleep(0.5)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", slow_save)
    config = TrainConfig(epochs=1, batch_size=16, checkpoint_every=1)
    started = time.perf_counter()
    result = finetune(tiny_model("bert"), toy_dataset(), default_collate, config, tmp_path / "c")
    wall = time.perf_counter() - started
    assert wall >= 1.0  # two writes (steps 1 and 2; the last step writes none) slept 0.5 s each
    assert result.seconds < wall - 0.9


def test_a_resume_under_another_launch_has_another_fingerprint():
    from types import SimpleNamespace

    from prunekit.train.finetune import _launch_fields

    plain = SimpleNamespace(num_processes=1, mixed_precision="no")
    assert _launch_fields(plain, "fp32") == {}  # one plain process: keys as before
    two = SimpleNamespace(num_processes=2, mixed_precision="bf16")
    assert _launch_fields(two, "fp32") == {"processes": 2, "launcher_precision": "bf16"}
    assert _launch_fields(two, "bf16") == {"processes": 2}  # the config's own precision


def test_the_log_gives_each_step_the_rate_it_used(tmp_path):
    """Warm-up's first step runs at rate 0, the last step of the decay above 0."""
    config = TrainConfig(
        learning_rate=1e-3, max_steps=4, batch_size=8, warmup_ratio=0.5, log_every=1
    )
    log = finetune(tiny_model("bert"), toy_dataset(), default_collate, config).log
    rates = [line["lr"] for line in log]
    assert rates[0] == 0.0 and rates[-1] > 0.0
    assert rates == sorted(rates[:2]) + sorted(rates[2:], reverse=True)  # up, then down


def test_a_fresh_run_drops_an_earlier_runs_checkpoint(tmp_path):
    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=8, checkpoint_every=2)
    args = (toy_dataset(), default_collate, config)
    finetune(tiny_model("bert"), *args, checkpoint_dir=tmp_path, keep_checkpoint=True)
    assert (tmp_path / "last").is_dir()
    shutil.copytree(tmp_path / "last", tmp_path / "last.old")  # as a swap cut short leaves it

    class Killed(Exception):
        pass

    def kill(step, total, values=None):
        raise Killed

    with pytest.raises(Killed):  # started afresh, killed before its own first checkpoint
        finetune(tiny_model("bert"), *args, checkpoint_dir=tmp_path, on_step=kill)
    # a later --resume starts over, log and all
    assert not (tmp_path / "last").exists() and not (tmp_path / "last.old").exists()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_model_loaded_in_half_precision_trains_in_float32(dtype):
    model = tiny_model("bert").to(dtype)
    embeddings = model.get_input_embeddings().weight
    config = TrainConfig(learning_rate=1e-3, max_steps=3, batch_size=8, warmup_ratio=0.0)
    finetune(model, toy_dataset(), default_collate, config)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert embeddings.dtype == torch.float32  # the same parameter, cast in place
    # fp16 AdamW turned rows no batch used (zero gradients, eps rounded to 0) into NaN
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_half_precision_model_whose_weights_are_frozen_stays_as_it_is():
    model = tiny_model("bert").to(torch.bfloat16)
    for param in model.parameters():
        param.requires_grad_(False)
    gate = torch.nn.Parameter(torch.zeros(()))  # what L0 trains: its gates, outside the model
    extras = TrainExtras(param_groups=[ParamGroup([gate], lr=1e-2)])

    def loss_fn(model, batch, step):
        return model(**batch).logits.float().mean() * 0 + (gate - 1) ** 2

    config = TrainConfig(max_steps=2, batch_size=8, warmup_ratio=0.0)
    finetune(model, toy_dataset(), default_collate, config, loss_fn=loss_fn, extras=extras)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}  # nothing to cast for
    assert gate.item() != 0.0


def test_an_accumulating_run_with_a_short_batch_resumes_mid_epoch_to_the_same_weights(tmp_path):
    # 46 examples in batches of 4: 11 full ones and a short one of 2, which shuffles into
    # some step's group; 2 batches a step, so 6 steps an epoch; killed at step 9 after the
    # checkpoint of step 8 (mid-epoch 2)
    config = TrainConfig(
        learning_rate=1e-3, epochs=3, batch_size=4, accumulation_steps=2, checkpoint_every=2
    )
    reference = tiny_model("bert")
    finetune(reference, toy_dataset(n=46), default_collate, config)

    class Killed(Exception):
        pass

    def kill_at_step_9(step, total, values):
        if step == 9:
            raise Killed

    with pytest.raises(Killed):
        finetune(
            tiny_model("bert"),
            toy_dataset(n=46),
            default_collate,
            config,
            checkpoint_dir=tmp_path,
            on_step=kill_at_step_9,
        )
    resumed = tiny_model("bert")
    result = finetune(
        resumed, toy_dataset(n=46), default_collate, config, checkpoint_dir=tmp_path, resume=True
    )
    assert result.resumed_from_step == 8 and result.steps == 18
    expected, actual = weights(reference), weights(resumed)
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_a_step_the_loss_scaler_skipped_leaves_the_schedule_where_it_was(monkeypatch):
    """fp16 on a GPU: an update skipped for overflowing gradients uses none of the warm-up."""
    from accelerate import Accelerator

    calls = []

    def skipped(self):
        calls.append(1)
        return len(calls) <= 2  # the scaler's first two steps overflow

    monkeypatch.setattr(Accelerator, "optimizer_step_was_skipped", property(skipped))
    config = TrainConfig(
        learning_rate=1e-3, max_steps=5, batch_size=8, warmup_ratio=0.4, log_every=1
    )
    log = finetune(tiny_model("bert"), toy_dataset(), default_collate, config).log
    rates = [line["lr"] for line in log]
    assert rates[:3] == [0.0, 0.0, 0.0]  # warm-up starts with the first real update
    assert rates[3] > 0.0


def test_a_kill_while_a_checkpoint_is_deleted_leaves_none_to_resume(tmp_path, monkeypatch):
    """Deleting ``last/`` file by file: cut short, what is left must not look resumable."""
    from prunekit.train import checkpoints

    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=8, checkpoint_every=2)
    finetune(tiny_model("bert"), toy_dataset(), default_collate, config,
             checkpoint_dir=tmp_path, keep_checkpoint=True)  # fmt: skip
    assert checkpoints.saved_state(tmp_path / "last") is not None
    shutil.copytree(tmp_path / "last", tmp_path / "last.old")  # as a swap cut short leaves it

    def killed_midway(folder, ignore_errors=False):
        weights = sorted(p for p in Path(folder).glob("*") if p.suffix != ".json")
        if weights:
            weights[0].unlink()  # one file gone, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.drop_checkpoint(tmp_path / "last")
    monkeypatch.undo()
    assert checkpoints.saved_state(tmp_path / "last") is None  # a resume starts over
    resumed = finetune(tiny_model("bert"), toy_dataset(), default_collate, config,
                       checkpoint_dir=tmp_path, resume=True)  # fmt: skip
    assert resumed.resumed_from_step == 0 and resumed.steps == 4

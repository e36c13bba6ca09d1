"""The one training loop: fine-tuning, recovery, distillation and every method that trains.

Runs on `accelerate`: one process on CPU by default, several via ``accelerate launch`` /
``torchrun``. Checkpoints every epoch (or N steps) and resumes to the same result: model,
optimizer, scheduler, RNG states and every piece of method state registered in `TrainExtras`
are restored, and the already-seen batches of the interrupted epoch are skipped.

What a training-time method adds (`TrainExtras`), instead of writing its own loop:
- a step-aware loss ``loss_fn(model, batch, step)`` returning a tensor or named parts (summed;
  each part is shown in the progress line and logged to ``metrics.jsonl``);
- extra parameter groups with their own learning rate (L0 log alpha, movement scores), some
  trained by gradient ascent (Lagrange multipliers); under several processes their gradients
  are averaged like the model's;
- hooks run on every process after each optimizer step (re-applying masks, schedule events);
- state objects (``state_dict``/``load_state_dict``) checkpointed with the model.

A model whose plan carries unstructured masks keeps its dropped weights at zero: the loop
re-applies the masks after every optimizer step, before the method's own hooks.

Batches are random, or with ``group_by_length`` random batches of similar length
(`batching.LengthGroupedSampler`: less padding, same resume guarantees).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunekit.device import resolve_device
from prunekit.models.masks import model_masks, weight_masks, zero_dropped
from prunekit.models.surgery import current_plan
from prunekit.processes import launched
from prunekit.train.batching import loader_order, order_fields, row_divisors, step_groups
from prunekit.train.checkpoints import (
    drop_checkpoint,
    load_objects,
    run_fingerprint,
    save_checkpoint,
    saved_state,
)
from prunekit.train.extras import (
    LossFn,
    LossOutput,
    StepCallback,
    TrainExtras,
    param_groups,
)
from prunekit.train.metrics_log import METRICS_FILE, MetricsLog
from prunekit.train.schedules import constant, linear_warmup_decay

__all__ = [
    "LOOP_OPTIONS",
    "asked_loop_options",
    "Precision",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "METRICS_FILE",
]

log = logging.getLogger(__name__)

# Training precision: fp32, or bf16 autocast of the forward passes (fp32 master weights).
Precision = Literal["fp32", "bf16"]
# Options of the loop added after the first runs: keys and fingerprints carry them only when
# they are not at their defaults (`asked_loop_options`), so older runs keep theirs.
LOOP_OPTIONS = ("precision", "group_by_length")


class TrainConfig(BaseModel):
    """Optimisation settings (defaults: the shared dense recipe of methods.md §6.1, 1 epoch)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(5e-5, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    lr_schedule: Literal["linear", "constant"] = "linear"
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="sgd: plain, no momentum")
    accumulation_steps: int = Field(1, ge=1, description="micro-batches per optimizer step")
    checkpoint_every: int | None = Field(
        None, ge=1, description="steps between checkpoints; default: every epoch"
    )
    log_every: int = Field(10, ge=1, description="steps per line of metrics.jsonl")
    device: str = Field("auto", description="auto (cuda when present), cpu or cuda")
    precision: Precision = Field(
        "fp32",
        description="bf16: autocast the forward passes to bfloat16 (weights, gradients and the "
        "optimizer stay fp32); about 1.7x faster train steps on CPUs with AMX, not bit-equal",
    )
    group_by_length: bool = Field(
        False,
        description="batches of similar length (train/batching.py): the order stays random, "
        "padding shrinks (GLUE: 1.5-2.9x fewer token slots); needs items with input_ids",
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="numpy's seeds are 0 .. 2**32 - 1")


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    resumed_from_step: int
    # the whole run's training time: a resumed run adds the time before it; checkpoint writes
    # are left out
    seconds: float
    log: list[dict[str, float]] = field(default_factory=list)


def finetune(
    model: nn.Module,
    train_dataset: Dataset,
    collate: Callable[[list[dict]], dict[str, torch.Tensor]],
    config: TrainConfig,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    on_step: StepCallback | None = None,
    extras: TrainExtras | None = None,
    start: dict[str, Any] | None = None,
    keep_checkpoint: bool = False,
) -> TrainResult:
    """Train ``model`` in place. Returns when ``max_steps`` or ``epochs`` are done.

    Args:
        loss_fn: ``fn(model, batch, step) -> loss or {name: loss}`` (``step`` counts optimizer
            steps done before this batch); default is the model's own loss from ``labels``.
        checkpoint_dir: holds ``last/`` (the newest checkpoint) and ``metrics.jsonl``;
            ``None`` = no checkpoints and no log file (the log is still returned).
        resume: continue from ``checkpoint_dir/last`` when it exists.
        on_step: called on the main process after every optimizer step.
        extras: parameter groups, hooks and state of a training-time method.
        start: what the run starts from (digests of the weights and data, say): part of the
            checkpoint's fingerprint, so a resume with another model or data starts over.
        keep_checkpoint: also checkpoint the last step and leave ``last/`` in place: the caller
            deletes it once its own output is saved, so a kill while it evaluates or saves
            resumes there instead of at step 0.
    """
    started = time.perf_counter()
    extras = extras or TrainExtras()
    set_seed(config.seed)
    _float32_master_weights(model)
    accelerator = _accelerator(resolve_device(config.device), config.precision)
    loader = DataLoader(
        train_dataset,
        batch_size=config.batch_size,
        collate_fn=collate,
        **loader_order(train_dataset, config.batch_size, config.group_by_length, config.seed),
    )
    unwrapped = model
    own_forward = "forward" in vars(unwrapped)  # an instance forward of the caller's, kept
    groups, schedules = param_groups(model, config.weight_decay, extras.param_groups)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.SGD
    optimizer = optimizer_class(groups, lr=config.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # Optimizer steps per epoch, per process after sharding.
    steps_per_epoch = len(loader) // config.accumulation_steps
    if steps_per_epoch < 1:
        raise ValueError(
            f"{len(loader)} batches per epoch cannot fill one step of "
            f"{config.accumulation_steps} accumulated batches"
        )
    total = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total / steps_per_epoch)
    warmup = int(config.warmup_ratio * total)
    weights_schedule = (
        (lambda s: linear_warmup_decay(s, warmup, total))
        if config.lr_schedule == "linear"
        else constant
    )
    # Not passed to prepare(): accelerate would step it once per process per optimizer step.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [weights_schedule if s else constant for s in schedules]
    )
    objects = {"scheduler": scheduler} | {f"extra.{k}": v for k, v in extras.state.items()}
    compute_loss = loss_fn or _model_loss
    ascent = [p for g in extras.param_groups if g.ascent for p in g.params]
    # DDP averages the gradients of the model it wraps; a method's own parameters (L0's log
    # alphas, movement scores) are outside it and would drift apart across processes.
    in_model = {id(p) for p in unwrapped.parameters()}
    outside = [p for g in extras.param_groups for p in g.params if id(p) not in in_model]
    sync_outside = accelerator.num_processes > 1 and bool(outside)
    after_step = list(extras.after_step)
    if model_masks(unwrapped):  # weights a plan's masks dropped stay zero through training
        dropped = weight_masks(unwrapped, current_plan(unwrapped))  # once, on the device
        after_step.insert(0, lambda step: [zero_dropped(w, d) for w, d in dropped])

    step = 0
    last_dir = checkpoint_dir / "last" if checkpoint_dir is not None else None
    logger = MetricsLog(checkpoint_dir, config.log_every, accelerator.is_main_process)
    fields = _fingerprint_fields(config) | _launch_fields(accelerator, config.precision)
    fields |= {"start": start} if start else {}
    run = run_fingerprint(fields, total, len(train_dataset))
    saved = saved_state(last_dir) if resume else None
    if saved is not None and saved.get("run") != run:
        # Another configuration wrote this checkpoint (other settings, data or step count):
        # continuing it would mix two runs, so this one starts over.
        log.warning("ignoring the checkpoint in %s: it was written by other settings", last_dir)
        saved = None
    earlier_seconds = 0.0  # what the steps before a resume took, in the runs that made them
    # Writing checkpoints is not training: a run's seconds must not depend on how often it
    # saves (compare's R1 recoveries checkpoint, the rows they are compared with did not).
    saving_seconds = 0.0

    def elapsed() -> float:  # the whole run's training time so far, resumes included
        return earlier_seconds + time.perf_counter() - started - saving_seconds

    if saved is not None:
        accelerator.load_state(str(last_dir))
        load_objects(last_dir, objects)
        step = saved["step"]
        earlier_seconds = saved.get("seconds", 0.0)  # older checkpoints did not keep it
        logger.restore(step, saved.get("pending", {}))
        log.info("resumed from step %d of %d", step, total)
    else:
        logger.start()
        if last_dir is not None and accelerator.is_main_process:
            # a fresh run: an earlier run's checkpoint would be resumed later under this
            # run's log if this one were killed before its own first checkpoint
            drop_checkpoint(last_dir)
        accelerator.wait_for_everyone()
    resumed_from = step

    model.train()
    # a run resumed after its last step trains nothing: it reports the loss saved with it
    loss_value = float("nan") if saved is None or saved.get("loss") is None else saved["loss"]
    accumulate = config.accumulation_steps
    pending: list[dict[str, float]] = []  # values of this step's micro-batches so far
    for epoch in range(step // steps_per_epoch, epochs):
        if step >= total:  # resumed from the last step's checkpoint: nothing left to train
            break
        loader.set_epoch(epoch)
        seen = (step - epoch * steps_per_epoch) * accumulate
        batches = accelerator.skip_first_batches(loader, seen) if seen else loader
        groups = step_groups(batches, accumulate, steps_per_epoch - seen // accumulate)
        for group in groups:
            for batch, divisor in zip(group, row_divisors(group), strict=True):
                output = compute_loss(model, batch, step)
                parts = _named_parts(output)
                loss = sum(parts.values())
                # Dividing by 1 is exact, so without accumulation this is the plain loss.
                accelerator.backward(loss / divisor)
                values = _values(loss, parts, named=isinstance(output, dict))
                pending.append({k: v / divisor for k, v in values.items()})
            if sync_outside:
                for param in outside:  # every rank computes these grads, so none waits alone
                    if param.grad is not None:
                        param.grad = accelerator.reduce(param.grad, reduction="mean")
            for param in ascent:
                if param.grad is not None:
                    param.grad.neg_()
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            step_lr = scheduler.get_last_lr()[0]  # the rate this step used, not the next one's
            # fp16's loss scaler skips a step whose gradients overflowed (often the first few
            # at 65536): the schedule waits for a real update, as transformers' Trainer's does
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad()
            step += 1
            for hook in after_step:  # every process: masks must match across ranks
                hook(step)
            values = {k: sum(v[k] for v in pending) for k in pending[0]}  # shares sum to 1
            pending.clear()
            loss_value = values["loss"]
            if extras.status is not None:
                values |= extras.status()
            logger.add(step, values, step_lr, final=step >= total)
            if on_step is not None and accelerator.is_main_process:
                on_step(step, total, values)
            end_of_epoch = step % steps_per_epoch == 0
            due = step % config.checkpoint_every == 0 if config.checkpoint_every else end_of_epoch
            final = step >= total
            if last_dir is not None and ((due and not final) or (final and keep_checkpoint)):
                state = (logger.pending_state(), run, elapsed(), loss_value, objects)
                saving_from = time.perf_counter()
                save_checkpoint(accelerator, last_dir, step, *state)
                saving_seconds += time.perf_counter() - saving_from
            if step >= total:
                break
        if step >= total:
            break

    accelerator.wait_for_everyone()
    # Under bf16 accelerate patched the module's own forward with autocast; left there, the
    # trained model would evaluate in bf16 here but in fp32 once saved and loaded (peer's
    # lossless search measured 85.66 F1 fresh and 85.88 reloaded). The model we return runs
    # as it will after a reload.
    accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    if not own_forward:  # unwrapping binds the original forward to the instance: drop it
        vars(unwrapped).pop("forward", None)
    model.eval()
    if last_dir is not None and accelerator.is_main_process and not keep_checkpoint:
        drop_checkpoint(last_dir)  # finished: the result supersedes it
    return TrainResult(
        steps=step,
        final_loss=loss_value,
        resumed_from_step=resumed_from,
        seconds=elapsed(),
        log=logger.read(),
    )


def _accelerator(device: torch.device, precision: str = "fp32") -> Accelerator:
    """An Accelerator for ``device`` and ``precision``. accelerate keeps one device and one
    mixed-precision mode per process: when a run asks for others than an earlier one (CUDA
    fine-tuning, then an L0 search on a CPU model), its state is reset, which is safe in a
    single process; under several processes only a precision change is, and only the precision
    is reset (the process group stays); ``cuda:N`` picks the GPU."""
    # fp32 leaves the choice to `accelerate launch --mixed_precision` (its environment).
    environment = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").lower()
    mixed = "bf16" if precision == "bf16" else environment
    distributed = launched()
    state = AcceleratorState._shared_state
    other_precision = bool(state) and str(state.get("_mixed_precision", mixed)) != mixed
    if not distributed:
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device.index)
        other_device = getattr(state.get("device"), "type", device.type) != device.type
        if state and (other_device or other_precision):
            AcceleratorState._reset_state(reset_partial_state=True)
    elif other_precision:  # keep the process group (the partial state); only precision changes
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        # accelerate only forms a multi-process CPU group (gloo) when told it runs on CPU.
        cpu=device.type == "cpu",
        mixed_precision=mixed,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )


def asked_loop_options(
    precision: Precision = "fp32", group_by_length: bool = False
) -> dict[str, Any]:
    """The `LOOP_OPTIONS` that are not at their defaults: what keys and fingerprints carry, and
    what a caller sets on a recipe or config without overriding the rest of it."""
    asked: dict[str, Any] = {}
    if precision != "fp32":
        asked["precision"] = precision
    if group_by_length:
        asked["group_by_length"] = True
    return asked


def _fingerprint_fields(config: TrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share; loop options only when asked (older runs)."""
    fields = config.model_dump(exclude={"checkpoint_every", "log_every", "device", *LOOP_OPTIONS})
    fields |= asked_loop_options(config.precision, config.group_by_length)
    if config.accumulation_steps > 1:  # a checkpoint from before rows were counted starts over
        fields["accumulation"] = "rows"
    return fields | order_fields(config.group_by_length)


def _launch_fields(accelerator: Accelerator, precision: str) -> dict[str, Any]:
    """What `accelerate launch` changes about a run: more processes (a larger effective batch,
    other epoch boundaries) or mixed precision on an fp32 config. A resume under another
    launch starts over; one plain process adds nothing, so its keys stay as they were."""
    fields: dict[str, Any] = {}
    if accelerator.num_processes > 1:
        fields["processes"] = accelerator.num_processes
    if precision == "fp32" and str(accelerator.mixed_precision) != "no":
        fields["launcher_precision"] = str(accelerator.mixed_precision)
    return fields


def _float32_master_weights(model: nn.Module) -> None:
    """Cast a model whose trained weights are in half precision to float32 before it trains:
    AdamW's updates (~1e-5 of a weight) vanish in bf16's 8-bit mantissa, and in fp16 its eps
    rounds to 0, so a zero gradient (an embedding row no batch used) turns the weight into NaN.
    ``precision`` bf16 still autocasts the forward passes; the trained model stays float32. A
    model whose weights are all frozen (L0 training its gates alone) is left as it is."""
    half = (torch.float16, torch.bfloat16)
    trained = sorted(
        {str(p.dtype) for p in model.parameters() if p.requires_grad and p.dtype in half}
    )
    if trained:
        log.warning("the model's weights are %s: trained in float32", ", ".join(trained))
        model.float()  # in place: parameter objects (and a method's references to them) stay


def _model_loss(model: nn.Module, batch: dict[str, Any], step: int) -> torch.Tensor:
    return model(**batch).loss


def _named_parts(output: LossOutput) -> dict[str, torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return {"loss": output}
    if not output:
        raise ValueError("the loss function returned no loss parts")
    return dict(output)


def _values(loss: torch.Tensor, parts: dict[str, torch.Tensor], named: bool) -> dict[str, float]:
    """The loss and, when the loss function named them, each part (one name is still shown)."""
    values = {"loss": loss.detach().item()}
    if named:
        values |= {name: part.detach().item() for name, part in parts.items() if name != "loss"}
    return values

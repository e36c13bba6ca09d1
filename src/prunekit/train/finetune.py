"""Fine-tuning loop on `accelerate`: one process on CPU by default, several via
``accelerate launch`` / ``torchrun``. Checkpoints every epoch (or N steps) and resumes to the
same result: model, optimizer, scheduler and RNG states are restored and the already-seen
batches of the interrupted epoch are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import set_seed
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import get_linear_schedule_with_warmup

__all__ = ["TrainConfig", "TrainResult", "finetune", "LossFn", "StepCallback"]

log = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
StepCallback = Callable[[int, int, float], None]  # (step, total_steps, loss)

_STATE_FILE = "trainer_state.json"


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
    checkpoint_every: int | None = Field(
        None, ge=1, description="steps between checkpoints; default: every epoch"
    )
    seed: int = 0


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    resumed_from_step: int
    seconds: float


def finetune(
    model: nn.Module,
    train_dataset: Dataset,
    collate: Callable[[list[dict]], dict[str, torch.Tensor]],
    config: TrainConfig,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    loss_fn: LossFn | None = None,
    on_step: StepCallback | None = None,
) -> TrainResult:
    """Train ``model`` in place. Returns when ``max_steps`` or ``epochs`` are done.

    Args:
        loss_fn: ``fn(model, batch) -> loss``; default is the model's own loss from ``labels``.
        checkpoint_dir: where ``last/`` (the newest checkpoint) is kept; ``None`` = no checkpoints.
        resume: continue from ``checkpoint_dir/last`` when it exists.
        on_step: called on the main process after every optimizer step.
    """
    import time

    started = time.perf_counter()
    set_seed(config.seed)
    accelerator = Accelerator(
        # accelerate only forms a multi-process CPU group (gloo) when told it runs on CPU.
        cpu=not torch.cuda.is_available(),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    loader = DataLoader(
        train_dataset,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer = torch.optim.AdamW(
        _param_groups(model, config.weight_decay), lr=config.learning_rate
    )
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps_per_epoch = len(loader)  # per process, after sharding
    total = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total / steps_per_epoch)
    # Not passed to prepare(): accelerate would step it once per process per optimizer step.
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    accelerator.register_for_checkpointing(scheduler)
    compute_loss = loss_fn or _model_loss

    step = 0
    last_dir = checkpoint_dir / "last" if checkpoint_dir is not None else None
    if resume and last_dir is not None and (last_dir / _STATE_FILE).is_file():
        accelerator.load_state(str(last_dir))
        step = json.loads((last_dir / _STATE_FILE).read_text())["step"]
        log.info("resumed from step %d of %d", step, total)
    resumed_from = step

    model.train()
    loss_value = float("nan")
    for epoch in range(step // steps_per_epoch, epochs):
        loader.set_epoch(epoch)
        seen = step - epoch * steps_per_epoch
        batches = accelerator.skip_first_batches(loader, seen) if seen else loader
        for batch in batches:
            loss = compute_loss(model, batch)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            loss_value = loss.detach().item()
            if on_step is not None and accelerator.is_main_process:
                on_step(step, total, loss_value)
            end_of_epoch = step % steps_per_epoch == 0
            due = step % config.checkpoint_every == 0 if config.checkpoint_every else end_of_epoch
            if last_dir is not None and due and step < total:
                _save_checkpoint(accelerator, last_dir, step)
            if step >= total:
                break
        if step >= total:
            break

    accelerator.wait_for_everyone()
    model.eval()
    if last_dir is not None and accelerator.is_main_process and last_dir.exists():
        shutil.rmtree(last_dir)  # training finished: the result supersedes the checkpoint
    return TrainResult(
        steps=step,
        final_loss=loss_value,
        resumed_from_step=resumed_from,
        seconds=time.perf_counter() - started,
    )


def _model_loss(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    return model(**batch).loss


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # Biases and LayerNorm weights are not decayed (BERT recipe).
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _save_checkpoint(accelerator: Accelerator, last_dir: Path, step: int) -> None:
    """Write the checkpoint beside ``last/`` and swap it in, so a kill never leaves half of one."""
    tmp = last_dir.with_name(f"{last_dir.name}.tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / _STATE_FILE).write_text(json.dumps({"step": step}))
        if last_dir.exists():
            shutil.rmtree(last_dir)
        tmp.rename(last_dir)
    accelerator.wait_for_everyone()

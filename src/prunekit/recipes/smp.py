"""Recipe `prunekit smp train-pruner`: meta-train SMP's pruner on the pre-trained model.

The pre-trained encoder stays frozen and in eval mode (eager attention for the maps); the
pruner trains on the package's one loop (plain SGD, lr 2e-2, gradient clipping 1.0, no
schedule; micro-batches of one task each, tasks sampled ∝ ⌊|D|^0.2⌋, with accumulation), so
checkpoints, ``--resume`` and the loss curve come with it. No labels are read. The output
directory holds ``pruner.safetensors``, ``pruner.json`` (settings and provenance) and
``train_log.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from prunekit.data import TaskData, TaskMixture, get_task, make_collate, train_examples_digest
from prunekit.device import resolve_device
from prunekit.errors import ConfigError
from prunekit.models import load, load_tokenizer
from prunekit.models.sources import resolve_model
from prunekit.outputs import (
    atomic_output_dir,
    check_output_dir,
    checkpoint_dir_for,
    refuse_output_holding,
)
from prunekit.recipes.common import console, seed_everything, step_progress
from prunekit.scoring.smp import PAIR, SINGLE, HeadPruner, save_pruner
from prunekit.scoring.smp_meta import make_meta_pruning_loss
from prunekit.train import GeneratorState, TrainConfig, TrainExtras, finetune

__all__ = ["PrunerTrainConfig", "run_train_pruner"]


class PrunerTrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path
    model: str = "default"
    tasks: tuple[str, ...] = ("rte", "mrpc", "sst2", "cola")
    steps: int = Field(300, ge=1, description="optimizer steps (the paper: 8,000)")
    micro_batch: int = Field(16, ge=2, description="sequences per micro-batch (paper: 60)")
    accumulation: int = Field(4, ge=1, description="micro-batches per step (paper: 8)")
    learning_rate: float = Field(2e-2, gt=0)
    ndf: int = Field(8, ge=1)
    pair_representation: Literal["pooler", "mean"] = Field(
        "pooler",
        description="what pair tasks' geometry is measured on: the pooled [CLS] (the paper) or "
        "the mean of the last states (OUR CHOICE, for models trained through mean pooling)",
    )
    max_seq_length: int = Field(128, ge=8)
    data_dir: Path | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    progress: bool = True


def run_train_pruner(config: PrunerTrainConfig) -> dict[str, Any]:
    if not config.tasks:
        raise ConfigError("--tasks names no task; give GLUE tasks, e.g. --tasks rte,mrpc,sst2,cola")
    specs = [get_task(task) for task in config.tasks]
    check_output_dir(config.out, config.overwrite)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    source = resolve_model(config.model)
    refuse_output_holding(config.out, source)  # the swap would replace the model it reads
    # the encoder alone: a task head, if the checkpoint has one, has no part in meta-training
    plm = load(source, attn_implementation="eager").base_model.to(device)
    if task := getattr(plm.config, "finetuning_task", None):
        console.print(
            f"[yellow]note:[/] {config.model} was fine-tuned on {task}; SMP's pruner is "
            "meta-trained on a pre-trained model, so this one learns that model's maps instead",
            highlight=False,
        )
    tokenizer = load_tokenizer(source)
    datasets = [
        TaskData.for_task(  # train inputs only: no dev file needed
            spec, tokenizer, config.data_dir, config.seed, config.max_seq_length, check_dev=False
        ).dataset("train")
        for spec in specs
    ]
    channels = [PAIR if len(spec.text_fields) == 2 else SINGLE for spec in specs]
    mixture = TaskMixture(
        datasets,
        channels,
        config.micro_batch,
        config.steps * config.accumulation,
        config.seed,
        make_collate(tokenizer),
    )
    pruner = HeadPruner(config.ndf)
    pruner.reset_parameters(torch.Generator().manual_seed(config.seed))
    sampler = torch.Generator().manual_seed(config.seed + 1)
    train = TrainConfig(
        learning_rate=config.learning_rate,
        max_steps=config.steps,
        batch_size=1,  # a loader item is a whole micro-batch of one task
        accumulation_steps=config.accumulation,
        optimizer="sgd",
        lr_schedule="constant",
        warmup_ratio=0.0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        checkpoint_every=max(1, min(50, config.steps // 4)),
        seed=config.seed,
        device=str(device),
    )
    # A checkpoint resumes only the run that wrote it: the same tasks, widths, batches and
    # train examples (by content: --data-dir and $GLUE_DIR naming one folder resume alike;
    # the device is not part of it, as in the loop's own fingerprint).
    ignored = {"out", "resume", "overwrite", "progress", "device", "data_dir"}
    settings = config.model_dump(mode="json", exclude=ignored)
    settings["examples"] = [train_examples_digest(spec, config.data_dir) for spec in specs]
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    checkpoints = checkpoint_dir_for(config.out) / digest
    with step_progress("train SMP pruner", config.progress) as on_step:
        result = finetune(
            pruner,
            mixture,
            mixture.collate,
            train,
            checkpoint_dir=checkpoints,
            resume=config.resume,
            loss_fn=make_meta_pruning_loss(plm, sampler, config.pair_representation),
            on_step=on_step,
            extras=TrainExtras(state={"sampler": GeneratorState(sampler)}),
            keep_checkpoint=True,  # deleted below, once the pruner is saved
        )
    record = {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from_step,
        "train_seconds": round(result.seconds, 2),
        "final_loss": result.final_loss,
        "task_shares": {spec.name: mixture.weights[i] for i, spec in enumerate(specs)},
        "config": config.model_dump(mode="json"),
    }
    with atomic_output_dir(config.out, config.overwrite, shared=True) as tmp:
        save_pruner(pruner.cpu(), tmp, trained_on=record)
        (tmp / "train_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in result.log))
    shutil.rmtree(checkpoints.parent, ignore_errors=True)
    return record

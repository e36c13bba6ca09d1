"""Single-Shot Meta-Pruning (Zhang, Qi, Liu, Liu, Sun, AI Open 2021; code thunlp/SMP).

A meta-trained CNN (`prunekit.scoring.smp.HeadPruner`) reads each head's attention maps on the
**pre-trained** model over a task's training inputs, without labels and before any fine-tuning;
the heads it scores lowest are removed (the paper: the ⌊H·r⌋ lowest per layer, ``--per-layer``;
global selection works too). The pruned pre-trained model is then fine-tuned, so fine-tuning is
cheaper as well as inference. The pruner is trained once across tasks by
``prunekit smp train-pruner`` (`prunekit.scoring.smp_meta`, on the shared training loop); the
default, ``pruner="builtin"``, is the one shipped in ``prunekit/assets/smp_minilm`` (meta-trained
on the default MiniLM; its ``pruner.json`` and ``train_log.jsonl`` say how).

Deviations (OUR CHOICE): scoring reads at most ``max_examples`` seeded training inputs (the
authors' ``cal.py`` reads them all; on this CPU a pass over SST-2's 67k inputs is not "single
shot"), in batches of ``batch_size``. Maps of other lengths than 128 are padded or cropped.
A model that records a fine-tuning task is scored anyway but with a warning: SMP's premise is
the pre-trained model.
"""

from __future__ import annotations

import logging

import torch
from pydantic import Field
from torch.utils.data import DataLoader, Subset

from prunekit.errors import ConfigError
from prunekit.methods.registry import (
    MethodConfig,
    MethodResult,
    PruneRequest,
    register_method,
    select_top_heads,
)
from prunekit.scoring.smp import (
    BUILTIN_PRUNER,
    PAIR,
    SINGLE,
    head_scores,
    load_pruner,
    pruner_provenance,
)

__all__ = ["Config", "prune_smp"]

log = logging.getLogger(__name__)


class Config(MethodConfig):
    pruner: str = Field(
        BUILTIN_PRUNER,
        description="'builtin' (shipped, meta-trained on the default MiniLM) or the directory "
        "of a pruner from prunekit smp train-pruner",
    )
    max_examples: int = Field(2000, ge=1, description="training inputs scored (seeded subset)")
    batch_size: int = Field(16, ge=1, description="inputs per scoring forward")


@register_method(
    "smp",
    config=Config,
    summary="Zhang et al. 2021: a meta-trained CNN scores heads from attention maps of the "
    "pre-trained model, before fine-tuning, without labels",
    attn_implementation="eager",
    prunes_pretrained=True,
    needs_data=("train",),
)
def prune_smp(request: PruneRequest, config: Config) -> MethodResult:
    if request.task is None:
        raise ConfigError("smp scores heads for a task; pass --task")
    task = getattr(request.model.config, "finetuning_task", None)
    if task:
        log.warning(
            "smp scores the pre-trained model, but this one was fine-tuned on %s; its scores "
            "describe the fine-tuned model instead",
            task,
        )
    pruner = load_pruner(config.pruner)
    channel = PAIR if len(request.task.text_fields) == 2 else SINGLE
    data = request.train_set
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(request.seed))
    inputs = Subset(data, sorted(order[: config.max_examples].tolist()))
    batches = DataLoader(inputs, batch_size=config.batch_size, collate_fn=request.collate)
    scores = head_scores(request.model, pruner, batches, channel)
    plan = select_top_heads(scores, request.plan, request.target)
    made = pruner_provenance(config.pruner)
    meta = {
        "pruner": config.pruner,
        "pruner_steps": made.get("steps"),
        "pruner_tasks": (made.get("config") or {}).get("tasks"),
        "channel": channel,
        "examples": len(inputs),
    }
    return MethodResult(plan.model_copy(update={"meta": meta}), record={"scores": scores.tolist()})

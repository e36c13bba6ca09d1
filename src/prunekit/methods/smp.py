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

Without ``--per-layer`` (OUR CHOICE, methods.md §6.3): the pruner's scores are calibrated
within a layer only (its training draws heads by a softmax per layer, blind to an offset shared
by a layer's heads), so raw scores are not ranked across layers. Of the heads to remove, the
same share ⌊k/L⌋ goes from every layer (its lowest scores), and the rest are the lowest of the
per-layer z-scored scores across layers; at 50% of a 12-head model that is the paper's 6 per
layer.
"""

from __future__ import annotations

import logging

import torch
from pydantic import Field
from torch.utils.data import DataLoader, Subset

from prunekit.errors import ConfigError
from prunekit.methods.registry import (
    HeadTarget,
    MethodConfig,
    MethodResult,
    PruneRequest,
    register_method,
    select_top_heads,
)
from prunekit.plan import PruningPlan
from prunekit.scoring.smp import (
    BUILTIN_PRUNER,
    PAIR,
    SINGLE,
    head_scores,
    load_pruner,
    pruner_provenance,
)

__all__ = ["Config", "prune_smp", "select_layer_calibrated"]

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
    if request.target.per_layer:
        plan = select_top_heads(scores, request.plan, request.target)
    else:
        plan = select_layer_calibrated(scores, request.plan, request.target)
    made = pruner_provenance(config.pruner)
    meta = {
        "pruner": config.pruner,
        "pruner_steps": made.get("steps"),
        "pruner_tasks": (made.get("config") or {}).get("tasks"),
        "channel": channel,
        "examples": len(inputs),
    }
    return MethodResult(plan.model_copy(update={"meta": meta}), record={"scores": scores.tolist()})


def select_layer_calibrated(
    scores: torch.Tensor, plan: PruningPlan, target: HeadTarget
) -> PruningPlan:
    """``target``'s head count chosen from scores comparable within a layer only (see the
    module docstring): each layer first loses the same number of its lowest-scoring heads,
    then the rest go by the lowest per-layer z-score across layers. A layer keeps at least
    ``target.min_per_layer`` heads (0 by default: as any global selection, it may empty one)."""
    scores = scores.detach().double().cpu()
    kept = [list(heads) for heads in plan.kept_heads]
    num_layers = plan.num_layers
    floor = target.min_per_layer
    removals = plan.heads_kept - target.keep
    share = removals // num_layers

    def removable(layer: int) -> int:
        return max(0, len(kept[layer]) - floor)

    for layer in range(num_layers):  # the same share from every layer, its lowest first
        by_score = sorted(kept[layer], key=lambda h: (float(scores[layer, h]), h))
        for head in by_score[: min(share, removable(layer))]:
            kept[layer].remove(head)
    z = torch.zeros_like(scores)
    for layer, heads in enumerate(plan.kept_heads):
        if len(heads) > 1:
            values = scores[layer, list(heads)]
            spread = values.std()
            z[layer, list(heads)] = (values - values.mean()) / (spread if spread > 0 else 1.0)
    left = removals - (plan.heads_kept - sum(len(heads) for heads in kept))
    candidates = sorted(
        (float(z[layer, h]), layer, h) for layer in range(num_layers) for h in kept[layer]
    )
    for _, layer, head in candidates:
        if left <= 0:
            break
        if removable(layer):
            kept[layer].remove(head)
            left -= 1
    if left > 0:
        raise ConfigError(f"cannot remove {removals} heads and keep {floor} in every layer")
    return plan.model_copy(update={"kept_heads": tuple(tuple(sorted(k)) for k in kept)})

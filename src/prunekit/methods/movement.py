"""Movement pruning (Sanh, Wolf, Rush, NeurIPS 2020; huggingface movement-pruning, ``topK``).

Every prunable matrix W (the six linears of each layer) gets a score matrix S (zeros) and is
used as ``W' = W ⊙ TopK(S)``, TopK keeping the top fraction of S per matrix. The mask is
straight-through: dL/dS = dL/dW' ⊙ W, so S accumulates -sum_t dL/dW · W and weights moving
away from zero score high. S trains with its own learning rate (``scores_lr``, 1e-2, Adam);
the kept fraction follows the cubic schedule to ``sparsity`` (`cubic_sparsity_events`, whose
value at a step is a pure function of it, so a resumed run continues exactly). Optional KD from
the unpruned model. At the end the masks are folded into the weights and the
parametrizations removed (nothing is left on the model), and the plan carries the masks.

Deviations (OUR CHOICE): it starts from the model it is given, the fine-tuned one in every
prunekit flow, as magnitude does (the authors fine-prune from the pre-trained model; sparse-kd
is the variant that starts pre-trained), so the two baselines differ from each other in the
criterion only. That start handicaps movement: near a converged fine-tune the mean gradient is
about zero, and Adam normalises each score's step, so the scores rank weights by how
consistently they move away from zero (not by their size), which there is mostly noise; on MRPC
and RTE movement ends at the constant answer from 50% on, where magnitude keeps the dense
metric (docs/results/sparse.md). The scores' learning rate is constant and their gradients are not
clipped; embeddings train with the other weights; the schedule's initial and final warm-ups
(``initial_warmup``, ``final_warmup``: shares of the steps) default to 0, where the authors'
SQuAD example holds about 10% and 20%; weights an earlier plan dropped (zero at the start)
start with scores far below the rest and are masked out of every forward pass, so they stay
dropped (a target below the model's sparsity is refused). The kept fraction moves at the
schedule's ``events`` mask updates (default 100, shared with magnitude), where the authors
recompute it every step; ``events`` equal to the step count reproduces theirs. Soft movement
is not implemented.

Block movement (``block_size`` b > 1; beyond the seed, after Lagunas et al., "Block Pruning
For Faster Transformers", EMNLP 2021): one score per b x b block of each matrix, whose
straight-through gradient is the sum over its block of dL/dW' ⊙ W; TopK keeps the top fraction
of blocks, so the kept fraction of weights is a whole number of blocks. The weights come out
block-sparse, which the sparse CPU path runs as BSR where that is timed faster than CSR
(`models.sparse`). OUR CHOICE: the same square blocks in all six matrices, hard top-k (the
authors' hybrid prunes 32 x 32 blocks in attention and whole rows and columns in the FFN, with
soft movement and a regulariser); b must divide every matrix's dimensions (the hidden size,
the FFN width and the heads' width: 8, 16 and 32 do on MiniLM, BERT and MPNet). A block that an
earlier plan dropped entirely starts far below the rest; entries an earlier plan dropped inside
a kept block stay zero.
"""

from __future__ import annotations

import copy

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils import parametrize

from prunekit.device import module_device
from prunekit.errors import ConfigError
from prunekit.methods.magnitude import Config as MagnitudeConfig
from prunekit.methods.magnitude import distillation, planned_steps, refuse_lower_sparsity
from prunekit.methods.registry import (
    RESUMES_AT_DEFAULT,
    MethodResult,
    PruneRequest,
    register_method,
)
from prunekit.models.masks import (
    any_in_blocks,
    dense_masks,
    expand_blocks,
    masked_linears,
    prunable_linears,
    top_fraction,
)
from prunekit.train import ParamGroup, TrainConfig, TrainExtras
from prunekit.train.schedules import cubic_sparsity_events, sparsity_at

__all__ = ["Config", "prune_movement", "TopKMask"]


class Config(MagnitudeConfig):
    """Magnitude's settings (sparsity, schedule, KD) plus the scores' learning rate and the
    block size (1: unstructured)."""

    scores_lr: float = Field(1e-2, gt=0, description="the scores' learning rate (Adam)")
    block_size: int = Field(
        1,
        ge=1,
        le=256,
        description="square blocks of weights scored and kept together (1: unstructured); "
        "e.g. 8 or 16: block-sparse weights, which the sparse CPU path runs as BSR",
        json_schema_extra={RESUMES_AT_DEFAULT: True},  # added after run dirs recorded settings
    )


class _Schedule:
    """The kept fraction now, shared by every mask (set from the step by the loss)."""

    keep: float = 1.0


class TopKMask(nn.Module):
    """Parametrization ``W -> W ⊙ TopK(S) ⊙ allowed`` with a straight-through gradient to S.

    With ``block`` b > 1, S holds one score per b x b block and TopK keeps whole blocks.

    ``allowed`` (default: every entry) holds the entries an earlier plan kept: while the
    schedule keeps more than they are, TopK also picks dropped entries, and without it those
    (trained all along, since the loop's zeroing cannot reach a parametrized weight) would
    take part in the forward pass until the mask tightens past them."""

    def __init__(
        self,
        scores: nn.Parameter,
        schedule: _Schedule,
        allowed: torch.Tensor | None = None,
        block: int = 1,
    ) -> None:
        super().__init__()
        self.block = block
        # Not registered here: the scores belong to their own optimizer group (and checkpoint),
        # not to the model's weights.
        self.__dict__["scores"] = scores
        self.schedule = schedule
        self.register_buffer("allowed", allowed, persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        hard = expand_blocks(top_fraction(self.scores.detach(), self.schedule.keep), self.block)
        if self.allowed is not None:
            hard = hard & self.allowed
        hard = hard.to(weight.dtype)
        # (S - S.detach()) is exactly 0 forward and 1 backward: the value stays exactly W * mask.
        straight = expand_blocks(self.scores - self.scores.detach(), self.block)
        return weight * (hard + straight.to(weight.dtype))  # fp32 scores, the weight's dtype


@register_method(
    "movement",
    config=Config,
    summary="Sanh et al. 2020: movement pruning, learned scores with straight-through top-k "
    "masks, cubic schedule, optional KD; block_size > 1 keeps whole square blocks (BSR)",
    targets=("sparsity",),
    per_layer=False,
    trains_weights=True,
    needs_teacher=True,
    needs_data=("train",),
)
def prune_movement(request: PruneRequest, config: Config) -> MethodResult:
    student = copy.deepcopy(request.model)
    device = module_device(student)
    weights = masked_linears(student, request.plan)
    refuse_lower_sparsity(weights, config.sparsity)
    block = config.block_size
    for key, weight in weights.items():
        if weight.shape[0] % block or weight.shape[1] % block:
            raise ConfigError(
                f"movement's block_size {block} does not divide layer {key}'s weight "
                f"{list(weight.shape)}; choose a size dividing the hidden size, the FFN width "
                "and the heads' width (or block_size=1)"
            )
    # what an earlier plan dropped (stored zeros), per linear; None where nothing was
    allowed = {k: w != 0 if bool((w == 0).any()) else None for k, w in weights.items()}
    holder = nn.Module()  # the scores, as one module: trained in their group, checkpointed
    # fp32 whatever the weights' dtype: in fp16, -1e9 below is -inf (S - S.detach() = NaN) and
    # Adam's eps underflows
    holder.scores = nn.ParameterDict(
        {
            k.replace(".", "_"): nn.Parameter(
                torch.zeros(w.shape[0] // block, w.shape[1] // block, dtype=torch.float32)
            )
            for k, w in weights.items()
        }
    ).to(device)  # before the fills below: ``allowed`` lives on the weights' device
    # Weights (blocks) an earlier plan already dropped stay out: their scores start far below
    # any other (a finite value: the straight-through term S - S.detach() must stay 0, not NaN).
    with torch.no_grad():
        for key, kept in allowed.items():
            if kept is not None:
                blocks_kept = any_in_blocks(kept, block)
                holder.scores[key.replace(".", "_")].masked_fill_(~blocks_kept, -1e9)
    schedule = _Schedule()
    steps = planned_steps(request, config)
    events = cubic_sparsity_events(
        steps, config.events, config.sparsity, config.initial_warmup, config.final_warmup
    )
    modules = prunable_linears(student, request.plan)
    for key, module in modules.items():
        scores = holder.scores[key.replace(".", "_")]
        mask = TopKMask(scores, schedule, allowed[key], block)
        parametrize.register_parametrization(module, "weight", mask)

    model_loss = distillation(request, config, "movement")

    def loss_fn(model, batch, step: int):
        schedule.keep = 1.0 - sparsity_at(events, step)
        return model_loss(model, batch, step) if model_loss else model(**batch).loss

    train = TrainConfig(
        learning_rate=config.learning_rate,
        max_steps=steps,
        batch_size=config.batch_size,
        lr_schedule=config.lr_schedule,
        checkpoint_every=config.checkpoint_every,
        seed=request.seed,
        device=str(device),
        **config.loop_options(),
    )
    extras = TrainExtras(
        param_groups=[ParamGroup(holder.parameters(), lr=config.scores_lr)],
        state={"scores": holder},
    )
    result = request.train(
        student, train, loss_fn, extras, report=lambda step: {"sparsity": sparsity_at(events, step)}
    )
    schedule.keep = 1.0 - config.sparsity
    masks = {}
    for key, module in modules.items():
        scores = holder.scores[key.replace(".", "_")].detach()
        masks[key] = expand_blocks(top_fraction(scores, schedule.keep), block)
        if allowed[key] is not None:  # as in training: what an earlier plan dropped stays out
            masks[key] &= allowed[key]
        masks[key] = masks[key].cpu()
        # Fold W ⊙ mask into the weight and leave no parametrization behind.
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    plan = request.plan.with_masks(dense_masks(student, request.plan, masks))
    kept = sum(int(m.sum()) for m in masks.values())
    meta = {
        "sparsity": 1.0 - kept / sum(m.numel() for m in masks.values()),
        "target": config.sparsity,
        "distill": config.distill,
        "block_size": block,
    }
    record = {"loss_curve": result.log, "train_steps": result.steps, "seconds": result.seconds}
    return MethodResult(plan.model_copy(update={"meta": meta}), model=student, record=record)

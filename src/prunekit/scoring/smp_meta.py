"""SMP's meta-training objective (thunlp/SMP ``PLMwithPruner.forward``; methods.md §1(b)).

Per micro-batch of one task, with the pre-trained model frozen and in eval mode:
1. an unmasked forward gives the attention maps, and the pruner scores every head ``[L, H]``;
2. `sample_head_mask`: ⌊L/2⌋ random layers keep all heads; in each other layer, hard
   Gumbel-softmax draws over its heads (temperature 1, straight-through) are united until
   exactly H/2 heads are kept (at most 5H draws). The authors' code reshapes the repeated
   scores with ``view(-1, num_layers)``, which is only right when L = H (BERT-base); here the
   draws are made per layer, which is what that code means for L = H;
3. the same random feature dropout ρ (keep 20%, scaled ×5) on the full and the masked model's
   representations: the pooled [CLS] output for pair tasks, mask-aware mean-pooled last states
   (loss ×10) for single-sentence tasks;
4. `geometry_kl`: KL(D_full ‖ D_pruned), where D(V) is the set of 2-way softmaxes over
   consecutive column pairs of 10 × the centred cosine matrix.
Gradients reach only the pruner, through the masked forward, the relaxed mask and the scores.
No labels are read.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from prunekit.models.gates import HeadGates
from prunekit.models.surgery import current_plan
from prunekit.scoring.maps import per_layer_maps
from prunekit.scoring.smp import SINGLE, HeadPruner, map_scores

__all__ = [
    "sample_head_mask",
    "representation_geometry",
    "geometry_kl",
    "sentence_representation",
    "make_meta_pruning_loss",
]

FEATURE_KEEP = 0.2  # feature dropout p = 0.8
COSINE_SCALE = 10.0
SINGLE_WEIGHT = 10.0


def sample_head_mask(
    scores: torch.Tensor, generator: torch.Generator, draws_per_head: int = 5
) -> torch.Tensor:
    """A ``[L, H]`` 0/1 head mask, differentiable in ``scores`` (straight-through Gumbel).

    ⌊L/2⌋ random layers keep every head; every other layer keeps exactly H/2 heads drawn
    without replacement with probabilities ∝ exp(score), as a union of hard Gumbel-softmax
    samples (at most ``draws_per_head * H`` draws, then whatever the union holds).
    """
    num_layers, num_heads = scores.shape
    whole = set(torch.randperm(num_layers, generator=generator)[: num_layers // 2].tolist())
    half = num_heads // 2
    rows = []
    for layer in range(num_layers):
        if layer in whole:
            rows.append(torch.ones(num_heads, device=scores.device, dtype=scores.dtype))
            continue
        union = torch.zeros(num_heads, device=scores.device, dtype=scores.dtype)
        for _ in range(draws_per_head * num_heads):
            uniform = torch.rand(num_heads, generator=generator).clamp(1e-10, 1 - 1e-10)
            gumbel = -torch.log(-torch.log(uniform)).to(scores.device, scores.dtype)
            soft = torch.softmax(scores[layer] + gumbel, dim=-1)
            hard = F.one_hot(soft.argmax(), num_heads).to(soft.dtype)
            union = torch.maximum(union, hard + (soft - soft.detach()))  # exactly hard forward
            if int((union.detach() > 0.5).sum()) >= half:
                break
        rows.append(union)
    return torch.stack(rows)


def representation_geometry(vectors: torch.Tensor) -> torch.Tensor:
    """D(V) as logits ``[B', B'/2, 2]``: 10 × centred cosines, split into consecutive column
    pairs (is anchor i closer to candidate 2k or 2k+1?); B' = B rounded down to even. The
    centre is the mean of all B vectors, as in the authors' ``cos_dist``, taken before an odd
    batch loses its last row."""
    centred = vectors - vectors.mean(0, keepdim=True)
    centred = centred[: vectors.shape[0] - vectors.shape[0] % 2]
    centred = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cosines = COSINE_SCALE * centred @ centred.T
    return cosines.reshape(cosines.shape[0], -1, 2)


def geometry_kl(full: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """Mean KL(D(full) ‖ D(pruned)) over all pairs (``KLDivLoss(reduction='none').mean()``)."""
    target = torch.softmax(representation_geometry(full), dim=-1)
    log_input = torch.log_softmax(representation_geometry(pruned), dim=-1)
    return F.kl_div(log_input, target, reduction="none").mean()


def sentence_representation(
    output, attention_mask: torch.Tensor, channel: int, pair: str = "pooler"
) -> torch.Tensor:
    """What the geometry is measured on: the pooled [CLS] output (pair tasks) or the mask-aware
    mean of the last states (single-sentence tasks). ``pair="mean"`` (OUR CHOICE, off by
    default) takes the mean for pair tasks too: a model trained through mean pooling, such as
    the default sentence-transformers MiniLM, has an untrained pooler (its bias is all zero)."""
    if channel == SINGLE or pair == "mean":
        weights = attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
        return (output.last_hidden_state * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    pooled = getattr(output, "pooler_output", None)  # BERT's tanh-dense on [CLS]
    return pooled if pooled is not None else output.last_hidden_state[:, 0]


def make_meta_pruning_loss(
    plm: nn.Module, generator: torch.Generator, pair_representation: str = "pooler"
) -> Callable[[HeadPruner, dict[str, torch.Tensor], int], dict[str, torch.Tensor]]:
    """``loss_fn(pruner, batch, step)`` for `prunekit.train.finetune`. ``plm`` is the frozen
    pre-trained encoder (eager attention); a batch carries ``tag``: its score channel (0 pair,
    1 single). ``pair_representation``: see `sentence_representation`."""
    plm.eval()
    for param in plm.parameters():
        param.requires_grad_(False)
    plan = current_plan(plm)
    hidden = plm.config.hidden_size

    def loss_fn(pruner: HeadPruner, batch: dict[str, torch.Tensor], step: int):
        channel = int(batch["tag"])
        inputs = {k: v for k, v in batch.items() if k not in ("tag", "labels")}
        with torch.no_grad():
            full = plm(**inputs, output_attentions=True)
        scores = map_scores(
            pruner,
            per_layer_maps(full.attentions, plan.kept_heads, inputs["attention_mask"]),
            inputs["attention_mask"],
            channel,
            plan.kept_heads,
            plan.num_heads,
        )
        mask = sample_head_mask(scores, generator)
        keep = (torch.rand(hidden, generator=generator) < FEATURE_KEEP).float() / FEATURE_KEEP
        keep = keep.to(scores.device)
        with HeadGates(plm, mask):
            pruned = plm(**inputs)
        mask_ = inputs["attention_mask"]
        full_rep = sentence_representation(full, mask_, channel, pair_representation) * keep
        pruned_rep = sentence_representation(pruned, mask_, channel, pair_representation) * keep
        weight = SINGLE_WEIGHT if channel == SINGLE else 1.0
        loss = weight * geometry_kl(full_rep, pruned_rep)
        if not torch.isfinite(loss):
            # The authors skip NaN losses. Here the micro-batch adds a zero gradient and still
            # counts in the loop's accumulation average, so that one step's gradient is scaled
            # by (n-1)/n for n micro-batches a step (clipping at 1.0 bounds it anyway), and the
            # logged loss of the step averages in a 0. Keeping the graph keeps every rank's
            # backward calls aligned under accelerate.
            loss = scores.sum() * 0.0
        return {"geometry_kl": loss}

    return loss_fn

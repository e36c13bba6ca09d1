"""Gradient head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?").

``I[l, h] = sum over examples and non-pad tokens of |<c_{l,h,t}, dL/dc_{l,h,t}>|`` divided by the
number of tokens (the last layer's by the number of examples, as in the authors' code: only the
first token, which the classifier reads, carries gradient there; without per-layer normalisation
a division by tokens would rank the last layer's heads least important), where ``c`` is the
head's context vector entering the output projection and ``L`` the task loss with gold labels.
The per-token product is the gradient of the loss with respect to a per-token head gate, so
its sum over tokens (without the absolute value) is exactly ``dL/dg[l, h]`` of `HeadGates`.
Reference code: pmichel31415/pytorch-pretrained-BERT@paul, ``examples/classifier_eval.py``
(per-token absolute value; ``--normalize_pruning_by_layer``).

Runs on the model's device: batches and gates are moved there, scores come back on the CPU.
Per-token products of float16/bfloat16 models are taken in float32; sums are float64 (float32
on MPS, which has no float64).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from prunekit.device import module_device
from prunekit.models.gates import HeadGates
from prunekit.models.surgery import current_plan

__all__ = ["head_importance", "normalize_per_layer"]


def head_importance(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    gates: torch.Tensor | None = None,
    per_token_abs: bool = True,
) -> torch.Tensor:
    """Importance ``[L, H]`` in original head indices (0 for heads the model no longer has).

    Args:
        model: a sequence classifier on any device (scored in eval mode, then restored).
        batches: labelled batches (``labels`` included) of the validation split, on any device.
        gates: optional ``[L, H]`` gate values to score under (iterative pruning gates removed
            heads to 0 instead of re-slicing), on any device.
        per_token_abs: Michel's estimator (absolute value per token). ``False`` gives the
            signed gradient ``dL/dg`` of the summed per-example losses (useful for tests and
            ablations). Either is divided by the number of tokens (the last layer by the
            number of examples).

    Returns:
        ``[L, H]`` float32 scores on the CPU.
    """
    plan = current_plan(model)
    device = module_device(model)
    wide = torch.float32 if device.type == "mps" else torch.float64
    importance = torch.zeros(plan.num_layers, plan.num_heads, dtype=torch.float64)
    contexts: dict[int, torch.Tensor] = {}

    def keep_context(layer: int, context: torch.Tensor) -> None:
        context.retain_grad()
        contexts[layer] = context

    was_training = model.training
    model.eval()  # no dropout: the score must be a deterministic function of the data
    tokens = examples = 0
    with HeadGates(model, gates, observer=keep_context):
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            model.zero_grad(set_to_none=True)
            contexts.clear()
            # The loss is the batch's mean: times its size, every example's gradient counts
            # once whatever batch it sits in (a short last batch, or batches cut by length).
            (model(**batch).loss * batch["attention_mask"].shape[0]).backward()
            mask = batch["attention_mask"].to(wide)  # [B, T]
            tokens += int(mask.sum())
            examples += mask.shape[0]
            for layer, context in contexts.items():
                # [B, T, heads, dh] -> per-token gate gradient [B, T, heads]
                product = _widened(context.detach()) * _widened(context.grad)
                per_token = product.sum(-1).to(wide)
                if per_token_abs:
                    per_token = per_token.abs()
                summed = (per_token * mask[..., None]).sum((0, 1))
                importance[layer, list(plan.kept_heads[layer])] += summed.cpu().double()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    # From the last layer with a working head on, only the first token carries gradient.
    working = [bool(h) for h in plan.kept_heads]
    if gates is not None:  # gated off entirely: as good as removed
        working = [w and bool(g.abs().sum() > 0) for w, g in zip(working, gates.cpu(), strict=True)]
    last = max((i for i, w in enumerate(working) if w), default=plan.num_layers - 1)
    importance[:last] /= max(tokens, 1)
    importance[last:] /= max(examples, 1)
    return importance.float()


def _widened(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision products summed over head_size lose digits (or overflow in float16)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def normalize_per_layer(scores: torch.Tensor, eps: float = 1e-20) -> torch.Tensor:
    """Divide each layer's scores by their L2 norm (Michel et al.: important for global ranking)."""
    return scores / scores.norm(dim=-1, keepdim=True).clamp_min(eps)

"""How alike two heads' attention maps are: the cosine of the flattened maps, per example,
averaged over data. Peer Distillation's optional pairing (methods.md §3(b)) matches each pruned
head to its most similar retained head by it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from prunekit.device import module_device
from prunekit.models.surgery import current_plan
from prunekit.scoring.maps import attention_maps

__all__ = ["attention_map_similarity"]


@torch.no_grad()
def attention_map_similarity(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]
) -> torch.Tensor:
    """``[L, H, H]`` mean cosine similarity between the heads' attention maps (padding rows and
    columns left out), in original head indices; rows and columns of removed heads are NaN.
    The model must return attention maps (eager attention)."""
    plan = current_plan(model)
    device = module_device(model)
    was_training = model.training
    model.eval()
    total = torch.zeros(plan.num_layers, plan.num_heads, plan.num_heads, dtype=torch.float64)
    count = 0
    for batch in batches:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        attentions = attention_maps(model, inputs)
        mask = inputs["attention_mask"].to(attentions[0].dtype)
        pairs = (mask[:, :, None] * mask[:, None, :]).flatten(1)[:, None, :]  # [B, 1, T*T]
        for layer, (attention, kept) in enumerate(zip(attentions, plan.kept_heads, strict=True)):
            if not kept:
                continue
            maps = nn.functional.normalize(attention.flatten(2) * pairs, dim=-1)  # [B, n, T*T]
            cosine = (maps @ maps.transpose(1, 2)).sum(0).cpu().double()  # MPS has no float64
            index = torch.tensor(kept)
            total[layer, index[:, None], index[None, :]] += cosine
        count += int(mask.shape[0])
    model.train(was_training)
    similarity = total / max(count, 1)
    for layer, kept in enumerate(plan.kept_heads):
        gone = sorted(set(range(plan.num_heads)) - set(kept))
        similarity[layer, gone, :] = float("nan")
        similarity[layer, :, gone] = float("nan")
    return similarity.float()

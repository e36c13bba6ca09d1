"""The per-head decomposition sums to the attention output on every family, dense and pruned."""

from __future__ import annotations

import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import PruningPlan, apply_plan
from prunekit.models import get_adapter
from prunekit.models.head_outputs import AttentionOutputs, attention_dropout_off

L, H, F = TINY["layers"], TINY["heads"], TINY["ffn"]


def outputs_of_attention(model) -> dict[int, torch.Tensor]:
    """The output projections' outputs, recorded by plain hooks (the reference)."""
    adapter, seen, handles = get_adapter(model), {}, []
    for layer in range(L):
        module = adapter.layer_modules(model, layer).attn_out.get()
        handles.append(
            module.register_forward_hook(lambda m, a, o, layer=layer: seen.__setitem__(layer, o))
        )
    return seen, handles


def check(model) -> None:
    seen, handles = outputs_of_attention(model)
    with torch.no_grad(), AttentionOutputs(model, per_head=True) as recorded:
        model(**tiny_batch())
    for handle in handles:
        handle.remove()
    adapter = get_adapter(model)
    for layer in range(L):
        bias = adapter.layer_modules(model, layer).attn_out.get().bias
        heads = recorded.heads[layer]
        assert heads.shape[2] == len(recorded.kept[layer])
        total = heads.sum(2) + bias
        assert torch.allclose(total, seen[layer], atol=1e-5), layer
        assert torch.allclose(recorded.sums[layer] + bias, seen[layer], atol=1e-6)


def test_decomposition_sums_to_the_attention_output(family):
    check(tiny_model(family))


def test_decomposition_on_a_pruned_model(family):
    plan = PruningPlan.build(
        num_layers=L, num_heads=H, intermediate_size=F, kept_heads=[[0, 2], [], [1, 2, 3]]
    )
    check(apply_plan(tiny_model(family), plan))


def test_attention_dropout_off_gives_clean_maps_in_train_mode_and_restores_dropout(family):
    model = tiny_model(family, attn="eager").train()
    batch = tiny_batch()

    def row_sums(attentions):  # of real probabilities: 1 per query row
        return torch.stack([a.sum(-1) for a in attentions])

    with torch.no_grad():  # the maps a model returns in train mode are after dropout
        noisy = row_sums(model(**batch, output_attentions=True).attentions)
    assert not torch.allclose(noisy, torch.ones_like(noisy), atol=1e-3)
    with attention_dropout_off(model), torch.no_grad():
        clean = row_sums(model(**batch, output_attentions=True).attentions)
    assert torch.allclose(clean, torch.ones_like(clean), atol=1e-5)
    probabilities = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert 0.1 in probabilities and 0.0 not in probabilities  # restored on exit

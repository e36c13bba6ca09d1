"""Head pruning of a model that is already sparse: the output holds the model's own masks
file and the method's plan.json with its own, and both read back."""

from __future__ import annotations

import pytest
from conftest import glue_dir

from prunekit import PruningPlan, current_plan, load
from prunekit.recipes.prune import PruneConfig, run_prune

pytestmark = pytest.mark.integration


def test_heads_pruned_from_a_sparse_model_reload_with_their_plan(
    tiny_bert_with_real_tokenizer, tmp_path
):
    common = dict(
        task="rte",
        data_dir=glue_dir(),
        train_samples=16,
        eval_max_samples=16,
        allow_untrained_head=True,
        progress=False,
    )
    sparse, heads = tmp_path / "sparse", tmp_path / "heads"
    run_prune(
        PruneConfig(
            model=str(tiny_bert_with_real_tokenizer),
            out=sparse,
            method="magnitude",
            options={"sparsity": 0.5, "epochs": 1, "batch_size": 8, "events": 1},
            **common,
        )
    )
    run_prune(PruneConfig(model=str(sparse), out=heads, method="random", heads=0.5, **common))
    model = load(heads)  # its masks file was stamped for another plan before the fix
    plan = PruningPlan.read(heads / "plan.json")
    assert plan.sparse_masks == "masks.safetensors" and plan.method == "random"
    assert current_plan(model).heads_kept == plan.heads_kept == 4
    assert plan.masks.keys() == current_plan(model).masks.keys()

"""Head pruning of a model that is already sparse: the output holds the model's own masks
file and the method's plan.json with its own, and both read back."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, glue_dir, tiny_model

from prunekit import PruningPlan, current_plan, load
from prunekit.recipes.prune import PruneConfig, run_prune

pytestmark = pytest.mark.integration


def test_heads_pruned_from_a_sparse_model_reload_with_their_plan(
    tiny_bert_with_real_tokenizer, tmp_path
):
    common = dict(
        task="rte",
        data_dir=glue_dir(),
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
            train_samples=16,  # random, below, reads no train split: it would be refused there
            **common,
        )
    )
    run_prune(PruneConfig(model=str(sparse), out=heads, method="random", heads=0.5, **common))
    model = load(heads)  # its masks file was stamped for another plan before the fix
    plan = PruningPlan.read(heads / "plan.json")
    assert plan.sparse_masks == "masks.safetensors" and plan.method == "random"
    assert current_plan(model).heads_kept == plan.heads_kept == 4
    assert plan.masks.keys() == current_plan(model).masks.keys()


@pytest.mark.parametrize("name", ["model.safetensors", "model_sparse.safetensors"])
def test_a_method_plan_never_takes_a_weight_file_name(tmp_path, name):
    from prunekit.models.checkpoint import write_model_files

    model = tiny_model("bert")
    dense = PruningPlan.dense(TINY["layers"], TINY["heads"], TINY["ffn"])
    masks = {"0.query": torch.ones(TINY["hidden"], TINY["hidden"], dtype=torch.bool)}
    write_model_files(model, tmp_path / "m", None, method_plan=dense.with_masks(masks, name))
    plan = PruningPlan.read(tmp_path / "m" / "plan.json")
    assert plan.sparse_masks == "masks.safetensors"
    load(tmp_path / "m")  # the weights are the model's, not the masks


def test_the_python_apis_recovery_trains_with_the_runs_seed(
    tiny_bert_with_real_tokenizer, tmp_path, monkeypatch
):
    import prunekit.recipes.prune as prune_recipe
    from prunekit.train import TrainConfig

    seeds = []
    real_recover = prune_recipe.recover

    def recording(model, data, config, *args, **kwargs):
        seeds.append(config.seed)
        return real_recover(model, data, config, *args, **kwargs)

    monkeypatch.setattr(prune_recipe, "recover", recording)
    run_prune(
        PruneConfig(
            model=str(tiny_bert_with_real_tokenizer),
            out=tmp_path / "pruned",
            method="random",
            heads=0.5,
            seed=3,
            recover=TrainConfig(max_steps=1, batch_size=8),
            recover_max_samples=8,
            task="rte",
            data_dir=glue_dir(),
            eval_max_samples=8,
            allow_untrained_head=True,
            progress=False,
        )
    )
    assert seeds == [3]

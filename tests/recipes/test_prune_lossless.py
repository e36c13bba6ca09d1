"""prune's budget mode for a method that trains (peer's --lossless): the whole recipe runs, and
the files it writes say what the search chose and how the model does on dev."""

from __future__ import annotations

import json

import pytest
from conftest import glue_dir

from prunekit import current_plan, load
from prunekit.recipes.prune import PruneConfig, run_prune

pytestmark = pytest.mark.integration


def test_peer_lossless_writes_its_model_and_a_certificate_with_the_dev_drop(
    tiny_bert_with_real_tokenizer, tmp_path
):
    out = tmp_path / "lossless"
    record = run_prune(
        PruneConfig(
            model=str(tiny_bert_with_real_tokenizer),
            out=out,
            method="peer",
            task="rte",
            data_dir=glue_dir(),
            min_heads_per_layer=3,  # of 4: only 0.25 (keep 6 of 8) can hold it
            train_samples=16,
            eval_max_samples=32,
            options={
                "budget": 100.0,  # every fraction passes: the largest allowed is chosen
                "grid": (0.25, 0.5, 0.75),
                "epochs": 1,
                "batch_size": 8,
                "importance_examples": 16,
            },
            allow_untrained_head=True,
            progress=False,
        )
    )
    certificate = json.loads((out / "certificate.json").read_text())
    assert certificate["budget"] == 100.0 and certificate["split"] == "validation"
    assert [f for f, _, _ in certificate["tried"]] == [0.25]  # the floor ruled out the others
    dev = certificate["dev"]
    assert dev["drop"] == pytest.approx(dev["before"] - dev["after"])
    assert dev["violation"] == (dev["drop"] > 100.0)
    assert record["heads"]["after"] == 6 and min(record["heads"]["per_layer"]) == 3
    assert current_plan(load(out)).heads_per_layer == record["heads"]["per_layer"]


def test_the_dev_drop_is_a_violation_exactly_when_it_exceeds_the_budget():
    """Reported beside the certificate, never used: a dev drop over the budget says so."""
    from prunekit.recipes.prune import _certificate

    def record(before, after):
        return {
            "before": {"dev": {"primary": before}},
            "after_pruning": {"dev": {"primary": after}},
        }

    over = _certificate({"budget": 0.5}, record(80.0, 79.0))["dev"]
    assert over == {"before": 80.0, "after": 79.0, "drop": 1.0, "violation": True}
    assert _certificate({"budget": 1.0}, record(80.0, 79.0))["dev"]["violation"] is False
    assert _certificate({"budget": 0.0}, record(80.0, 80.5))["dev"]["drop"] == -0.5
    assert _certificate(None, record(80.0, 79.0)) is None


def test_a_prune_killed_after_its_method_trained_reads_the_training_back(
    tiny_bert_with_real_tokenizer, tmp_path, monkeypatch
):
    """magnitude trains the model itself; a kill while recovering (or evaluating) must not
    throw that training away: the rerun resumes the method at its last step."""
    import prunekit.recipes.prune as prune_recipe
    from prunekit.methods import registry

    class Killed(Exception):
        pass

    config = PruneConfig(
        model=str(tiny_bert_with_real_tokenizer),
        out=tmp_path / "sparse",
        method="magnitude",
        task="rte",
        data_dir=glue_dir(),
        train_samples=16,
        eval_max_samples=16,
        options={"sparsity": 0.5, "events": 2, "epochs": 1, "batch_size": 8},
        allow_untrained_head=True,
        recover=prune_recipe.TrainConfig(max_steps=1, batch_size=8),
        progress=False,
    )
    resumed_from = []
    original = registry.finetune

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        resumed_from.append((result.resumed_from_step, result.steps))
        return result

    monkeypatch.setattr(registry, "finetune", spy)

    def killed_recovery(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(prune_recipe, "recover", killed_recovery)
    with pytest.raises(Killed):
        run_prune(config)
    assert resumed_from == [(0, 2)]  # the method trained its two steps
    monkeypatch.undo()
    monkeypatch.setattr(registry, "finetune", spy)
    run_prune(config)
    assert resumed_from[1] == (2, 2)  # read back at its last step: nothing trained again
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # work folder gone

"""Dense recipes: one per task, flags override them, and the dense cache keys on all of it."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest
from pydantic import ValidationError

from prunekit.errors import ConfigError
from prunekit.recipes.finetune import finetune_config
from prunekit.train import task_recipes
from prunekit.train.task_recipes import TASK_RECIPES, TaskRecipe, dense_key, recipe_for


def test_every_glue_task_has_a_recipe():
    assert set(TASK_RECIPES) == {
        "cola",
        "sst2",
        "mrpc",
        "stsb",
        "qqp",
        "mnli",
        "qnli",
        "rte",
        "wnli",
    }
    assert recipe_for("SST-2") == TASK_RECIPES["sst2"]  # task aliases resolve


def test_finetune_uses_the_task_recipe_and_flags_override_it(tmp_path):
    recipe = TaskRecipe(learning_rate=7e-5, epochs=4, max_train_samples=1234, max_seq_length=96)
    TASK_RECIPES["rte"], saved = recipe, TASK_RECIPES["rte"]
    try:
        plain = finetune_config("rte", tmp_path / "a", seed=3)
        assert plain.train.learning_rate == 7e-5 and plain.train.epochs == 4
        assert plain.train.seed == 3
        assert plain.max_train_samples == 1234 and plain.max_seq_length == 96
        custom = finetune_config(
            "rte", tmp_path / "b", learning_rate=1e-4, epochs=None, max_train_samples=10
        )
        assert custom.train.learning_rate == 1e-4  # overridden
        assert custom.train.epochs == 4  # None keeps the recipe's
        assert custom.max_train_samples == 10
    finally:
        TASK_RECIPES["rte"] = saved


def test_bad_overrides_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="learning_rate"):
        finetune_config("rte", tmp_path / "x", learning_rate=-1.0)


def test_the_dense_cache_key_changes_with_model_task_seed_and_recipe():
    recipe = TaskRecipe(learning_rate=5e-5, epochs=3)
    base = dense_key("default", "rte", 0, recipe)
    assert base.startswith("rte-default-s0-")
    others = {
        dense_key("other/model", "rte", 0, recipe),
        dense_key("default", "mrpc", 0, recipe),
        dense_key("default", "rte", 1, recipe),
        dense_key("default", "rte", 0, recipe.model_copy(update={"epochs": 4})),
    }
    assert base not in others and len(others) == 4
    # whether the recipe came from the sweep does not change the weights, nor the key
    assert dense_key("default", "rte", 0, recipe.model_copy(update={"swept": True})) == base
    # SST-2's models trained before its validation carve took whole sentences are not reused
    assert dense_key("default", "sst2", 0, recipe).endswith(f"-{recipe.digest()}-by-sentence")


def test_a_launch_that_changes_the_training_keys_its_own_dense_model(monkeypatch):
    """`accelerate launch` with several processes (a larger effective batch) or mixed
    precision on an fp32 recipe trains another model than one plain process."""
    recipe = TaskRecipe(learning_rate=5e-5, epochs=3)
    base = dense_key("default", "rte", 0, recipe)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert dense_key("default", "rte", 0, recipe) == base + "-x2"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert dense_key("default", "rte", 0, recipe) == base + "-x2-bf16"
    monkeypatch.setenv("WORLD_SIZE", "1")
    bf16 = recipe.model_copy(update={"precision": "bf16"})  # the recipe's own bf16 wins
    launched = dense_key("default", "rte", 0, bf16)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert dense_key("default", "rte", 0, bf16) == launched
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert dense_key("default", "rte", 0, recipe) == base


def test_local_models_of_the_same_folder_name_get_their_own_cache_keys(tmp_path):
    recipe = TaskRecipe(learning_rate=5e-5, epochs=3)
    for where, weights in (("a", b"one"), ("b", b"two"), ("c", b"one")):
        (tmp_path / where / "model").mkdir(parents=True)
        (tmp_path / where / "model" / "config.json").write_text("{}")
        (tmp_path / where / "model" / "model.safetensors").write_bytes(weights)
    a, b, c = (dense_key(str(tmp_path / w / "model"), "rte", 0, recipe) for w in "abc")
    assert a != b and a == c  # what the folder holds decides, not where it is
    assert a.startswith("rte-model-") and a.endswith(f"-s0-{recipe.digest()}")
    (tmp_path / "a" / "model" / "model.safetensors").write_bytes(b"overwritten in place")
    assert dense_key(str(tmp_path / "a" / "model"), "rte", 0, recipe) != a


@pytest.mark.parametrize(("field", "value"), [("precision", "bf16"), ("group_by_length", True)])
def test_later_fields_key_the_cache_only_when_not_at_their_default(tmp_path, field, value):
    recipe = TaskRecipe(learning_rate=5e-5, epochs=3)
    assert field not in recipe.settings()
    # the key of the models cached before these fields existed (runs/dense/*-0426aa9703),
    # moved by the shuffle's new order only (SHUFFLE_ORDER: those models' seeds shared orders)
    before = {k: v for k, v in recipe.settings().items() if k != "shuffle_order"}
    assert hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:10] == (
        "0426aa9703"
    )
    assert recipe.digest() != "0426aa9703"
    changed = recipe.model_copy(update={field: value})
    assert dense_key("default", "rte", 0, changed) != dense_key("default", "rte", 0, recipe)
    assert getattr(changed.train_config(seed=0), field) == value
    config = finetune_config("rte", tmp_path / "a", **{field: value})
    assert getattr(config.train, field) == value


def test_hub_models_of_one_name_in_two_organisations_get_two_cache_entries():
    recipe = TaskRecipe(learning_rate=5e-5, epochs=3)
    a, b = (dense_key(f"{org}/bert-mini", "rte", 0, recipe) for org in ("orgA", "orgB"))
    assert a != b and "bert-mini" in a


def test_two_jobs_needing_one_dense_model_fine_tune_it_once(tmp_path, monkeypatch):
    """The second waits for the first's lock, then finds the model finished."""
    calls = []

    def fake_finetune(config, on_step=None):
        calls.append(config.out)
        time.sleep(0.5)  # the other job arrives while this one trains
        config.out.mkdir(parents=True)
        (config.out / "metrics.json").write_text("{}")

    monkeypatch.setattr(task_recipes, "finetune_task", fake_finetune)
    found = []

    def job():
        found.append(task_recipes.cached_dense_model("default", "rte", 0, root=tmp_path))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and found[0] == found[1] == calls[0]


def test_a_train_cap_of_zero_lifts_the_recipes_subset_and_bad_lengths_are_refused(tmp_path):
    assert recipe_for("mnli").max_train_samples == 20000
    assert finetune_config("mnli", tmp_path).max_train_samples == 20000
    assert finetune_config("mnli", tmp_path, max_train_samples=0).max_train_samples is None
    assert finetune_config("mnli", tmp_path, max_train_samples=50).max_train_samples == 50
    with pytest.raises(ConfigError, match="--max-seq-length must be at least 2, got 0"):
        finetune_config("rte", tmp_path, max_seq_length=0)
    with pytest.raises(ConfigError, match="--max-train-samples"):
        finetune_config("rte", tmp_path, max_train_samples=-1)


def test_a_cached_model_fine_tuned_on_other_train_data_is_refused(tmp_path):
    """The key names model, task, seed and recipe; the data is checked on reuse."""
    from conftest import glue_dir

    from prunekit.data import examples_digest

    if glue_dir() is None:
        pytest.skip("needs GLUE data")
    out = task_recipes.dense_model_dir("default", "rte", 0, root=tmp_path)
    out.mkdir(parents=True)
    ours = examples_digest("rte", "train", glue_dir(), 0)
    (out / "metrics.json").write_text(f'{{"train_examples_digest": "{ours}"}}')
    found = task_recipes.cached_dense_model("default", "rte", 0, data_dir=glue_dir(), root=tmp_path)
    assert found == out
    (out / "metrics.json").write_text('{"train_examples_digest": "a smoke run of 32 rows"}')
    with pytest.raises(ConfigError, match="other rte train data"):
        task_recipes.cached_dense_model("default", "rte", 0, data_dir=glue_dir(), root=tmp_path)


def test_compares_train_cap_of_zero_lifts_the_recipes_subset_as_finetunes_does():
    from prunekit.recipes.compare_config import dense_recipe

    assert dense_recipe("mnli", max_train_samples=0, whole_split=0).max_train_samples is None
    assert dense_recipe("mnli", max_train_samples=50, whole_split=0).max_train_samples == 50
    assert dense_recipe("mnli", whole_split=0) is None  # nothing asked: the recipe as it is
    lifted = dense_recipe("rte", max_train_samples=0, whole_split=0)
    assert lifted.digest() == recipe_for("rte").digest()  # RTE's recipe is the whole split


def test_a_seed_other_than_0_is_keyed_by_the_train_examples_it_trained_on(tmp_path):
    """Every seed trains on train less the validation carve of SPLIT_SEED: an edit of a row
    that seed 1 would carve (and seed 0 trains on) is other train data; entries written by
    older versions, which hashed train less seed 1's carve, are still found."""
    from prunekit.data import examples_digest, load_examples, train_examples_digest

    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    rows = [f"{i}\tA man walks {i}.\tA person moves.\t{'entailment' if i % 2 else 'not_entailment'}"
            for i in range(40)]  # fmt: skip
    (rte / "train.tsv").write_text(header + "\n".join(rows) + "\n")
    data_dir = tmp_path / "glue"
    carved = {e.text_a for e in load_examples("rte", "validation", data_dir, 1)}
    carved -= {e.text_a for e in load_examples("rte", "validation", data_dir, 0)}
    old = examples_digest("rte", "train", data_dir, 1)
    out = task_recipes.dense_model_dir("default", "rte", 1, root=tmp_path / "cache")
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"train_examples_digest": old}))
    found = task_recipes.cached_dense_model("default", "rte", 1, data_dir=data_dir, root=out.parent)
    assert found == out  # an older entry: still found
    (out / "metrics.json").write_text(
        json.dumps({"train_examples_digest": train_examples_digest("rte", data_dir)})
    )
    index = next(i for i, row in enumerate(rows) if row.split("\t")[1] in carved)
    rows[index] = rows[index].replace("A man walks", "A woman runs")
    (rte / "train.tsv").write_text(header + "\n".join(rows) + "\n")
    assert examples_digest("rte", "train", data_dir, 1) == old  # the old key misses the edit
    with pytest.raises(ConfigError, match="other rte train data"):
        task_recipes.cached_dense_model("default", "rte", 1, data_dir=data_dir, root=out.parent)


def test_a_launched_job_polls_for_a_held_lock_instead_of_waiting_in_a_barrier(
    tmp_path, monkeypatch
):
    """Under `accelerate launch` the ranks must not sit in one barrier while another job holds
    the dense cache's lock for an hour (gloo's timeout is 30 min): the main process tries the
    lock round after round and tells the others each time."""
    monkeypatch.setattr(task_recipes, "launched", lambda: True)
    monkeypatch.setattr(task_recipes, "is_main_process", lambda: True)
    told = []
    monkeypatch.setattr(task_recipes, "main_process_value", lambda v: told.append(v) or v)
    monkeypatch.setattr(task_recipes, "LOCK_POLL_SECONDS", 0.05)
    path = tmp_path / ".model.lock"
    entered = threading.Event()

    def second_job():
        with task_recipes._locked(path):
            entered.set()

    with task_recipes._file_lock(path):  # another job's fine-tune
        waiting = threading.Thread(target=second_job)
        waiting.start()
        time.sleep(0.3)
        assert not entered.is_set()  # still waiting: the lock is held
    waiting.join(timeout=5)
    assert entered.is_set()
    assert told[-1] is True and told.count(False) >= 2  # several rounds, each one told
    assert task_recipes._try_file_lock(path) is not None  # and released after the block

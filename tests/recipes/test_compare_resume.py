"""compare: a killed sweep resumes without repeating a run and ends with the same rows."""

from __future__ import annotations

import json
import re

import pytest
from conftest import glue_dir

from prunekit.data import TaskData
from prunekit.device import cpu_name
from prunekit.errors import ConfigError
from prunekit.models import load_tokenizer
from prunekit.recipes.compare import CompareConfig, read_results, run_compare
from prunekit.train import DistillConfig, TrainConfig
from prunekit.train.task_recipes import TaskRecipe

pytestmark = pytest.mark.integration
STABLE = ("key", "validation", "dev", "kept_heads", "heads_kept", "dense_dev")


def sweep_config(model, out) -> CompareConfig:
    return CompareConfig(
        task="rte",
        out=out,
        model=str(model),
        methods=("random", "hisp"),
        fractions=(0.25, 0.5),
        budgets=(0.0,),
        budget_methods=("astar",),
        method_options={"astar": {"max_evals": 40, "branching": 3}},
        seeds=(0, 1),
        data_dir=glue_dir(),
        recipe=TaskRecipe(
            learning_rate=5e-5, epochs=1, max_steps=2, batch_size=8, max_train_samples=32
        ),
        dense_cache=out.parent / "dense",  # shared by every sweep of a test, as in real use
        recover=TrainConfig(max_steps=1, batch_size=8),
        recover_max_samples=16,
        search_samples=16,
        eval_max_samples=24,
        time_speed=False,
        progress=False,
    )


def stable(rows):
    return [{k: row[k] for k in STABLE} for row in rows]


def test_killed_sweep_resumes_to_the_same_rows(tiny_bert_with_real_tokenizer, tmp_path):
    reference = run_compare(sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "full"))
    assert len(reference) == 2 * 2 * 2 * 2 + 2  # + one A* budget point per seed

    class Killed(Exception):
        pass

    seen = []

    def kill_after_five(row):
        seen.append(row["key"])
        if len(seen) == 5:
            raise Killed

    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "killed")
    with pytest.raises(Killed):
        run_compare(config, after_run=kill_after_five)
    partial = read_results(config.out / "results.jsonl")
    assert 5 <= len(partial) < 18

    resumed_keys = []
    rows = run_compare(config, after_run=lambda row: resumed_keys.append(row["key"]))
    assert not set(resumed_keys) & {row["key"] for row in partial}  # nothing repeated
    on_disk = read_results(config.out / "results.jsonl")
    assert len(on_disk) == 18 and len({r["key"] for r in on_disk}) == 18
    by_key = {r["key"]: r for r in stable(rows)}
    assert by_key == {r["key"]: r for r in stable(reference)}
    # (hidden beside them: each model's lock, which two jobs needing it take turns on)
    cached = sorted(p.name for p in (tmp_path / "dense").iterdir() if not p.name.startswith("."))
    # one dense model per seed (a local model's key carries a digest of its files)
    assert [re.search(r"-s(\d+)-", name)[1] for name in cached] == ["0", "1"]
    for name in cached:
        recipe = json.loads((tmp_path / "dense" / name / "recipe.json").read_text())
        assert (
            recipe["task"] == "rte"
            and recipe["max_steps"] == 2
            and recipe["seed"] == int(re.search(r"-s(\d+)-", name)[1])
            and recipe["shuffle_order"] == 2  # shuffled batches: the order the key names
        )


def test_budget_points_carry_a_certificate(tiny_bert_with_real_tokenizer, tmp_path):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "budget").model_copy(
        update={"methods": (), "seeds": (0,)}
    )
    (row,) = run_compare(config)
    assert row["method"] == "astar-budget" and row["budget"] == 0.0
    assert row["certificate"]["final_drop"] <= 0.0
    assert row["dev_violation"] == (row["dense_dev"] - row["dev"] > 0.0)
    # what the majority class scores on the same (capped) dev examples
    data = TaskData.for_task("rte", load_tokenizer(tiny_bert_with_real_tokenizer), glue_dir(), 0)
    labels = data.dataset("dev", config.eval_max_samples).labels.tolist()
    share = max(labels.count(0), labels.count(1)) / len(labels)
    assert row["dev_constant"] == pytest.approx(100 * share) and share < 1
    from prunekit.recipes.report import run_report

    text = run_report(config.out).read_text()
    assert "Budget mode: the method picks the head count" in text
    assert "| astar | 0 | 0 |" in text


def test_fixed_k_rows_say_how_the_search_got_its_set(tiny_bert_with_real_tokenizer, tmp_path):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "fixed").model_copy(
        update={
            "methods": ("astar",),
            "budgets": (),
            "fractions": (0.75,),
            "seeds": (0,),
            "regimes": ("r0",),
            "method_options": {"astar": {"max_evals": 2, "branching": 3}},
        }
    )
    (row,) = run_compare(config)
    assert row["heads_removed"] == 6 and row["certificate"]["mode"] == "fixed-k"
    assert row["certificate"]["capped"] and 0 < row["certificate"]["completed_heads"] <= 6


def test_budgets_share_measured_states_and_small_splits_are_searched_whole(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "memo").model_copy(
        update={"methods": (), "seeds": (0,)}
    )
    (first,) = run_compare(config)
    assert list((config.out / "work" / "cache" / "astar").glob("*.jsonl"))
    rows = run_compare(config.model_copy(update={"budgets": (0.5,)}))
    (second,) = [r for r in rows if r["budget"] == 0.5]
    # a0 and the single-head ablations at least were measured by the B = 0 search already
    assert second["certificate"]["evaluations_from_memo"] >= 1 + 2 * 4
    assert first["certificate"]["evaluations_from_memo"] == 0

    whole = config.model_copy(
        update={"budgets": (1.0,), "search_samples": 10**6, "out": config.out.parent / "whole"}
    )
    (row,) = [r for r in run_compare(whole) if r["budget"] == 1.0]
    # RTE's carved validation split (249) in halves: the search sees one, the certificate the other
    assert row["certificate"]["search_examples"] == 124
    assert row["certificate"]["certify_examples"] == 125
    assert row["certificate"]["certified"]
    assert row["certificate"]["upper_bound"] <= 1.0
    # the search's own set travels with the row (benchmarks judge it on dev)
    searched = {tuple(h) for h in row["certificate"]["search_removed"]}
    assert len(searched) >= row["heads_removed"]


def test_speed_in_both_runtimes(tiny_bert_with_real_tokenizer, tmp_path):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "speed").model_copy(
        update={
            "methods": ("random",),
            "fractions": (0.5,),
            "seeds": (0,),
            "regimes": ("r0",),
            "budgets": (),
            "time_speed": True,
            "time_onnx": True,
        }
    )
    (row,) = run_compare(config)
    assert row["measured_speedup"] > 0 and row["onnx_speedup"] > 0
    assert row["onnx_vs_torch_dense"] > 0
    assert isinstance(row["onnx_timing_warnings"], list)  # the ORT call's own spread check
    from prunekit.recipes.report import run_report

    text = run_report(config.out).read_text()
    assert "pruned in ORT vs dense in torch" in text


def test_distilled_recovery_leaves_the_shared_dense_model_trainable(
    tiny_bert_with_real_tokenizer, tmp_path
):
    """Every R1 run copies the dense model and distils from it: the second run must still
    find weights to train (the teacher used to be frozen in place)."""
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "kd").model_copy(
        update={
            "methods": ("random",),
            "seeds": (0,),
            "regimes": ("r1",),
            "budgets": (),
            "distill": DistillConfig(),
        }
    )
    rows = run_compare(config)
    assert [r["regime"] for r in rows] == ["r1", "r1"]
    assert all(r["r1_source"] == "recovery" and r["train_steps"] == 1 for r in rows)
    assert {r["device"] for r in rows} == {"cpu"}  # where it trained, for GPU-run benchmarks
    assert {r["cpu"] for r in rows} == {cpu_name()}  # and on which processor


def test_a_method_that_trains_reports_its_own_model_as_r1_on_the_same_budget(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "peer").model_copy(
        update={
            "methods": ("peer",),
            "fractions": (0.5,),
            "seeds": (0,),
            "budgets": (),
            "method_options": {"peer": {"batch_size": 8}},
        }
    )
    r0, r1 = run_compare(config)
    assert (r0["regime"], r1["regime"]) == ("r0", "r1")
    assert r1["r1_source"] == "method" and r1["train_steps"] == r1["budget_steps"] == 1
    assert r0["kept_heads"] == r1["kept_heads"] and r0["heads_removed"] == 4


def test_a_budget_row_of_a_training_method_is_its_own_model(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "lossless").model_copy(
        update={
            "methods": (),
            "seeds": (0,),
            "budgets": (100.0,),
            "budget_methods": ("peer",),
            "method_options": {"peer": {"batch_size": 8, "grid": (0.25, 0.5)}},
        }
    )
    (row,) = run_compare(config)
    assert row["method"] == "peer-budget" and row["trained_by_method"]
    assert row["fraction"] == 0.5  # a budget of 100 points accepts the largest fraction


def test_loop_options_reach_recovery_and_every_training_method_unless_set(tmp_path):
    from prunekit.recipes.compare_config import with_loop_options

    config = CompareConfig(
        task="rte",
        out=tmp_path,
        methods=("random", "hisp", "l0"),
        budgets=(0.5,),
        budget_methods=("peer",),
        group_by_length=True,
        precision="bf16",
        method_options={"l0": {"steps": 5, "group_by_length": False}},
    )
    applied = with_loop_options(config)
    assert applied.recover.group_by_length and applied.recover.precision == "bf16"
    assert applied.method_options["l0"] == {
        "steps": 5,
        "group_by_length": False,  # said explicitly: kept
        "precision": "bf16",
    }
    assert applied.method_options["peer"] == {"group_by_length": True, "precision": "bf16"}
    assert "random" not in applied.method_options and "hisp" not in applied.method_options
    plain = CompareConfig(task="rte", out=tmp_path, recover=TrainConfig(precision="bf16"))
    assert with_loop_options(plain) is plain  # defaults leave what was given


def test_a_run_dir_refuses_a_sweep_of_other_result_settings(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "settings").model_copy(
        update={"methods": ("random",), "fractions": (0.5,), "seeds": (0,), "budgets": ()}
    )
    run_compare(config)
    # other methods, fractions, seeds or device: more rows of the same settings
    run_compare(config.model_copy(update={"fractions": (0.25,), "device": "cpu"}))
    for change, named in (
        ({"recover_max_samples": 8}, "recover_max_samples"),
        ({"search_samples": 8}, "search_samples"),
        ({"method_options": {"random": {}}, "precision": "bf16"}, "precision"),
    ):
        with pytest.raises(ConfigError, match=named):
            run_compare(config.model_copy(update=change))
    l0 = config.model_copy(update={"methods": ("l0",), "method_options": {"l0": {"steps": 1}}})
    run_compare(l0.model_copy(update={"regimes": ("r0",)}))
    with pytest.raises(ConfigError, match="method_options.l0"):
        run_compare(l0.model_copy(update={"method_options": {"l0": {"steps": 2}}}))
    # the run dir records l0's settings with defaults filled in: had a default changed since
    # (here: batch_size), the same options are refused too
    recorded = json.loads((config.out / "config.json").read_text())
    assert recorded["method_settings"]["l0"]["steps"] == 1
    assert recorded["method_settings"]["random"] is not None  # the earlier sweep's kept
    recorded["method_settings"]["l0"]["batch_size"] += 1
    (config.out / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="method_options.l0"):
        run_compare(l0.model_copy(update={"regimes": ("r0",)}))
    assert len(read_results(config.out / "results.jsonl")) == 2 * 2 + 1  # random R0+R1, l0 R0


def test_a_later_sweep_reads_the_speed_of_a_model_timed_already(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "timing").model_copy(
        update={
            "methods": ("random",),
            "fractions": (0.5,),
            "seeds": (0,),
            "budgets": (),
            "regimes": ("r0",),
            "time_speed": True,
        }
    )
    (r0,) = run_compare(config)
    (timed,) = (config.out / "work" / "timing").glob("random-0.5000-s0-*.json")
    rows = run_compare(config.model_copy(update={"regimes": ("r1",)}))
    (r1,) = [r for r in rows if r["regime"] == "r1"]
    assert r1["measured_speedup"] == r0["measured_speedup"] > 0  # read back, not timed again
    assert json.loads(timed.read_text())["measured_speedup"] == r0["measured_speedup"]


def test_a_run_dir_refuses_rows_of_another_dense_model(tiny_bert_with_real_tokenizer, tmp_path):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "dense-id").model_copy(
        update={"methods": ("random",), "fractions": (0.5,), "seeds": (0,), "budgets": ()}
    )
    (row, *_) = run_compare(config.model_copy(update={"regimes": ("r0",)}))
    assert len(row["dense_digest"]) == 8
    results = config.out / "results.jsonl"
    # the rows came from a dense model other than the one this sweep's cache holds
    rows = [
        json.loads(line) | {"dense_digest": "0badc0de"} for line in results.read_text().splitlines()
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match="seed 0 rows of another dense model"):
        run_compare(config.model_copy(update={"regimes": ("r0",), "fractions": (0.25,)}))


def test_a_sweep_borrows_the_runs_another_dir_made_with_the_same_settings(
    tiny_bert_with_real_tokenizer, tmp_path
):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "lender").model_copy(
        update={"methods": ("random", "hisp"), "fractions": (0.5,), "seeds": (0,), "budgets": ()}
    )
    lent = {r["key"]: r for r in run_compare(config)}
    ran = []
    borrower = config.model_copy(
        update={
            "out": tmp_path / "borrower",
            "methods": ("hisp", "random"),
            "fractions": (0.25, 0.5),
            "borrow_from": (config.out, tmp_path / "missing"),
        }
    )
    rows = {r["key"]: r for r in run_compare(borrower, after_run=lambda r: ran.append(r["key"]))}
    borrowed = {k for k, r in rows.items() if r.get("borrowed_from") == str(config.out)}
    assert borrowed == set(lent)  # every 50% run of both methods and regimes, none run again
    assert sorted(ran) == sorted(k for k in rows if k.startswith(("hisp|0.2500", "random|0.2500")))
    assert all(rows[k]["dev"] == lent[k]["dev"] for k in borrowed)
    # other result settings lend nothing; another setting of one method lends the others
    for change, kept in (
        ({"recover_max_samples": 8}, set()),
        ({"method_options": {"hisp": {"normalize_layers": False}}}, {"random"}),
    ):
        other = borrower.model_copy(
            update={"out": tmp_path / f"other-{len(kept)}", "fractions": (0.5,), **change}
        )
        rows = run_compare(other)
        assert {r["method"] for r in rows if r.get("borrowed_from")} == kept
        assert len(rows) == 4


def test_r1_takes_the_plan_an_earlier_r0_sweep_decided(tiny_bert_with_real_tokenizer, tmp_path):
    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "memo").model_copy(
        update={
            "methods": ("l0",),
            "method_options": {"l0": {"steps": 2, "batch_size": 4}},
            "fractions": (0.5,),
            "seeds": (0,),
            "budgets": (),
        }
    )
    (r0,) = run_compare(config.model_copy(update={"regimes": ("r0",)}))
    (memo,) = (config.out / "work" / "plans").glob("l0-*.json")
    r1 = run_compare(config.model_copy(update={"regimes": ("r1",)}))[-1]
    assert r1["regime"] == "r1" and r1["kept_heads"] == r0["kept_heads"]
    assert r1["decision_seconds"] == r0["decision_seconds"]  # not decided again: read back
    # a method that trained weights keeps no plan: its R1 is its own model, decided again
    trained = config.model_copy(
        update={
            "out": tmp_path / "trained",
            "method_options": {"l0": {"steps": 2, "batch_size": 4, "train_weights": True}},
            "regimes": ("r0",),
        }
    )
    run_compare(trained)
    assert not (trained.out / "work" / "plans").exists()
    assert memo.is_file()


def test_a_run_dir_resumes_across_a_new_setting_only_when_it_is_marked_and_at_its_default(
    tiny_bert_with_real_tokenizer, tmp_path
):
    from prunekit.recipes.compare_config import run_dir_settings, settings_differ

    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "new-setting").model_copy(
        update={"methods": ("l0",), "budget_methods": ("peer",)}
    )
    recorded = run_dir_settings(config, ("peer",))
    assert settings_differ(config, recorded, ("l0", "peer")) == []
    # peer's `search` came after run dirs had recorded peer's settings, marked to resume at
    # its default (bisect, the search they ran)
    del recorded["method_settings"]["peer"]["search"]
    assert settings_differ(config, recorded, ("peer",)) == []
    descend = config.model_copy(update={"method_options": {"peer": {"search": "descend"}}})
    assert settings_differ(descend, recorded, ("peer",)) == ["method_options.peer"]
    # an unmarked setting missing from the record may have changed behaviour: refused
    del recorded["method_settings"]["l0"]["batch_size"]
    assert settings_differ(config, recorded, ("l0",)) == ["method_options.l0"]


def test_a_sweep_killed_mid_recovery_resumes_the_recovery_from_its_checkpoint(
    tiny_bert_with_real_tokenizer, tmp_path, monkeypatch
):
    import prunekit.recipes.compare as compare_recipe

    def one_recovered_run(out):
        return sweep_config(tiny_bert_with_real_tokenizer, out).model_copy(
            update={
                "methods": ("random",),
                "fractions": (0.5,),
                "budgets": (),
                "seeds": (0,),
                "recover": TrainConfig(max_steps=4, batch_size=4, checkpoint_every=1),
            }
        )

    reference = run_compare(one_recovered_run(tmp_path / "full"))

    class Killed(Exception):
        pass

    real_recover, resumed = compare_recipe.recover, []

    def recover(*args, kill: bool, **kwargs):
        def on_step(step, total, values):
            if kill and step == 3:  # before step 3's checkpoint: steps 1 and 2 are saved
                raise Killed

        kwargs.pop("on_step", None)  # the sweep's progress bar, replaced by the killer
        result = real_recover(*args, on_step=on_step, **kwargs)
        resumed.append(result.resumed_from_step)
        return result

    config = one_recovered_run(tmp_path / "killed")
    monkeypatch.setattr(compare_recipe, "recover", lambda *a, **k: recover(*a, kill=True, **k))
    with pytest.raises(Killed):
        run_compare(config)
    assert read_results(config.out / "results.jsonl") == []  # R0 and R1 are written together
    monkeypatch.setattr(compare_recipe, "recover", lambda *a, **k: recover(*a, kill=False, **k))
    rows = run_compare(config)
    assert resumed == [2]  # not from the start
    assert stable(rows) == stable(reference)
    assert not (config.out / "work" / "recover").exists() or not any(
        (config.out / "work" / "recover").iterdir()
    )  # deleted once the row was written


def test_a_task_spelled_otherwise_is_the_same_run_dir(tmp_path):
    config = CompareConfig(task="RTE", out=tmp_path / "sweep", methods=("random",))
    assert config.task == "rte"  # a rerun with --task rte resumes it: one task, one name


def test_a_run_dir_of_capped_rows_drawn_per_seed_is_refused(tmp_path):
    """Before 0.2 a capped dev split was drawn with each run's seed; mixing those rows with
    rows of the one subset every seed now scores would spread the mean over two draws."""
    from prunekit.recipes.compare_config import refuse_other_settings, run_dir_settings

    out = tmp_path / "sweep"
    out.mkdir()
    config = CompareConfig(task="rte", out=out, methods=("random",), eval_max_samples=24)
    recorded = run_dir_settings(config, ())
    (out / "results.jsonl").write_text(json.dumps({"key": "random|0.5|0|r0"}) + "\n")
    (out / "config.json").write_text(json.dumps(recorded))
    refuse_other_settings(config, ())  # written now: resumes
    del recorded["eval_subset"]
    (out / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(ConfigError, match="eval_max_samples, drawn per seed before 0.2"):
        refuse_other_settings(config, ())


def test_a_memo_written_before_the_record_kept_the_certificate_gives_its_plans(tmp_path):
    from prunekit.plan import PruningPlan
    from prunekit.recipes.compare_config import read_plan_memo

    certificate = {"capped": False, "completed_heads": []}
    plan = PruningPlan.dense(2, 2, 8).model_copy(update={"meta": {"certificate": certificate}})
    memo = tmp_path / "astar.json"
    memo.write_text(
        json.dumps({"plan": plan.to_json(), "record": {"decision_seconds": 1.0}})
    )  # as 0.2.0 development versions wrote it
    assert read_plan_memo(memo).record["certificate"] == certificate


def test_the_tasks_recipe_spelled_out_resumes_a_run_dir_that_recorded_none(
    tiny_bert_with_real_tokenizer, tmp_path
):
    from prunekit.recipes.compare_config import dense_recipe, run_dir_settings, settings_differ

    config = sweep_config(tiny_bert_with_real_tokenizer, tmp_path / "spelled").model_copy(
        update={"recipe": None}
    )
    recorded = run_dir_settings(config, ())
    assert recorded["recipe"] is None
    # `--max-train-samples 0` on RTE (no subset in its recipe): the recipe as it is
    spelled = config.model_copy(
        update={"recipe": dense_recipe(config.task, max_train_samples=0, whole_split=0)}
    )
    assert settings_differ(spelled, recorded, ()) == []
    other = config.model_copy(
        update={"recipe": dense_recipe(config.task, max_train_samples=50, whole_split=0)}
    )
    assert settings_differ(other, recorded, ()) == ["recipe"]

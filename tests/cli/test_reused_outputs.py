"""What `run`, `prune`, `smp train-pruner`, `compare` and `compact` refuse before they touch
an output: a folder holding what they read, a resumed stage of other data, settings a method
never reads, a device that does not exist; and an R1 sweep reading A*'s plan back keeps its
certificate."""

from __future__ import annotations

import json

import pytest
from conftest import (
    TINY,
    assert_user_error,
    invoke,
    saved_run_folder,
    tiny_model,
    word_tokenizer,
)

from prunekit import PruningPlan, save
from prunekit.methods.registry import MethodResult
from prunekit.recipes.compare_config import read_plan_memo, write_plan_memo


@pytest.fixture
def job(tmp_path):
    """A `run` job's folder holding a saved model, and a tiny RTE beside it."""
    job = saved_run_folder(tmp_path)
    rte = tmp_path / "glue" / "RTE"
    rte.mkdir(parents=True)
    rows = [f"{i}\tA man walks {i}.\tA person moves.\t{'entailment' if i % 2 else 'not_entailment'}"
            for i in range(20)]  # fmt: skip
    text = "index\tsentence1\tsentence2\tlabel\n" + "\n".join(rows) + "\n"
    (rte / "train.tsv").write_text(text)
    (rte / "dev.tsv").write_text(text)
    return job


def _untouched(job) -> None:
    assert (job / "summary.json").read_text() == "{}" and (job / "pruned" / "config.json").is_file()


def test_run_overwrite_never_deletes_the_model_it_would_fine_tune(job):
    result = invoke(
        "run", "--model", job / "pruned", "--task", "rte", "--out", job, "--overwrite",
        "--data-dir", job.parent / "glue", "--floor", "none",
    )  # fmt: skip
    assert_user_error(result, "holds the model")
    _untouched(job)


def test_run_overwrite_checks_the_model_fits_the_task_before_deleting_the_job(job, tmp_path):
    save(tiny_model("bert", num_labels=3), tmp_path / "three-labels", tokenizer=word_tokenizer())
    result = invoke(
        "run", "--model", tmp_path / "three-labels", "--task", "rte", "--out", job,
        "--overwrite", "--data-dir", job.parent / "glue", "--floor", "none",
    )  # fmt: skip
    assert_user_error(result, "predicts 3 labels but task rte needs 2")
    _untouched(job)


def test_a_run_refused_before_its_first_stage_leaves_no_output_folder(job, tmp_path):
    save(tiny_model("bert", num_labels=3), tmp_path / "three-labels", tokenizer=word_tokenizer())
    out = tmp_path / "new-job"
    result = invoke(
        "run", "--model", tmp_path / "three-labels", "--task", "rte", "--out", out,
        "--data-dir", job.parent / "glue", "--floor", "none",
    )  # fmt: skip
    assert_user_error(result, "predicts 3 labels")
    assert not out.exists()  # the corrected command is not refused as an existing --out


def test_run_refuses_resume_with_overwrite(job):
    result = invoke("run", "--task", "rte", "--out", job, "--resume", "--overwrite")
    assert_user_error(result, "--resume", "--overwrite", "one of the two")
    _untouched(job)


def test_run_resume_refuses_a_dense_stage_fine_tuned_on_other_data(job):
    dense = job / "dense"
    dense.mkdir()
    made = {"task": "rte", "model": "default", "train_examples_digest": "other data",
            "config": {"train": {"seed": 0}, "max_train_samples": 20000}}  # fmt: skip
    (dense / "metrics.json").write_text(json.dumps(made))
    result = invoke(
        "run", "--task", "rte", "--out", job, "--resume", "--data-dir", job.parent / "glue",
        "--floor", "none",
    )  # fmt: skip
    assert_user_error(result, "other settings (train_examples_digest)")
    _untouched(job)


def test_smp_train_pruner_never_replaces_the_model_it_reads(job):
    result = invoke(
        "smp", "train-pruner", "--model", job / "pruned", "--tasks", "rte", "--steps", "1",
        "--out", job, "--overwrite", "--data-dir", job.parent / "glue",
    )  # fmt: skip
    assert_user_error(result, "holds the model")
    _untouched(job)


def test_prune_never_replaces_its_teacher(job, tmp_path):
    save(tiny_model("bert"), tmp_path / "student")
    result = invoke(
        "prune", "--model", tmp_path / "student", "--task", "rte", "--heads", "0.5",
        "--recover-epochs", "1", "--distill", "--teacher", job / "pruned", "--out", job,
        "--overwrite", "--data-dir", job.parent / "glue",
    )  # fmt: skip
    assert_user_error(result, "holds the model")
    _untouched(job)


@pytest.mark.parametrize(
    "method, flag",
    [
        ("hisp", "--train-samples"),  # scores on the validation split
        ("random", "--train-samples"),  # reads no data
        ("random", "--search-samples"),
        ("l0", "--search-samples"),  # trains its gates on the train split
    ],
)
def test_prune_refuses_a_subset_of_a_split_the_method_never_reads(tmp_path, method, flag):
    result = invoke(
        "prune", "--model", tmp_path / "absent", "--task", "rte", "--heads", "0.5",
        "--method", method, flag, "100", "--out", tmp_path / "out",
    )  # fmt: skip
    assert_user_error(result, flag, f"{method} reads")
    assert not (tmp_path / "out").exists()


def test_compare_checks_the_device_before_writing_its_folder(job, tmp_path):
    result = invoke(
        "compare", "--task", "rte", "--methods", "random", "--heads", "0.5", "--device",
        "cuda:99", "--data-dir", job.parent / "glue", "--out", tmp_path / "sweep",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "sweep").exists()


def test_compact_refuses_a_seed_out_of_range(job, tmp_path):
    result = invoke("compact", job / "pruned", "--out", tmp_path / "small", "--seed", 2**64)
    assert result.exit_code == 2 and "--seed" in result.output  # click's range error
    assert not (tmp_path / "small").exists()


def test_a_plan_read_back_keeps_its_search_certificate(tmp_path):
    plan = PruningPlan.dense(TINY["layers"], TINY["heads"], TINY["ffn"])
    certificate = {"capped": True, "completed_heads": [[0, 1]], "search": {"evals": 2}}
    memo = tmp_path / "plans" / "astar.json"
    write_plan_memo(memo, MethodResult(plan, record={"decision_seconds": 1.5,
                                                     "certificate": certificate}))  # fmt: skip
    read = read_plan_memo(memo)
    assert read.record["certificate"] == certificate  # R1 rows report what R0 rows did
    assert read.record["decision_seconds"] == 1.5


def test_run_resume_takes_a_dense_stage_whose_record_hashed_its_train_data_the_older_way(job):
    """Before 0.2.0 a seed's record hashed train less its own validation carve: the same
    data, so the finished stage is reused (it then fails for want of a model: this stage is
    a record alone)."""
    from prunekit.data import examples_digest

    dense = job / "dense"
    dense.mkdir()
    older = examples_digest("rte", "train", job.parent / "glue", 1)
    made = {"task": "rte", "model": "default", "train_examples_digest": older,
            "config": {"train": {"seed": 1}, "max_train_samples": 20000}}  # fmt: skip
    (dense / "metrics.json").write_text(json.dumps(made))
    result = invoke(
        "run", "--task", "rte", "--out", job, "--resume", "--data-dir", job.parent / "glue",
        "--floor", "none", "--seed", "1",
    )  # fmt: skip
    assert "other settings" not in result.stderr, result.stderr
    assert isinstance(result.exception, FileNotFoundError)  # past the checks: no model here

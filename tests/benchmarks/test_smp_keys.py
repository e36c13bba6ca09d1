"""benchmarks/smp.py: rows of a second pruner are rows of their own; the shipped pruner's rows
keep the keys they were committed under."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import smp as smp_benchmark  # noqa: E402
import smp_diagnostics  # noqa: E402
import smp_report  # noqa: E402
from _rows import loop_label  # noqa: E402

from prunekit.scoring.smp import BUILTIN_PRUNER, resolve_pruner  # noqa: E402


def _args(pruner: Path, precision: str = "fp32", group_by_length: bool = False) -> Namespace:
    args = Namespace(
        pruner=pruner, train_cap={}, precision=precision, group_by_length=group_by_length
    )
    args.pruner_name = smp_benchmark.pruner_name(pruner)
    return args


def _pruner_copy(tmp_path: Path, name: str, weights: bytes) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    shipped = resolve_pruner(BUILTIN_PRUNER)
    (directory / "pruner.json").write_text((shipped / "pruner.json").read_text())
    (directory / "pruner.safetensors").write_bytes(weights)
    return directory


def test_the_shipped_pruner_keeps_the_committed_keys():
    committed = smp_benchmark.done_keys()
    fp32 = _args(resolve_pruner(BUILTIN_PRUNER))
    bf16 = _args(resolve_pruner(BUILTIN_PRUNER), "bf16", group_by_length=True)
    assert fp32.pruner_name == bf16.pruner_name == ""
    # rows committed before pruners were told apart: a rerun finds them done
    assert smp_benchmark.run_key("mrpc", 0, 0.5, "smp", fp32) in committed
    assert smp_benchmark.run_key("mrpc", 2, 0.5, "smp", bf16) in committed


def test_another_pruners_smp_rows_are_keyed_and_labelled_by_it(tmp_path):
    shipped = _args(resolve_pruner(BUILTIN_PRUNER))
    first = _args(_pruner_copy(tmp_path, "mean", b"weights one"))
    # the same folder name elsewhere, other weights: still a pruner of its own
    (tmp_path / "elsewhere").mkdir()
    second = _args(_pruner_copy(tmp_path / "elsewhere", "mean", b"weights two"))
    keys = {smp_benchmark.run_key("mrpc", 2, 0.5, "smp", a) for a in (shipped, first, second)}
    assert len(keys) == 3  # no pruner's rows are skipped as done by another's
    assert first.pruner_name.startswith("mean-")
    # methods that read no pruner share their rows across pruners
    for method in ("random", "hisp", "dense"):
        assert smp_benchmark.run_key("mrpc", 2, 0.5, method, first) == smp_benchmark.run_key(
            "mrpc", 2, 0.5, method, shipped
        )
    row = {"method": "smp", "pruner": first.pruner_name, "precision": "bf16"}
    assert loop_label(row) == f"smp (bf16) [pruner {first.pruner_name}]"
    assert loop_label({"method": "smp"}) == "smp"


def test_the_report_describes_every_pruner_its_smp_rows_came_from(tmp_path):
    directory = _pruner_copy(tmp_path, "mean", b"weights")
    trained = json.loads((directory / "pruner.json").read_text())
    trained["trained_on"]["config"]["pair_representation"] = "mean"
    name = smp_benchmark.pruner_name(directory)
    record = smp_report.pruner_record(trained, name)
    rows = [
        {"method": "smp"},  # an older row: the shipped pruner
        {"method": "smp", "pruner": name, "pruner_record": record},
        {"method": "random"},
    ]
    lines = smp_report.pruner_lines(rows)
    assert len(lines) == 2
    assert lines[0].startswith(f"{BUILTIN_PRUNER} (shipped): 1000 steps")
    assert lines[1].startswith(f"{name}: 1000 steps") and lines[1].endswith("mean representation")
    assert smp_report.pruner_lines([{"method": "random"}]) == []


def test_a_second_pruners_diagnostic_is_written_beside_the_shipped_ones(tmp_path):
    assert smp_diagnostics.output_stem(BUILTIN_PRUNER) == "diagnostics"
    other = _pruner_copy(tmp_path, "smp_pruner_mean", b"other weights")
    stem = smp_diagnostics.output_stem(other)
    assert stem == f"diagnostics-{smp_benchmark.pruner_name(other)}"
    assert stem.startswith("diagnostics-smp_pruner_mean-")


def test_the_report_shows_how_many_of_hisps_heads_each_method_keeps_against_chance():
    def row(method: str, kept: list[list[int]], seed: int = 0, **extra) -> dict:
        return {"task": "rte", "seed": seed, "fraction": 0.5, "method": method,
                "kept_heads": kept, **extra}  # fmt: skip

    hisp = [[0, 1], [2, 3]]
    rows = [
        row("hisp", hisp),
        row("dense", [[0, 1, 2, 3], [0, 1, 2, 3]]),
        row("smp", [[0, 1], [0, 1]]),  # 2 of HISP's 4
        row("random", [[0, 1], [2, 3]]),  # all 4
        row("random", [[2, 3], [0, 1]], seed=1),  # no HISP row of seed 1: not compared
        row("smp", [[0, 2], [3, 1]], precision="bf16"),  # other loop options: no HISP row
    ]
    assert smp_report.head_overlap([[0, 1], [0, 1]], hisp) == 0.5
    table = [line for line in smp_report.overlap_lines(rows) if line.startswith("| rte")]
    assert table == [
        "| rte | 50% | random | 100% (n=1) | 50% |",
        "| rte | 50% | smp | 50% (n=1) | 50% |",
    ]
    assert smp_report.overlap_lines([row("smp", hisp)]) == []


def _result(task: str, method: str, seed: int, dev: float, dense: float = 80.0, **extra) -> dict:
    return {"task": task, "method": method, "seed": seed, "fraction": 0.5, "dev": dev,
            "dense_dev": dense, "precision": "bf16", "group_by_length": True,
            "held_out_of_pruner_training": task == "stsb", **extra}  # fmt: skip


def test_the_targets_pair_smp_with_random_seed_by_seed_and_say_whether_they_are_met():
    rows = [
        _result("rte", "smp", 0, 79.0),
        _result("rte", "random", 0, 76.0),
        _result("rte", "smp", 1, 81.0),  # no random row of seed 1: not in the pairing
        _result("mrpc", "smp", 0, 78.0),
        _result("mrpc", "random", 0, 77.0),
        _result("stsb", "smp", 0, 20.0),  # held out of pruner training
        _result("stsb", "random", 0, 60.0),
        _result("rte", "smp", 0, 90.0, pruner="other-1234"),  # another pruner: not the target
        _result("rte", "smp", 0, 90.0, precision="fp32"),  # another loop: not the target
        _result("rte", "random", 0, 10.0, train_cap=100),  # capped: not paired with uncapped
    ]
    deltas = smp_report.paired_deltas(rows, 0.5)
    assert deltas == {"mrpc": (-2.0, 1.0, 1), "rte": (-1.0, 3.0, 1), "stsb": (-60.0, -40.0, 1)}
    table = [line for line in smp_report.target_lines(rows) if line.startswith("| ")][1:]
    assert table == [
        "| every task (seeds: mrpc 1, rte 1, stsb 1) | -21.00 | -12.00 | neither |",
        "| the pruner's meta-training tasks (seeds: mrpc 1, rte 1) | -1.50 | +2.00 | both |",
    ]
    assert smp_report.target_lines([_result("rte", "smp", 0, 79.0)]) == []


def test_prune_after_fine_tuning_stands_beside_from_the_head_comparisons_hisp_r1_rows(tmp_path):
    def row(method: str, regime: str, fraction: float, seed: int, dev: float, task="mrpc"):
        return {"key": f"{method}|{fraction}|{seed}|{regime}", "task": task, "method": method,
                "regime": regime, "fraction": fraction, "seed": seed, "dev": dev,
                "dense_dev": 86.0, "dev_constant": 81.22}  # fmt: skip

    rows = [
        row("hisp", "r1", 0.5, 0, 85.0),
        row("hisp", "r1", 0.5, 1, 87.0),
        row("hisp", "r0", 0.5, 0, 70.0),  # no recovery: not prune-after-fine-tuning's row
        row("hisp", "r1", 0.7, 0, 60.0),
        row("l0", "r1", 0.5, 0, 10.0),
        row("hisp", "r1", 0.5, 0, 50.0, task="rte"),  # its key is mrpc seed 0's: still a row
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = [line for line in smp_report.after_finetuning_lines(tmp_path) if "| " in line][1:]
    assert table == [
        "| mrpc | 86.00 ± 1.41 | +0.00 | 0, 1 |",
        "| rte | 50.00 (n=1) ‡1 | -36.00 | 0 |",
    ]
    assert smp_report.after_finetuning_lines(tmp_path / "absent") == []


def test_a_kept_run_dir_with_other_heads_is_refused(tmp_path):
    from conftest import tiny_model, word_tokenizer

    from prunekit import PruningPlan, apply_plan, current_plan, save

    model = tiny_model("bert")
    plan = current_plan(model).without_heads([(0, 1), (2, 3)])
    save(apply_plan(model, plan), tmp_path / "init", word_tokenizer())
    smp_benchmark.check_same_heads(tmp_path / "init", plan)  # the same heads: resumes
    other = PruningPlan.build(**{**plan.to_dict(), "kept_heads": [[0, 1, 2, 3]] * 3})
    with pytest.raises(SystemExit, match="keeps other heads"):
        smp_benchmark.check_same_heads(tmp_path / "init", other)


def test_hisp_scores_the_in_run_dense_model_of_a_capped_task_and_the_cache_otherwise(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(smp_benchmark, "RUNS", tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setattr(smp_benchmark, "cached_dense_model", lambda *a, **k: cache)
    tuned: list[Path] = []
    monkeypatch.setattr(smp_benchmark, "fine_tuned", lambda *a: tuned.append(a[-2]))
    monkeypatch.setattr(smp_benchmark, "load_for_task", lambda *a: (None, None))
    monkeypatch.setattr(smp_benchmark, "current_plan", lambda model: None)
    args = _args(resolve_pruner(BUILTIN_PRUNER), "bf16", group_by_length=True)
    args.data_dir, args.device = None, "cpu"
    assert smp_benchmark.importance_model("mrpc", 0, args) == cache
    assert smp_benchmark.importance_record("mrpc", 0, args) == {
        "importance_from": "dense cache (the task's full recipe)"
    }
    args.train_cap = {"sst2": 20000}
    assert smp_benchmark.importance_model("mrpc", 0, args) == cache  # only the capped task
    dense = tmp_path / "sst2-s1-0.00-dense-bf16-grouped-cap20000" / "finetuned"
    assert smp_benchmark.importance_model("sst2", 1, args) == dense
    assert tuned == [dense.parent]  # absent here: fine-tuned again, in the dense row's folder
    dense.mkdir(parents=True)
    (dense / "metrics.json").write_text(json.dumps({"dev": {"primary": 88.5}}))
    assert smp_benchmark.importance_record("sst2", 1, args) == {
        "importance_from": "in-run dense model (the same train cap)",
        "importance_model_dev": 88.5,
    }
    assert tuned == [dense.parent]  # found: not fine-tuned again

"""benchmarks/sparse.py's report: each row names the CPU its timings ran on (the project's
machine changed between runs, so timings compare within a row) and flags noisy timings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import sparse  # noqa: E402
from _rows import write_rows  # noqa: E402


def _row(sparsity: float, cpu: str, warnings: list[str]) -> dict:
    timed = {"latency_ms": 10.0, "throughput_seq_s": 50.0}
    return {
        "key": f"mrpc|0|{sparsity:.2f}|magnitude|e3",
        "task": "mrpc",
        "seed": 0,
        "sparsity": sparsity,
        "variant": "magnitude",
        "metric": "f1",
        "dev": 84.0,
        "dev_constant": 81.22,
        "dense_dev": 85.0,
        "parameters_nonzero": 1000,
        "file_bytes": 2_000_000,
        "epochs": sparse.EPOCHS,
        "train_samples": None,
        "sparse_linears_converted": 6,
        "timing": {
            "model": timed,
            "baseline": timed | {"latency_ms": 20.0},
            "onnxruntime": timed,
            "cpu": cpu,
            "warnings": warnings,
        },
    }


def test_the_report_names_each_rows_cpu_and_flags_noisy_timings(tmp_path):
    rows = [_row(0.9, "AMD EPYC", []), _row(0.95, "Intel(R) Xeon(R)", ["batch 1 timings vary"])]
    write_rows(tmp_path / "results.jsonl", rows)
    sparse.write_report(tmp_path)
    table = [line for line in (tmp_path / "report.md").read_text().splitlines() if "| mrpc" in line]
    assert table[0].endswith(
        "| 10.0 / 20.0 / 10.0 | 2.00× / 1.00× | 50.0 / 50.0 / 50.0 | 0 | AMD EPYC |"
    )
    assert table[1].endswith("| 0 | Intel(R) Xeon(R) ¶ |")
    assert "¶: `prunekit bench` warned" in (tmp_path / "report.md").read_text()
    write_rows(tmp_path / "results.jsonl", rows[:1])
    sparse.write_report(tmp_path)
    assert "¶" not in (tmp_path / "report.md").read_text()  # no warning, no footnote


def test_retime_takes_only_the_rows_its_filters_name(tmp_path, monkeypatch):
    import argparse

    rows = []
    for task, variant in [("mrpc", "movement"), ("mrpc", "movement+block8"), ("rte", "movement")]:
        row = _row(0.9, "AMD EPYC", [])
        row |= {"task": task, "variant": variant, "key": f"{task}|0|0.90|{variant}|e3"}
        (tmp_path / "runs" / row["key"].replace("|", "-")).mkdir(parents=True)
        rows.append(row)
    write_rows(tmp_path / "results.jsonl", rows)
    timed = []
    monkeypatch.setattr(sparse, "timing", lambda out, rounds: timed.append(out.name) or {})
    args = argparse.Namespace(
        results=tmp_path, runs=tmp_path / "runs", sparsities=None, rounds=1, tasks=None,
        variants="movement+block8",
    )  # fmt: skip
    sparse.retime(args)
    assert timed == ["mrpc-0-0.90-movement+block8-e3"]
    sparse.retime(argparse.Namespace(**{**vars(args), "variants": None, "tasks": "rte"}))
    assert timed[1:] == ["rte-0-0.90-movement-e3"]


def test_the_report_names_each_seeds_dense_model_and_flags_two(tmp_path):
    rows = [_row(0.9, "AMD EPYC", []), _row(0.95, "AMD EPYC", [])]
    write_rows(tmp_path / "results.jsonl", rows)
    sparse.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "mrpc seed 0: 85.00." in text and "two dense models" not in text
    rows[1] |= {"dense_dev": 84.44}  # a row made after the dense cache trained it again
    write_rows(tmp_path / "results.jsonl", rows)
    sparse.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "mrpc seed 0: 84.44 and 85.00 (two dense models" in text


def test_two_dense_model_folders_with_one_dev_metric_are_named_but_not_called_two_models(
    tmp_path,
):
    rows = [_row(0.9, "AMD EPYC", []), _row(0.95, "AMD EPYC", [])]
    rows[0] |= {"dense_digest": "aaaa1111"}
    rows[1] |= {"dense_digest": "bbbb2222"}  # fine-tuned again elsewhere: another folder
    write_rows(tmp_path / "results.jsonl", rows)
    sparse.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "mrpc seed 0: 85.00 and 85.00 (one dev metric from more than one dense model" in text
    del rows[0]["dense_digest"]  # a row from before digests: its dev metric alone
    write_rows(tmp_path / "results.jsonl", rows)
    sparse.write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "one dev metric from more than one" in text and "two dense models" not in text

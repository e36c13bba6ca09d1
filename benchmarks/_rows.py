"""The benchmarks' result files: one JSON object per line, keyed by ``row["key"]``, appended as
each run finishes (so a killed benchmark resumes after its last finished run), and rewritten
whole only through a temporary file (so a kill never leaves half a file). And the options every
training benchmark offers alike: ``--precision`` and ``--group-by-length`` (runs with other
values than the defaults get their own keys and folders), and ``--device`` (rows record where
they trained). And ``dev_constant``: what a collapsed model scores on a task's dev split."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prunekit.data import constant_prediction_floor, load_examples
from prunekit.recipes.compare import append_rows
from prunekit.report.results import read_results
from prunekit.train import asked_loop_options

# head_baselines' full comparison: where its run dirs are (+ loop suffix, / task) and how many
# validation examples its methods may read. Benchmarks that need some of the same runs (peer's
# HISP + KD rows) use the same settings and borrow them (`CompareConfig.borrow_from`), so
# both reports show the same numbers and the CPU runs them once.
HEAD_COMPARISON_RUNS = Path("runs/head_baselines/full")
HEAD_SEARCH_SAMPLES = 1_000
# The GLUE tasks the benchmarks run on the default MiniLM (their recipes: dense.md).
TASKS = ("rte", "mrpc", "stsb", "cola", "sst2")
# A benchmark's results folder keeps each run dir's config.json as settings/<name>.json: the
# run dirs are git-ignored, and a fresh checkout resumes from the results (`restore_tasks`).
SETTINGS = "settings"


def parse_seeds(
    parser: argparse.ArgumentParser, text: str, allowed: Iterable[int]
) -> tuple[int, ...]:
    """``--seeds 0,2``: the seeds of ``allowed`` it names, in their order; a parser error
    (exit 2) when it names none or one outside them."""
    allowed = tuple(allowed)
    asked = {s.strip() for s in text.split(",") if s.strip()}
    if not asked or not asked <= {str(s) for s in allowed}:
        parser.error(f"--seeds takes seeds among {allowed}, got {text!r}")
    return tuple(s for s in allowed if str(s) in asked)


def parse_caps(
    parser: argparse.ArgumentParser, flag: str, text: str, tasks: Iterable[str] | None = None
) -> dict[str, int]:
    """``sst2=20000,rte=500`` (the value of ``flag``) as {task: cap}; a parser error (exit 2)
    for a cap under 1 or, given ``tasks``, a task outside them."""
    known = tuple(tasks) if tasks is not None else None
    caps = {}
    for pair in filter(None, text.split(",")):
        task, _, value = pair.partition("=")
        if (
            (known is not None and task.strip() not in known)
            or not value.isdigit()
            or int(value) < 1
        ):
            among = f", a task of {known}" if known is not None else ""
            parser.error(f"{flag} expects TASK=N with N >= 1{among}, got {pair!r}")
        caps[task.strip()] = int(value)
    return caps


def keyed_rows(path: Path) -> dict[str, dict]:
    """The rows of ``path`` by key (the last row of a key wins); empty when there is no file."""
    return {row["key"]: row for row in read_results(path)}


def append_row(path: Path, row: dict) -> None:
    """Append one row, flushed to disk (the row of a run that took an hour survives a crash),
    after ending a line a kill left torn (the row would otherwise join it and both be lost)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    append_rows(path, [row])


def keep_settings(run_dir: Path, settings: Path) -> None:
    """Copy a run dir's config.json (what its rows were run with) into the results as
    ``settings``, for `restore_run_dir`; a run dir without one has nothing to keep."""
    if (run_dir / "config.json").is_file():
        write_json(settings, read_json(run_dir / "config.json"))


def restore_run_dir(run_dir: Path, rows: Iterable[dict], settings: Path | None = None) -> int:
    """Put committed ``rows`` (of the run dir's task: run keys do not name it) back into a
    benchmark's run dir, which is git-ignored and so missing from a fresh checkout: the rows
    it lacks are appended to its results.jsonl (a sweep resumes after them instead of running
    them again, and the report, which reads run dirs, keeps them), and a run dir without a
    config.json gets ``settings`` (`keep_settings`), the one its rows were run with, so
    `compare` still refuses a sweep of other settings. Returns the rows put back."""
    path = run_dir / "results.jsonl"
    have = keyed_rows(path)
    missing = [row for row in rows if row["key"] not in have]
    if settings is not None and settings.is_file() and not (run_dir / "config.json").is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(settings, run_dir / "config.json")
    for row in missing:
        append_row(path, row)
    return len(missing)


def restore_tasks(results: Path, run_dirs: dict[str, Path]) -> dict[str, int]:
    """`restore_run_dir` for each task's run dir from a benchmark's committed results folder:
    its results.jsonl (rows of every task; run keys repeat across tasks, so rows are split by
    task, not keyed) and ``settings/<task>.json``. Returns the rows put back per task."""
    rows = read_results(results / "results.jsonl")
    return {
        task: restore_run_dir(
            run_dir, [r for r in rows if r["task"] == task], results / SETTINGS / f"{task}.json"
        )
        for task, run_dir in run_dirs.items()
    }


def read_json(path: Path) -> dict:
    """A benchmark's side file (caches, summaries): its object, or empty when there is none."""
    return json.loads(path.read_text()) if path.is_file() else {}


def write_json(path: Path, data: dict) -> None:
    """Rewrite a side file through a temporary one, as `write_rows` does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def write_rows(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tmp.replace(path)


def add_loop_arguments(parser: argparse.ArgumentParser, trained: str) -> None:
    """``--precision`` and ``--group-by-length`` for what the benchmark trains (``trained``)."""
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help=f"training precision of {trained}; bf16 trains ~1.7x faster on this CPU "
        "(results/precision.md)",
    )
    parser.add_argument(
        "--group-by-length",
        action="store_true",
        help=f"length-grouped batches for {trained}; ~1.4x faster MRPC epochs on this CPU "
        "(results/batching.md)",
    )


def add_device_argument(parser: argparse.ArgumentParser, trained: str) -> None:
    """``--device`` for what the benchmark trains (``trained``); rows record the device."""
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where {trained} runs: auto (a GPU when present), cpu, cuda or cuda:N; speed "
        "columns are CPU claims, so time them on the CPU",
    )


def loop_options(args: argparse.Namespace) -> dict[str, Any]:
    """The loop options `add_loop_arguments`' flags asked for (those not at their defaults), as
    `TrainConfig`, `TaskRecipe` or `CompareConfig` fields: what is not asked for stays as the
    recipe or config has it."""
    return asked_loop_options(args.precision, args.group_by_length)


def loop_suffix(options: dict[str, Any], separator: str = "-") -> str:
    """What non-default loop options add to a folder or key (``-bf16``, ``-grouped``): nothing
    for the defaults, so results written before the options existed keep their names."""
    parts = [options["precision"]] if options.get("precision", "fp32") != "fp32" else []
    parts += ["grouped"] if options.get("group_by_length") else []
    return "".join(f"{separator}{part}" for part in parts)


def loop_label(row: dict[str, Any]) -> str:
    """A row's method, naming its non-default loop options, train cap and SMP pruner other than
    the shipped one (``smp (bf16, grouped)``, ``smp ≤20,000 train``, ``smp [pruner P]``): runs
    with other ones are methods of their own."""
    options = loop_suffix(row, ", ")[2:]
    cap = row.get("train_cap")
    pruner = row.get("pruner")
    return (
        row["method"]
        + (f" ({options})" if options else "")
        + (f" ≤{cap:,} train" if cap else "")
        + (f" [pruner {pruner}]" if pruner else "")
    )


def loop_description(options: dict[str, Any]) -> str:
    batches = "length-grouped" if options.get("group_by_length") else "random"
    return f"{options.get('precision', 'fp32')}, {batches} batches"


@functools.cache
def dev_constant(task: str, data_dir: str | None = None) -> float:
    """The best constant prediction's primary metric on ``task``'s dev split: rows written
    before evaluations recorded it get it here (reports flag runs at or below it)."""
    labels = [ex.label for ex in load_examples(task, "dev", data_dir)]
    return constant_prediction_floor(task, labels)


def with_dev_constant(rows: Iterable[dict], data_dir: str | None = None) -> list[dict]:
    """``rows`` with ``dev_constant`` filled in where older runs did not record it."""
    return [
        r
        if r.get("dev_constant") is not None
        else r | {"dev_constant": dev_constant(r["task"], data_dir)}
        for r in rows
    ]


def devices_description(rows: Iterable[dict]) -> str:
    """Where the rows were computed: their devices and, for CPU rows, the processors they
    name (timings and bf16 numerics differ between CPUs); rows written before rows recorded
    the processor are counted, not guessed."""
    rows = list(rows)
    devices = " + ".join(sorted({row.get("device", "cpu") for row in rows}))  # older: the CPU
    cpus = sorted({row["cpu"] for row in rows if row.get("cpu")})
    unnamed = sum(row.get("device", "cpu") == "cpu" and not row.get("cpu") for row in rows)
    if not cpus:
        return devices
    older = f"; older rows that do not name theirs: {unnamed}" if unnamed else ""
    return f"{devices} ({', '.join(cpus)}{older})"

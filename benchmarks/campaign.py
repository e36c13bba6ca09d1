"""The outstanding benchmark runs of the open issues, in the order that buys the most evidence
per CPU hour, run one after another: a machine (this 2-core CPU, or a lent GPU with
``--device cuda``) starts on them at once instead of a session re-planning them.

Each step is one or more commands of the benchmarks (which resume by key, so a killed step
loses at most its current run) and the results it writes. A finished step is recorded in
``benchmarks/results/campaign.json`` (when, how long, on what device); with ``--commit`` the
step's results and that record are committed as soon as it finishes, because a session's
background jobs end with it and an uncommitted result is lost. A step whose prerequisite has
not finished waits (and fails when that failed); ``--hours H`` starts only steps whose
estimate fits in what is left of H hours. A step's estimate is its runs as measured here so
far (bf16, length-grouped) plus, for each dense model it needs that the cache lacks, that
model's fine-tune as ``benchmarks/results/dense.json`` timed it: the cache (`runs/dense`) is
git-ignored, so a fresh machine fills it again, and ``--list`` says what each step would add.

    python benchmarks/campaign.py --list
    mkdir -p runs
    nohup python benchmarks/campaign.py --commit --hours 2.5 > runs/campaign.log 2>&1 &
    python benchmarks/campaign.py --only sparse-augment-mrpc --device cuda --commit
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Container
from datetime import UTC, datetime
from pathlib import Path

from _rows import read_json, write_json
from campaign_steps import STEPS, Step, dense_models  # noqa: F401 (dense_models: for tests)

from prunekit.device import cpu_name, describe_device, resolve_device
from prunekit.errors import ConfigError
from prunekit.outputs import atomic_output_dir
from prunekit.train.task_recipes import dense_cache_root, finished_dense_model, recipe_for

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "campaign.json"
DENSE_RECORD = ROOT / "benchmarks" / "results" / "dense.json"
UNTIMED_DENSE_MINUTES = 30.0  # a dense recipe dense.json has not timed: SST-2's took 37
# dense.json's fine-tunes ran on the Intel CPU with AMX; the AMD EPYC the project also gets took
# 1.75x as long for MRPC (9.5 min against 5.4): estimates assume the slower one
DENSE_SLOWDOWN = 1.75


def dense_minutes(task: str) -> float:
    """How long the default model's dense fine-tune of ``task`` (its current recipe, fp32)
    takes on the slower of the project's CPUs: ``dense.json``'s time times ``DENSE_SLOWDOWN``,
    or ``UNTIMED_DENSE_MINUTES``."""
    digest = recipe_for(task).digest()
    sweep = read_json(DENSE_RECORD).get("tasks", {}).get(task, {}).get("sweep", [])
    timed = [
        run["train_seconds"] / 60 * DENSE_SLOWDOWN
        for run in sweep
        if run["key"].endswith(f"-{digest}")
    ]
    return max(timed, default=UNTIMED_DENSE_MINUTES)


def is_cached(task: str, seed: int) -> bool:
    root = dense_cache_root()
    root = root if root.is_absolute() else ROOT / root  # the steps run in ROOT
    return finished_dense_model("default", task, seed, root=root) is not None


def estimate(step: Step, filled: Container[tuple[str, int]] = ()) -> tuple[float, list[str]]:
    """Minutes for ``step`` with the dense models the cache lacks (and earlier steps do not
    fill: ``filled``) fine-tuned first, and those models as ``task:seed``."""
    missing = [(task, seed) for task, seed in step.dense if (task, seed) not in filled]
    missing = [(task, seed) for task, seed in missing if not is_cached(task, seed)]
    minutes = step.minutes + sum(dense_minutes(task) for task, _ in missing)
    return minutes, [f"{task}:{seed}" for task, seed in missing]


def finished() -> dict[str, dict]:
    return read_json(RECORD)


def record_finished(step: Step, seconds: float, device: str) -> None:
    """Add ``step`` to the record, through a temporary file (a kill never leaves half)."""
    record = finished()
    record[step.name] = {
        "issue": step.issue,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": round(seconds / 60, 1),
        "device": device,
    }
    write_json(RECORD, dict(sorted(record.items())))


def argv(command: str, step: Step, device: str | None) -> list[str]:
    """The command line: ``python``/``prunekit`` from this interpreter's environment (else the
    PATH's), and ``--device`` appended when asked and the step's commands take it."""
    here = Path(sys.executable).parent / "prunekit"
    binaries = {
        "python": sys.executable,
        "prunekit": str(here) if here.exists() else shutil.which("prunekit") or "prunekit",
    }
    first, *rest = shlex.split(command)
    line = [binaries.get(first, first), *rest]
    if device and step.takes_device:
        line += ["--device", device]
    return line


def _trained_marker(step: Step) -> Path:
    """Written once a copy step's commands succeed: its artefact is this step's own."""
    return ROOT / "runs" / ".campaign" / step.name


@contextlib.contextmanager
def campaign_lock():
    """Hold ``runs/.campaign.lock`` for this campaign; yields its file descriptor, or None when
    another campaign (or a benchmark one left running) holds it. The benchmarks inherit the
    descriptor, so a step's command killed with its campaign or not keeps the lock until it
    ends: two campaigns never write one results file or checkpoint at once."""
    path = Path(ROOT, "runs", ".campaign.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield handle.fileno()


def run_step(step: Step, device: str | None, hold: tuple[int, ...] = ()) -> bool:
    """Run ``step``'s commands in the repository root, then its copy; True when all succeed.
    A copy step whose commands finished before (killed before its copy) only copies. ``hold``:
    file descriptors the commands inherit (the campaign's lock)."""
    source = Path(ROOT, step.copy[0]) if step.copy else None
    trained = source is not None and source.is_dir() and _trained_marker(step).is_file()
    if source is not None and source.is_dir() and not trained:
        print(f"[{step.name}] {source} exists but this step did not make it: move it away or "
              "delete it", flush=True)  # fmt: skip
        return False
    for command in () if trained else step.commands:
        line = argv(command, step, device)
        print(f"[{step.name}] $ {' '.join(line)}", flush=True)
        try:
            if subprocess.run(line, cwd=ROOT, check=False, pass_fds=hold).returncode != 0:
                return False
        except OSError as error:  # not found, not executable
            print(f"[{step.name}] cannot run {line[0]}: {error}", flush=True)
            return False
    if source is not None:
        _trained_marker(step).parent.mkdir(parents=True, exist_ok=True)
        _trained_marker(step).touch()
        with atomic_output_dir(Path(ROOT, step.copy[1]), overwrite=True) as temporary:
            shutil.copytree(source, temporary, dirs_exist_ok=True)
    return True


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, check=False, capture_output=True, text=True)


def commit(step: Step, partial: bool = False) -> bool:
    """Commit the step's results and the record, nothing else; True when done (or nothing
    changed). Retried: another job may hold the index for a moment.
    ``partial``: a command failed; the rows its benchmark finished before are committed."""
    paths = [p for p in (*step.results, str(RECORD.relative_to(ROOT))) if Path(ROOT, p).exists()]
    if not paths:  # an empty pathspec would commit whatever else is staged
        return True
    message = f"campaign {step.name} (issue {step.issue}): {step.why}"
    message += " (partial: a command failed, the runs finished before it)" if partial else ""
    for _ in range(3):
        if _git("add", "--", *paths).returncode == 0:
            if _git("diff", "--cached", "--quiet", "--", *paths).returncode == 0:
                return True  # nothing new
            if _git("commit", "-q", "-m", message, "--", *paths).returncode == 0:
                return True
        time.sleep(10)
    print(f"[{step.name}] could not commit its results: commit {paths} by hand", flush=True)
    return False


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="show the steps and stop")
    parser.add_argument("--only", help="comma-separated step names (default: every pending one)")
    parser.add_argument("--hours", type=float, help="start only steps that fit in this time")
    parser.add_argument("--device", help="passed to every step that trains (e.g. cuda)")
    parser.add_argument("--commit", action="store_true", help="git-commit each step's results")
    args = parser.parse_args(arguments)
    names = {step.name for step in STEPS}
    only = set(args.only.split(",")) if args.only else names
    if not only <= names:
        parser.error(f"unknown steps {sorted(only - names)}; --list shows them")
    done = finished()
    if args.list:
        filled: set[tuple[str, int]] = set()  # by the pending steps listed before
        for step in STEPS:
            if step.name in done:
                minutes, state = step.minutes, f"done {done[step.name]['finished']}"
            else:
                minutes, missing = estimate(step, filled)
                state = "pending" + (f", dense {' '.join(missing)}" if missing else "")
                filled.update(step.dense)
            print(f"{step.name:22} #{step.issue} ~{minutes:>4.0f} min  {state:32} {step.why}")
        return 0
    if "GLUE_DIR" not in os.environ:
        parser.error("set GLUE_DIR to the GLUE data (glue_data layout), e.g. ../shared/data/glue")
    if args.commit and _git("var", "GIT_COMMITTER_IDENT").returncode != 0:
        parser.error("--commit needs a git identity: git config user.name/user.email")
    try:
        device = describe_device(resolve_device(args.device or "auto"))
    except ConfigError as error:
        parser.error(str(error))
    cpu = f"cpu ({cpu_name()})"  # step times depend on the processor
    device = cpu if device == "cpu" else device
    with campaign_lock() as lock:
        if lock is None:
            parser.error(
                "another campaign, or a benchmark one started, holds runs/.campaign.lock: wait "
                "for it (ps aux | grep benchmarks/) or stop it first"
            )
        return run_steps(args, only, done, device, cpu, (lock,))


def run_steps(
    args, only: set[str], done: dict, device: str, cpu: str, hold: tuple[int, ...]
) -> int:
    """The pending steps of ``only`` in order, each committed as it finishes."""
    deadline = time.monotonic() + args.hours * 3600 if args.hours else None
    failed: set[str] = set()
    for step in STEPS:
        if step.name not in only or step.name in done:
            continue
        waiting = [p for p in step.after if p not in done]
        if waiting:
            print(f"[{step.name}] skipped: waits for {', '.join(waiting)}", flush=True)
            if failed & set(waiting):
                failed.add(step.name)
            continue
        minutes, missing = estimate(step)
        if deadline and time.monotonic() + minutes * 60 > deadline:
            dense = f" (with dense {' '.join(missing)})" if missing else ""
            print(f"[{step.name}] skipped: ~{minutes:.0f} min{dense} does not fit", flush=True)
            continue
        started = time.monotonic()
        if not run_step(step, args.device, hold):
            print(f"[{step.name}] FAILED; its results so far stay in place", flush=True)
            failed.add(step.name)
            if args.commit:
                commit(step, partial=True)
            continue
        record_finished(step, time.monotonic() - started, device if step.takes_device else cpu)
        done = finished()
        print(f"[{step.name}] done in {(time.monotonic() - started) / 60:.1f} min", flush=True)
        if args.commit and not commit(step):
            failed.add(step.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

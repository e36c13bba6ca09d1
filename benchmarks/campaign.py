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
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _rows import read_json, write_json

from prunekit.device import cpu_name, describe_device, resolve_device
from prunekit.errors import ConfigError
from prunekit.outputs import atomic_output_dir
from prunekit.train.task_recipes import dense_cache_root, dense_key, recipe_for

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "campaign.json"
DENSE_RECORD = ROOT / "benchmarks" / "results" / "dense.json"
UNTIMED_DENSE_MINUTES = 30.0  # a dense recipe dense.json has not timed: SST-2's took 37
LOOP = "--precision bf16 --group-by-length"
SPARSE_LOOP = "--option precision=bf16 --option group_by_length=true"
MEAN_PRUNER = "benchmarks/results/smp/pruners/smp_pruner_mean"
SMP, PEER = "benchmarks/results/smp", "benchmarks/results/peer-bf16-grouped"
SPARSE = "benchmarks/results/sparse"


@dataclass(frozen=True)
class Step:
    name: str
    issue: int
    why: str
    minutes: int  # estimate on this CPU
    commands: tuple[str, ...]  # split like a shell; "python" and "prunekit" are this venv's
    results: tuple[str, ...]  # paths committed once it finishes
    after: tuple[str, ...] = ()  # steps that must have finished first
    copy: tuple[str, str] | None = None  # (from, to): a trained artefact into the results
    takes_device: bool = True  # whether its commands accept --device
    dense: tuple[tuple[str, int], ...] = ()  # (task, seed) of the default model's dense cache


def dense_models(needs: str) -> tuple[tuple[str, int], ...]:
    """``"mrpc:0 stsb:0,2"`` as ((mrpc, 0), (stsb, 0), (stsb, 2))."""
    pairs = (item.split(":") for item in needs.split())
    return tuple((task, int(seed)) for task, seeds in pairs for seed in seeds.split(","))


def _smp(task: str, seed: int | str, pruner: str = "") -> str:
    chosen = f"--pruner {pruner} " if pruner else ""
    return f"python benchmarks/smp.py {chosen}--tasks {task} --seeds {seed} --fractions 0.5 {LOOP}"


def _peer(task: str, seeds: str = "0") -> str:
    return f"python benchmarks/peer.py --tasks {task} --seeds {seeds} {LOOP}"


STEPS = (
    Step(
        "smp-pruner-mean",
        10,
        "a second SMP pruner, meta-trained on mean-pooled pair representations (MiniLM's "
        "pooler is untrained)",
        70,
        # --resume: from the last checkpoint when there is one, else from the start
        (
            "prunekit smp train-pruner --out runs/smp_pruner_mean --steps 1000 --micro-batch 16 "
            "--accumulation 2 --pair-representation mean --quiet --resume",
        ),
        (MEAN_PRUNER,),
        copy=("runs/smp_pruner_mean", MEAN_PRUNER),
    ),
    Step(
        "smp-mean-mrpc-s2",
        10,
        "the mean pruner where the shipped one failed (MRPC seed 2)",
        5,
        (_smp("mrpc", 2, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("mrpc:2"),
    ),
    Step(
        "smp-mean-stsb-s1",
        10,
        "the mean pruner on the held-out task (STS-B seed 1)",
        10,
        (_smp("stsb", 1, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("stsb:1"),
    ),
    Step(
        "peer-rte-s0",
        11,
        "peer on a second task: 50/70%, the no-peer ablation, lossless at epsilon 0 and 0.5",
        50,
        (_peer("rte"),),
        (PEER,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "sparse-augment-mrpc",
        12,
        "sparse-kd with 4 augmented copies at the cliff (70%, 80%): with vs without augmentation",
        60,
        (
            "python benchmarks/sparse.py --tasks mrpc --seeds 0 --sparsities 0.7,0.8 "
            f"--variants sparse-kd --augment 4 {SPARSE_LOOP}",
        ),
        (SPARSE,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "peer-descend-mrpc-s0",
        11,
        "peer's lossless mode with search=descend on MRPC, where bisection stopped under a "
        "passing 45% (epsilon 0: 30% and 40% failed, so it removed nothing)",
        45,  # up to 10 students, 0.90 down to 0.45
        (f"python benchmarks/peer.py --tasks mrpc --seeds 0 --descend {LOOP}",),
        (PEER,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "smp-rte-s0",
        10,
        "SMP (the shipped pruner), random and HISP per layer, and dense on RTE",
        30,
        (_smp("rte", 0),),
        (SMP,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "smp-mean-rte-s0",
        10,
        "the mean pruner on RTE seed 0 (after smp-rte-s0, whose random, HISP and dense rows it "
        "shares)",
        5,
        (_smp("rte", 0, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean", "smp-rte-s0"),
        dense=dense_models("rte:0"),
    ),
    Step(
        "smp-stsb-s0-s2",
        10,
        "STS-B seeds 0 and 2 for both pruners: one seed cannot rank SMP against random there (4 "
        "of 36 heads apart, the two pruners' sets fine-tuned 57 points apart on seed 1)",
        130,  # eight STS-B runs of ~16 min (smp-mean-stsb-s1's)
        (_smp("stsb", "0,2"), _smp("stsb", "0,2", MEAN_PRUNER)),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("stsb:0,2"),
    ),
    Step(
        "peer-stsb-s0",
        11,
        "peer on STS-B (regression)",
        140,  # peer-rte-s0's runs at STS-B's ~7x longer fine-tunes
        (_peer("stsb"),),
        (PEER,),
        dense=dense_models("stsb:0"),
    ),
    Step(
        "peer-cola-s0",
        11,
        "peer on CoLA",
        120,
        (_peer("cola"),),
        (PEER,),
        dense=dense_models("cola:0"),
    ),
    Step(
        "smp-cola-s0",
        10,
        "SMP, random, HISP and dense on CoLA",
        40,
        (_smp("cola", 0),),
        (SMP,),
        dense=dense_models("cola:0"),
    ),
    Step(
        "sparse-rte-s0",
        12,
        "the sparsity curve on a second task (RTE, the four variants)",
        130,
        (
            "python benchmarks/sparse.py --tasks rte --seeds 0 --sparsities 0.5,0.7,0.9,0.95 "
            f"{SPARSE_LOOP}",
        ),
        (SPARSE,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "peer-mrpc-s1",
        11,
        "peer's third MRPC seed",
        25,
        (_peer("mrpc", "1"),),
        (PEER,),
        dense=dense_models("mrpc:1"),
    ),
    Step(
        "peer-descend-rte-s0",
        11,
        "peer's lossless mode with search=descend on RTE (bisection: 40% at epsilon 0, 60% at 0.5)",
        40,
        (f"python benchmarks/peer.py --tasks rte --seeds 0 --descend {LOOP}",),
        (PEER,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "smp-mean-diagnostics",
        10,
        "the mean pruner on its own objective, against random sets (last: its scores rank heads as "
        "the shipped pruner's do, Spearman 0.94-0.98, `smp/agreement.md`)",
        40,
        (f"python benchmarks/smp_diagnostics.py --pruner {MEAN_PRUNER}",),
        (SMP,),
        after=("smp-pruner-mean",),
        takes_device=False,
    ),
)


def dense_minutes(task: str) -> float:
    """How long the default model's dense fine-tune of ``task`` took in ``dense.json`` (its
    current recipe, this CPU, fp32), or ``UNTIMED_DENSE_MINUTES``."""
    digest = recipe_for(task).digest()
    sweep = read_json(DENSE_RECORD).get("tasks", {}).get(task, {}).get("sweep", [])
    timed = [run["train_seconds"] / 60 for run in sweep if run["key"].endswith(f"-{digest}")]
    return max(timed, default=UNTIMED_DENSE_MINUTES)


def is_cached(task: str, seed: int) -> bool:
    root = dense_cache_root()
    root = root if root.is_absolute() else ROOT / root  # the steps run in ROOT
    return (root / dense_key("default", task, seed, recipe_for(task)) / "metrics.json").is_file()


def estimate(step: Step, filled: set[tuple[str, int]] = frozenset()) -> tuple[float, list[str]]:
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


def run_step(step: Step, device: str | None) -> bool:
    """Run ``step``'s commands in the repository root, then its copy; True when all succeed.
    A copy step whose commands finished before (killed before its copy) only copies."""
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
            if subprocess.run(line, cwd=ROOT, check=False).returncode != 0:
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
        if not run_step(step, args.device):
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

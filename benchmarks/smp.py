"""Benchmark: Single-Shot Meta-Pruning against random and HISP per layer, each pruned model
fine-tuned from the pre-trained weights with the task's recipe.

For every (task, seed, fraction of heads per layer, method):
- ``smp``: the pruner scores the pre-trained model on the task's training inputs (no labels);
- ``random``: random heads, the same count per layer;
- ``hisp``: importance from the cached dense fine-tuned model (it has seen labels and a whole
  fine-tuning run: a strong reference), the same count per layer; a task fine-tuned on a
  ``--train-cap`` subset takes it from its in-run dense model instead (below);
then the pruned pre-trained model (a new classifier) is fine-tuned with the task's dense recipe
and evaluated on dev. A ``dense`` row per (task, seed) fine-tunes the unpruned model in the
same run, the reference for fine-tuning wall time (and the dense metric beside the cached
dense model's); prune-after-fine-tuning is HISP's R1 in benchmarks/results/head_baselines/. Rows
hold the fine-tuning wall time, SMP's scoring time and the device; the pruner's own training
time is in its pruner.json.

One line per finished run in ``benchmarks/results/smp/results.jsonl`` (a killed run resumes
there), and ``report.md`` beside it. STS-B is the task held out of pruner training.

    python benchmarks/smp.py [--pruner PDIR] [--tasks rte,mrpc,stsb,cola,sst2] [--seeds 0,1,2]

SST-2's recipe (the whole split, 2 epochs) makes its 30 fine-tunes ~20 h on this CPU;
``--train-cap sst2=20000`` fine-tunes every SST-2 row, the in-run dense one included, on a
seeded 20,000-example subset (~5 min each), and the report takes those rows' Δ against it;
its HISP rows score that in-run dense model of their seed (the same subset, fine-tuned again
where this machine lacks it), not the full-recipe one of the dense cache (~65 min a seed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from _rows import (
    add_device_argument,
    add_loop_arguments,
    append_row,
    keyed_rows,
    loop_options,
    loop_suffix,
    parse_caps,
)
from accelerate.utils import set_seed
from smp_report import pruner_record, write_report

from prunekit.data import TaskData, get_task, primary_metric
from prunekit.device import cpu_name
from prunekit.methods import decide, head_target
from prunekit.models import apply_plan, current_plan, load, save
from prunekit.models.sources import load_for_task
from prunekit.scoring.smp import BUILTIN_PRUNER, resolve_pruner
from prunekit.train.task import FinetuneConfig, finetune_task
from prunekit.train.task_recipes import cached_dense_model, recipe_for

RESULTS = Path(__file__).parent / "results" / "smp"
RUNS = Path("runs/smp")
METHODS = ("smp", "random", "hisp")


def done_keys() -> dict[str, dict]:
    return keyed_rows(RESULTS / "results.jsonl")


def train_cap(task: str, args) -> int | None:
    """The ``--train-cap`` of ``task``: train examples its fine-tunes see instead of the
    recipe's (None: the recipe's)."""
    return args.train_cap.get(task)


def variant_suffix(task: str, args, separator: str = "-") -> str:
    """What non-default loop options and a train cap add to a run's key or folder: nothing
    for the defaults, so older rows keep their keys."""
    cap = train_cap(task, args)
    return loop_suffix(loop_options(args), separator) + (f"{separator}cap{cap}" if cap else "")


def pruner_name(directory: Path) -> str:
    """How rows name a pruner: "" for the shipped one, so its rows keep their older keys; any
    other is its folder's name and a digest of its weights, so two pruners never share rows."""
    if directory.resolve() == resolve_pruner(BUILTIN_PRUNER).resolve():
        return ""
    digest = hashlib.sha256()
    for weights in sorted(directory.glob("*.safetensors")):
        digest.update(weights.read_bytes())
    return f"{directory.name}-{digest.hexdigest()[:8]}"


def pruner_suffix(method: str, args, separator: str = "-") -> str:
    """What a pruner other than the shipped one adds to an smp run's key or folder (the other
    methods do not read the pruner, so their rows are shared by every pruner)."""
    return f"{separator}pruner={args.pruner_name}" if method == "smp" and args.pruner_name else ""


def run_key(task: str, seed: int, fraction: float, method: str, args) -> str:
    """A run's key in results.jsonl (default loop options and the shipped pruner keep the keys
    of older rows)."""
    suffix = variant_suffix(task, args, "|") + pruner_suffix(method, args, "|")
    return f"{task}|{seed}|{fraction:.2f}|{method}{suffix}"


def one_run(task: str, seed: int, fraction: float, method: str, args) -> dict:
    recipe = recipe_for(task).model_copy(update=loop_options(args))
    spec = get_task(task)
    set_seed(seed)  # the new classifier head of the pre-trained model
    pretrained, tokenizer = load_for_task("default", spec)
    data = TaskData.for_task(spec, tokenizer, args.data_dir, seed, recipe.max_seq_length)
    target = head_target(current_plan(pretrained), heads=fraction, per_layer=True)
    options: dict = {}
    if method == "dense":  # the unpruned model, fine-tuned in this same run (time reference)
        source = None
    elif method == "hisp":  # scored on the fine-tuned dense model, applied to the pre-trained one
        source = load(importance_model(task, seed, args))
    elif method == "smp":  # attention maps need eager attention
        source, options = load_for_task("default", spec, "eager")[0], {"pruner": str(args.pruner)}
    else:
        source = pretrained
    if source is None:
        plan, scoring_seconds = current_plan(pretrained), 0.0
    else:
        result = decide(source, method, target, data, seed, options)
        plan, scoring_seconds = result.plan, result.record["decision_seconds"]
    directory = run_dir(task, seed, fraction, method, args)
    out = fine_tuned(pretrained, tokenizer, plan, task, seed, directory, args)
    metrics = json.loads((out / "metrics.json").read_text())
    if variant_suffix(task, args):  # other loop options or a cap: the in-run dense model
        dense_dev = (
            metrics["dev"]["primary"]
            if method == "dense"
            else done_keys()[run_key(task, seed, 0.0, "dense", args)]["dev"]
        )
    else:  # the task's recipe as it is: the shared cache's model (the in-run dense row beside it)
        dense_dir = cached_dense_model(
            "default", task, seed, recipe, data_dir=args.data_dir, device=args.device
        )
        dense_dev = json.loads((dense_dir / "metrics.json").read_text())["dev"]["primary"]
    return {
        "key": run_key(task, seed, fraction, method, args),
        **loop_options(args),
        **({"train_cap": train_cap(task, args)} if train_cap(task, args) else {}),
        "task": task,
        "seed": seed,
        "fraction": fraction,
        "method": method,
        "metric": primary_metric(task),
        "kept_heads": [list(h) for h in plan.kept_heads],
        "dev": metrics["dev"]["primary"],
        "dev_constant": metrics["dev"].get("constant"),
        "validation": metrics["validation"]["primary"],
        "dense_dev": dense_dev,
        "finetune_seconds": metrics["train_seconds"],
        "device": metrics.get("device", "cpu"),  # where the fine-tune ran (older: the CPU)
        "cpu": cpu_name(),  # which processor timed it (rows before 2026-12-06 do not say)
        "scoring_seconds": round(scoring_seconds, 2),
        "held_out_of_pruner_training": task not in args.pruner_tasks,
        **(importance_record(task, seed, args) if method == "hisp" else {}),
        # the shipped pruner's rows stay as they were (no field): older rows lack it too
        **({"pruner": args.pruner_name} if method == "smp" and args.pruner_name else {}),
        **({"pruner_record": args.pruner_record} if method == "smp" else {}),
    }


def run_dir(task: str, seed: int, fraction: float, method: str, args) -> Path:
    suffix = variant_suffix(task, args) + pruner_suffix(method, args)
    return RUNS / f"{task}-s{seed}-{fraction:.2f}-{method}{suffix}"


def fine_tuned(pretrained, tokenizer, plan, task: str, seed: int, directory: Path, args) -> Path:
    """``directory``/finetuned: the pre-trained model pruned to ``plan``, fine-tuned with the
    task's recipe (resumed, or found done, from an earlier run)."""
    recipe = recipe_for(task).model_copy(update=loop_options(args))
    init, out = directory / "init", directory / "finetuned"
    if not (init / "config.json").is_file():
        save(apply_plan(pretrained, plan), init, tokenizer)
    else:  # a run dir kept from before: its heads must be the ones chosen now
        check_same_heads(init, plan)
    if not (out / "metrics.json").is_file():
        finetune_task(
            FinetuneConfig(
                model=str(init),
                task=task,
                out=out,
                data_dir=args.data_dir,
                train=recipe.train_config(seed, device=args.device),
                max_seq_length=recipe.max_seq_length,
                max_train_samples=train_cap(task, args) or recipe.max_train_samples,
                resume=True,
                overwrite=out.exists(),
            )
        )
    return out


def importance_model(task: str, seed: int, args) -> Path:
    """The fine-tuned dense model HISP scores: the dense cache's (the task's full recipe), or
    for a task fine-tuned on a ``--train-cap`` subset the in-run dense model of the same seed,
    the one its rows' Δ is taken against (fine-tuned again, the same seed and subset, where
    this machine lacks it): SST-2's full recipe costs ~65 min a seed on this CPU, the capped
    one ~5, and capped rows then stand against the dense model they are measured by."""
    if not train_cap(task, args):
        return cached_dense_model("default", task, seed, data_dir=args.data_dir, device=args.device)
    directory = run_dir(task, seed, 0.0, "dense", args)
    if not (directory / "finetuned" / "metrics.json").is_file():
        print(f"fine-tune the in-run dense model again: {directory}", file=sys.stderr, flush=True)
        set_seed(seed)  # the same new classifier head as the dense row's
        pretrained, tokenizer = load_for_task("default", get_task(task))
        fine_tuned(pretrained, tokenizer, current_plan(pretrained), task, seed, directory, args)
    return directory / "finetuned"


def importance_record(task: str, seed: int, args) -> dict:
    """Where a HISP row's importance came from, and that model's dev metric beside the dense
    row's (a model fine-tuned again on another machine may differ from the row's)."""
    if not train_cap(task, args):
        return {"importance_from": "dense cache (the task's full recipe)"}
    directory = importance_model(task, seed, args)
    return {
        "importance_from": "in-run dense model (the same train cap)",
        "importance_model_dev": json.loads((directory / "metrics.json").read_text())["dev"][
            "primary"
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pruner", type=Path, help="pruner directory (default: the shipped one)")
    parser.add_argument("--tasks", default="rte,mrpc,stsb,cola,sst2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="0.25,0.5,0.75")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--train-cap",
        default="",
        help="TASK=N,...: fine-tune TASK on a seeded N-example train subset, every row alike "
        "(the in-run dense one included, and Δ is then taken against it), e.g. sst2=20000",
    )
    add_loop_arguments(parser, "the fine-tunes (the in-run dense one included)")
    add_device_argument(parser, "fine-tuning")
    args = parser.parse_args()
    args.train_cap = parse_caps(parser, "--train-cap", args.train_cap)
    if unknown := set(args.train_cap) - set(args.tasks.split(",")):
        parser.error(f"--train-cap names tasks not in --tasks: {', '.join(sorted(unknown))}")
    args.pruner = args.pruner or resolve_pruner(BUILTIN_PRUNER)
    trained = json.loads((args.pruner / "pruner.json").read_text())
    args.pruner_tasks = trained.get("trained_on", {}).get("config", {}).get("tasks", [])
    args.pruner_name = pruner_name(args.pruner)
    args.pruner_record = pruner_record(trained, args.pruner_name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for task in args.tasks.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                runs = [(0.0, "dense")]  # first: the time reference of this run
                runs += [
                    (float(f), m)
                    for f in args.fractions.split(",")
                    for m in args.methods.split(",")
                ]
                for fraction, method in runs:
                    key = run_key(task, seed, fraction, method, args)
                    if key in done_keys():
                        continue
                    print(f"run {key}", file=sys.stderr, flush=True)
                    row = one_run(task, seed, fraction, method, args)
                    append_row(RESULTS / "results.jsonl", row)
                    write_report(RESULTS)  # after every row: a cut-short run commits both
    write_report(RESULTS)


def check_same_heads(init: Path, plan) -> None:
    """Refuse to resume from a pruned model whose heads differ from those chosen now (HISP's
    importance comes from the dense cache, which another machine rebuilds with other floats):
    the row would record heads the fine-tuned model does not have."""
    stored = json.loads((init / "config.json").read_text())["prunekit"]["plan"]["kept_heads"]
    if [list(h) for h in stored] != [list(h) for h in plan.kept_heads]:
        raise SystemExit(
            f"{init} keeps other heads than the ones chosen now (the dense model or the pruner "
            f"changed since it was made): delete {init.parent} and run again"
        )


if __name__ == "__main__":
    sys.exit(main())

"""Commands that run studies: the main job, comparison sweeps and their reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from prunekit.cli.app import (
    AsJson,
    DataDir,
    DeviceOption,
    Overwrite,
    Quiet,
    Seed,
    app,
    train_config,
    user_errors,
)


def _floats(text: str, option: str) -> tuple[float, ...]:
    return _parsed(text, option, float, "numbers")


def _ints(text: str, option: str) -> tuple[int, ...]:
    return _parsed(text, option, int, "integers")


def _parsed(text: str, option: str, kind: type, noun: str) -> tuple[Any, ...]:
    from prunekit.errors import ConfigError

    try:
        return tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated {noun}, got {text!r}") from None


@app.command()
@user_errors
def compare(
    task: Annotated[str, typer.Option(help="GLUE task.")],
    out: Annotated[Path, typer.Option(help="Run directory (results.jsonl, dense/ cache).")],
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated methods (default: every method that prunes to a head count).",
            show_default=False,
        ),
    ] = None,
    heads: Annotated[str, typer.Option(help="Comma-separated fractions of heads removed.")] = (
        "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    ),
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    regimes: Annotated[
        str, typer.Option(help="r0 (no retraining), r1 (equal recovery).")
    ] = "r0,r1",
    model: Annotated[
        str, typer.Option(help="Base model: path, hub name or 'default'.")
    ] = "default",
    data_dir: DataDir = None,
    finetune_epochs: Annotated[
        int | None,
        typer.Option(
            help="Dense fine-tuning epochs (default: the task's recipe).", show_default=False
        ),
    ] = None,
    max_train_samples: Annotated[
        int | None,
        typer.Option(help="Seeded train subset for dense fine-tuning (0: the whole split)."),
    ] = None,
    recover_epochs: Annotated[
        int, typer.Option(help="R1 recovery epochs, equal for all methods.")
    ] = 1,
    recover_max_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for recovery.")
    ] = None,
    distill: Annotated[
        bool, typer.Option("--distill", help="R1 recovery with KD from the dense model.")
    ] = False,
    search_samples: Annotated[
        int | None, typer.Option(help="Validation examples the methods may use.")
    ] = None,
    eval_max_samples: Annotated[
        int | None, typer.Option(help="Cap on evaluated examples per split.")
    ] = None,
    method_option: Annotated[
        list[str] | None,
        typer.Option(help="METHOD.KEY=VALUE (repeatable), e.g. l0.steps=300."),
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Also run the methods that choose the head count once per budget, "
            "e.g. 0,0.5,1,2 (metric points)."
        ),
    ] = None,
    budget_methods: Annotated[
        str | None,
        typer.Option(
            help="Which of those run the budgets (default: all: astar and peer's lossless mode).",
            show_default=False,
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, or bf16: recovery and every method that trains autocast to bfloat16 "
            "(~1.7x faster steps on CPUs with AMX)."
        ),
    ] = "fp32",
    group_by_length: Annotated[
        bool,
        typer.Option(
            "--group-by-length",
            help="Recovery and every method that trains use length-grouped batches (less padding).",
        ),
    ] = False,
    borrow_from: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="RUNDIR",
            help="Run dir of another sweep (repeatable): its runs of this sweep's keys, made "
            "with the same settings and dense models, are taken instead of run again.",
        ),
    ] = None,
    no_timing: Annotated[
        bool, typer.Option("--no-timing", help="Skip measured speed-ups.")
    ] = False,
    onnx_timing: Annotated[
        bool,
        typer.Option(
            "--onnx-timing", help="Also time both models in ONNX Runtime (needs the onnx extra)."
        ),
    ] = False,
    device: DeviceOption = "auto",
    quiet: Quiet = False,
) -> None:
    """Sweep methods x fractions x seeds in regimes R0/R1 into RUNDIR/results.jsonl (resumable)."""
    from prunekit.recipes.common import at_least
    from prunekit.recipes.compare import (
        CompareConfig,
        DistillConfig,
        check_sweep_choices,
        dense_recipe,
        per_method_options,
        run_compare,
    )

    # found now, not after the dense fine-tune (and before config.json records them)
    at_least(1, finetune_epochs=finetune_epochs, recover_epochs=recover_epochs)
    at_least(0, max_train_samples=max_train_samples)  # 0: the whole split, as in finetune
    at_least(1, recover_max_samples=recover_max_samples)
    at_least(1, eval_max_samples=eval_max_samples, search_samples=search_samples)

    chosen = {}
    if methods is not None:
        chosen["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip())
    config = CompareConfig(
        task=task,
        out=out,
        model=model,
        **chosen,
        fractions=_floats(heads, "--heads"),
        seeds=_ints(seeds, "--seeds"),
        regimes=tuple(r.strip() for r in regimes.split(",") if r.strip()),
        data_dir=data_dir,
        recipe=dense_recipe(
            task, epochs=finetune_epochs, max_train_samples=max_train_samples, whole_split=0
        ),
        recover=train_config(epochs=recover_epochs),
        recover_max_samples=recover_max_samples,
        distill=DistillConfig() if distill else None,
        search_samples=search_samples,
        eval_max_samples=eval_max_samples,
        method_options=per_method_options(method_option or ()),
        budgets=_floats(budgets, "--budgets") if budgets else (),
        **(
            {"budget_methods": tuple(m.strip() for m in budget_methods.split(",") if m.strip())}
            if budget_methods
            else {}
        ),
        precision=precision,
        group_by_length=group_by_length,
        borrow_from=tuple(borrow_from or ()),
        time_speed=not no_timing,
        time_onnx=onnx_timing,
        device=device,
        progress=not quiet,
    )
    check_sweep_choices(config, budget_methods_given=bool(budget_methods))
    rows = run_compare(config)
    typer.echo(f"{len(rows)} runs in {out / 'results.jsonl'}; render with: prunekit report {out}")


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="Directory written by `prunekit compare`.")],
) -> None:
    """Write report.md and PNG figures for a comparison run directory."""
    from prunekit.recipes.report import run_report

    typer.echo(f"wrote {run_report(run_dir)}")


@app.command()
@user_errors
def run(
    task: Annotated[str, typer.Option(help="GLUE task.")] = "sst2",
    model: Annotated[
        str, typer.Option(help="Path, hub name, or 'default' (PyPI MiniLM).")
    ] = "default",
    out: Annotated[
        Path, typer.Option(help="Run directory (dense/, pruned/, summary.json).")
    ] = Path("runs/demo"),
    method: Annotated[
        str | None,
        typer.Option(
            help="Pruning method; default: the comparison's leader at 50% R1 (marked [default] "
            "in `prunekit methods`; the README shows the comparison)."
        ),
    ] = None,
    floor: Annotated[
        str, typer.Option(help="Method shown beside it as the floor ('none' to skip).")
    ] = "random",
    method_option: Annotated[
        list[str] | None,
        typer.Option(help="METHOD.KEY=VALUE (repeatable), e.g. astar.max_evals=200."),
    ] = None,
    heads: Annotated[float, typer.Option(help="Fraction of heads to remove.")] = 0.5,
    max_train_samples: Annotated[
        int | None,
        typer.Option(
            help="Fine-tune on at most this many train examples (a seeded subset; default "
            "20000, so the job fits in 15 minutes on a 2-core CPU); 0: the whole train split.",
            show_default=False,
        ),
    ] = None,
    recover_max_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for recovery.")
    ] = 4000,
    data_dir: DataDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Reuse finished stages of --out.")
    ] = False,
    device: DeviceOption = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """The main job: fine-tune, prune, recover, evaluate, save, and measure the speed-up."""
    from prunekit.recipes.compare import per_method_options
    from prunekit.recipes.run import RunConfig, run_main_job

    summary = run_main_job(
        RunConfig(
            task=task,
            model=model,
            out=out,
            **({"method": method} if method else {}),
            floor=None if floor == "none" else floor,
            method_options=per_method_options(method_option or ()),
            heads=heads,
            seed=seed,
            recover_max_samples=recover_max_samples,
            data_dir=data_dir,
            resume=resume,
            overwrite=overwrite,
            device=device,
            progress=not quiet,
            **_train_cap(max_train_samples),
        )
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from prunekit.recipes.common import console

    d, s = summary["dense"], summary["speedup"]
    runs = [summary[n] for n in ("pruned", "floor") if n in summary]
    metric = summary["primary_metric"]
    table = Table(title=f"{summary['task']}: {summary['method']} pruning, seed {summary['seed']}")
    table.add_column("", justify="right")
    table.add_column("dense", justify="right")
    for run_ in runs:
        label = run_["method"] + (" (floor)" if run_ is summary.get("floor") else "")
        table.add_column(label, justify="right")
    table.add_row("attention heads", str(d["heads"]), *(str(r["heads"]) for r in runs))
    table.add_row("parameters", f"{d['parameters']:,}", *(f"{r['parameters']:,}" for r in runs))
    table.add_row(
        f"dev {metric}",
        f"{d['dev']:.2f}",
        *(f"{r['dev']:.2f} (before recovery {r['dev_before_recovery']:.2f})" for r in runs),
    )
    table.add_row(
        f"validation {metric}", f"{d['validation']:.2f}", *(f"{r['validation']:.2f}" for r in runs)
    )
    table.add_row(
        "latency b1 @128",
        f"{d['latency_ms']:.1f} ms",
        *(f"{r['latency_ms']:.1f} ms" for r in runs),
    )
    table.add_row(
        "throughput b32 @128",
        f"{d['throughput']:.1f} seq/s",
        *(f"{r['throughput']:.1f} seq/s" for r in runs),
    )
    table.add_row(
        "speed-up measured (b1 / b32)", "1.00", f"{s['latency']:.2f}x / {s['throughput']:.2f}x"
    )
    table.add_row("speed-up ideal (encoder MACs)", "1.00", f"{s['ideal']:.2f}x")
    table.add_row("measured / ideal (b32)", "", f"{s['throughput_vs_ideal']:.2f}")
    console.print(table)
    console.print(f"pruned model: {summary['paths']['pruned']}  (load with prunekit.load)")


def _train_cap(max_train_samples: int | None) -> dict:
    """`prunekit run --max-train-samples`: unset keeps RunConfig's cap, 0 lifts it."""
    return {} if max_train_samples is None else {"max_train_samples": max_train_samples or None}

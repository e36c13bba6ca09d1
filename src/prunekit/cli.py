"""The ``prunekit`` command line. Each command turns options into a config and calls a recipe.

A `PrunekitError` (bad input the user can fix) prints one line on stderr and exits with 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from prunekit.errors import PrunekitError

app = typer.Typer(
    name="prunekit",
    help="Prune Transformer encoders into physically smaller Hugging Face models, with proof.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

Seed = Annotated[int, typer.Option(help="Seed for every random choice; same seed, same plan.")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        help="GLUE data in the glue_data layout (default: $GLUE_DIR).", show_default=False
    ),
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def _user_errors(fn):
    """Turn PrunekitError into one stderr line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PrunekitError as err:
            typer.echo(f"prunekit: error: {err}", err=True)
            raise typer.Exit(2) from None

    return wrapper


def _emit(data: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from prunekit.recipes.common import console

        console.print(human, highlight=False)


def _train_config(**kwargs: Any):
    from pydantic import ValidationError

    from prunekit.errors import ConfigError
    from prunekit.train import TrainConfig

    try:
        return TrainConfig(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}".replace("_", "-") + f": {first['msg']}") from None


@app.command()
@_user_errors
def finetune(
    task: Annotated[
        str, typer.Option(help="GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory for the fine-tuned model.")],
    model: Annotated[
        str, typer.Option(help="Path, hub name, or 'default' (PyPI MiniLM).")
    ] = "default",
    data_dir: DataDir = None,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = 5e-5,
    epochs: Annotated[int, typer.Option(help="Epochs over the train split.")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per step (per process).")] = 32,
    max_seq_length: Annotated[int, typer.Option(help="Truncate inputs to N tokens.")] = 128,
    max_train_samples: Annotated[int | None, typer.Option(help="Seeded subset of train.")] = None,
    warmup_ratio: Annotated[float, typer.Option(help="Linear warm-up fraction.")] = 0.1,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps (default: each epoch).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune an encoder on a GLUE task (`accelerate launch` runs it on several processes)."""
    from prunekit.recipes.finetune import FinetuneConfig, run_finetune

    train = _train_config(
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )
    record = run_finetune(
        FinetuneConfig(
            model=model,
            task=task,
            out=out,
            data_dir=data_dir,
            train=train,
            max_seq_length=max_seq_length,
            max_train_samples=max_train_samples,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
        )
    )
    _emit(
        record,
        as_json,
        f"saved {out}: validation {record['validation']['primary']:.2f}, "
        f"dev {record['dev']['primary']:.2f} ({task})",
    )


@app.command("eval")
@_user_errors
def eval_(
    model: Annotated[str, typer.Option(help="Model directory (or 'default').")],
    task: Annotated[
        str | None, typer.Option(help="GLUE task (default: the one the model was fine-tuned on).")
    ] = None,
    split: Annotated[
        str, typer.Option(help="dev (reporting), validation (carved from train) or train.")
    ] = "dev",
    data_dir: DataDir = None,
    max_samples: Annotated[int | None, typer.Option(help="Seeded subset of the split.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 64,
    seed: Seed = 0,
    as_json: AsJson = False,
) -> None:
    """Evaluate a model on a GLUE split."""
    from prunekit.recipes.evaluate import run_evaluate

    result = run_evaluate(
        model, task, split, data_dir, seed, max_samples=max_samples, batch_size=batch_size
    )
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result.metrics.items())
    _emit(
        result.to_dict(),
        as_json,
        f"{result.task} {result.split} ({result.examples} examples): {metrics}",
    )


def _method_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a dict, with JSON values where they parse (3, 0.1, true)."""
    from prunekit.errors import ConfigError

    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--method-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


@app.command()
@_user_errors
def prune(
    model: Annotated[str, typer.Option(help="Fine-tuned model directory.")],
    out: Annotated[Path, typer.Option(help="Output directory for the pruned model.")],
    method: Annotated[
        str, typer.Option(help="Pruning method (see `prunekit methods`).")
    ] = "random",
    heads: Annotated[
        float | None, typer.Option(help="Fraction of all heads to remove, in [0, 1).")
    ] = None,
    keep_heads: Annotated[int | None, typer.Option(help="Number of heads to keep instead.")] = None,
    per_layer: Annotated[
        bool, typer.Option("--per-layer", help="Same number of heads in every layer.")
    ] = False,
    at_least_heads_per_layer: Annotated[
        int, typer.Option(help="Global mode: never leave a layer with fewer heads.")
    ] = 0,
    iterative: Annotated[
        bool, typer.Option("--iterative", help="hisp: re-score after every 10% of heads.")
    ] = False,
    method_option: Annotated[
        list[str] | None,
        typer.Option(help="Method setting KEY=VALUE (repeatable), e.g. steps=300 for l0."),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            help="astar: allowed drop of the primary metric (points) on the search split."
        ),
    ] = None,
    max_evals: Annotated[
        int | None, typer.Option(help="astar: cap on evaluated head sets.")
    ] = None,
    branching: Annotated[
        int | None, typer.Option(help="astar: successors per state (lowest-ablation heads).")
    ] = None,
    task: Annotated[str | None, typer.Option(help="GLUE task (default: the model's).")] = None,
    data_dir: DataDir = None,
    search_samples: Annotated[
        int | None, typer.Option(help="Subsample the validation split for the decision.")
    ] = None,
    eval_max_samples: Annotated[
        int | None, typer.Option(help="Evaluate on a seeded subset of each split (quick checks).")
    ] = None,
    recover_epochs: Annotated[
        int, typer.Option(help="Fine-tune the pruned model for E epochs (0 = none).")
    ] = 0,
    recover_max_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for recovery.")
    ] = None,
    learning_rate: Annotated[float, typer.Option(help="Recovery learning rate.")] = 5e-5,
    distill: Annotated[
        bool, typer.Option("--distill", help="Recover with logit KD from the unpruned model.")
    ] = False,
    distill_temperature: Annotated[float, typer.Option(help="KD temperature T.")] = 2.0,
    distill_alpha: Annotated[
        float, typer.Option(help="Weight of the KD term; CE gets 1 - alpha.")
    ] = 0.5,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Remove attention heads with a registered method and save the smaller model."""
    from prunekit.errors import ConfigError
    from prunekit.recipes.prune import DistillConfig, PruneConfig, run_prune

    if heads is None and keep_heads is None and method != "astar":
        raise ConfigError("give --heads FRACTION (e.g. 0.5) or --keep-heads N")
    options = _method_options(method_option)
    for key, value in (("budget", budget), ("max_evals", max_evals), ("branching", branching)):
        if value is not None:
            if method != "astar":
                raise ConfigError(f"--{key.replace('_', '-')} applies to --method astar only")
            options[key] = value
    if iterative:
        options["iterative"] = True
    recover = None
    if recover_epochs:
        recover = _train_config(epochs=recover_epochs, learning_rate=learning_rate, seed=seed)
    elif distill:
        raise ConfigError("--distill applies to recovery; add --recover-epochs E")
    distill_config = None
    if distill:
        if not 0 <= distill_alpha <= 1 or distill_temperature <= 0:
            raise ConfigError("--distill-alpha must be in [0, 1] and --distill-temperature > 0")
        distill_config = DistillConfig(temperature=distill_temperature, alpha_kd=distill_alpha)
    record = run_prune(
        PruneConfig(
            model=model,
            out=out,
            method=method,
            heads=heads,
            keep_heads=keep_heads,
            per_layer=per_layer,
            min_heads_per_layer=at_least_heads_per_layer,
            task=task,
            data_dir=data_dir,
            seed=seed,
            search_samples=search_samples,
            recover=recover,
            recover_max_samples=recover_max_samples,
            eval_max_samples=eval_max_samples,
            distill=distill_config,
            options=options,
            overwrite=overwrite,
            progress=not quiet,
        )
    )
    h = record["heads"]
    _emit(record, as_json, f"saved {out}: {h['after']}/{h['original']} heads kept")


@app.command()
@_user_errors
def inspect(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    seq_len: Annotated[int, typer.Option(help="Sequence length for MACs.")] = 128,
    as_json: AsJson = False,
) -> None:
    """Heads, FFN widths, parameters and MACs of a model, now and when dense."""
    from prunekit.models import load, model_stats
    from prunekit.models.sources import resolve_model

    stats = model_stats(load(resolve_model(model)), seq_len).to_dict()
    human = (
        f"{stats['architecture']}: {stats['heads_total']}/{stats['heads_original']} heads "
        f"(per layer {stats['heads_per_layer']}), {stats['parameters']:,}/"
        f"{stats['parameters_original']:,} parameters, encoder MACs@{seq_len} "
        f"{stats['encoder_macs']:,}/{stats['encoder_macs_original']:,}"
    )
    _emit(stats, as_json, human)


@app.command()
@_user_errors
def bench(
    model: Annotated[str, typer.Argument(help="Model directory.")],
    against: Annotated[
        str | None, typer.Option(help="Baseline model directory to compare with.")
    ] = None,
    seq_len: Annotated[int, typer.Option(help="Tokens per sequence.")] = 128,
    rounds: Annotated[int, typer.Option(help="Timed rounds per model (median reported).")] = 10,
    as_json: AsJson = False,
) -> None:
    """Measured latency (batch 1) and throughput (batch 32) vs the MAC-ideal speed-up."""
    from prunekit.models.sources import resolve_model
    from prunekit.recipes.bench import run_bench

    result = run_bench(
        resolve_model(model),
        resolve_model(against) if against else None,
        seq_len=seq_len,
        rounds=rounds,
    )
    lines = []
    for name, entry in result["models"].items():
        line = (
            f"{name}: {entry['heads']} heads, latency {entry['latency']['median_s'] * 1e3:.1f} ms, "
            f"throughput {entry['throughput']['sequences_per_s']:.1f} seq/s"
        )
        if "speedup" in entry:
            s = entry["speedup"]
            line += (
                f"; speed-up latency {s['latency']:.2f}x, throughput {s['throughput']:.2f}x, "
                f"ideal {s['ideal']:.2f}x (measured/ideal {s['throughput_vs_ideal']:.2f})"
            )
        lines.append(line)
    _emit(result, as_json, "\n".join(lines))


def _floats(text: str, option: str) -> tuple[float, ...]:
    from prunekit.errors import ConfigError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{option} expects comma-separated numbers, got {text!r}") from None


@app.command()
@_user_errors
def compare(
    task: Annotated[str, typer.Option(help="GLUE task.")],
    out: Annotated[Path, typer.Option(help="Run directory (results.jsonl, dense/ cache).")],
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = "random,hisp,l0",
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
    finetune_epochs: Annotated[int, typer.Option(help="Dense fine-tuning epochs.")] = 1,
    max_train_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for dense fine-tuning.")
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
    l0_steps: Annotated[int | None, typer.Option(help="Gate-training steps for l0.")] = None,
    astar_budgets: Annotated[
        str | None,
        typer.Option(help="Also run astar in budget mode at these budgets, e.g. 0,0.5,1,2."),
    ] = None,
    no_timing: Annotated[
        bool, typer.Option("--no-timing", help="Skip measured speed-ups.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Sweep methods x fractions x seeds in regimes R0/R1 into RUNDIR/results.jsonl (resumable)."""
    from prunekit.recipes.compare import CompareConfig, run_compare
    from prunekit.recipes.prune import DistillConfig

    options = {"l0": {"steps": l0_steps}} if l0_steps else {}
    rows = run_compare(
        CompareConfig(
            task=task,
            out=out,
            model=model,
            methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
            fractions=_floats(heads, "--heads"),
            seeds=tuple(int(x) for x in _floats(seeds, "--seeds")),
            regimes=tuple(r.strip() for r in regimes.split(",") if r.strip()),
            data_dir=data_dir,
            finetune=_train_config(epochs=finetune_epochs),
            max_train_samples=max_train_samples,
            recover=_train_config(epochs=recover_epochs),
            recover_max_samples=recover_max_samples,
            distill=DistillConfig() if distill else None,
            search_samples=search_samples,
            eval_max_samples=eval_max_samples,
            method_options=options,
            astar_budgets=_floats(astar_budgets, "--astar-budgets") if astar_budgets else (),
            time_speed=not no_timing,
            progress=not quiet,
        )
    )
    typer.echo(f"{len(rows)} runs in {out / 'results.jsonl'}; render with: prunekit report {out}")


@app.command()
@_user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="Directory written by `prunekit compare`.")],
) -> None:
    """Write report.md and PNG figures for a comparison run directory."""
    from prunekit.recipes.report import run_report

    typer.echo(f"wrote {run_report(run_dir)}")


@app.command()
def methods(as_json: AsJson = False) -> None:
    """List the registered pruning methods."""
    from prunekit.methods import list_methods

    names = list_methods()
    _emit({"methods": names}, as_json, "\n".join(names))


@app.command()
@_user_errors
def run(
    task: Annotated[str, typer.Option(help="GLUE task.")] = "sst2",
    model: Annotated[
        str, typer.Option(help="Path, hub name, or 'default' (PyPI MiniLM).")
    ] = "default",
    out: Annotated[
        Path, typer.Option(help="Run directory (dense/, pruned/, summary.json).")
    ] = Path("runs/demo"),
    method: Annotated[str, typer.Option(help="Pruning method.")] = "random",
    heads: Annotated[float, typer.Option(help="Fraction of heads to remove.")] = 0.5,
    max_train_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for fine-tuning.")
    ] = 8000,
    recover_max_samples: Annotated[
        int | None, typer.Option(help="Seeded train subset for recovery.")
    ] = 4000,
    data_dir: DataDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Reuse finished stages of --out.")
    ] = False,
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """The main job: fine-tune, prune, recover, evaluate, save, and measure the speed-up."""
    from prunekit.recipes.run import RunConfig, run_main_job

    summary = run_main_job(
        RunConfig(
            task=task,
            model=model,
            out=out,
            method=method,
            heads=heads,
            seed=seed,
            max_train_samples=max_train_samples,
            recover_max_samples=recover_max_samples,
            data_dir=data_dir,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
        )
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.table import Table

    from prunekit.recipes.common import console

    d, p, s = summary["dense"], summary["pruned"], summary["speedup"]
    metric = summary["primary_metric"]
    table = Table(title=f"{summary['task']}: {summary['method']} pruning, seed {summary['seed']}")
    for column in ("", "dense", "pruned"):
        table.add_column(column, justify="right")
    table.add_row("attention heads", str(d["heads"]), str(p["heads"]))
    table.add_row("parameters", f"{d['parameters']:,}", f"{p['parameters']:,}")
    table.add_row(
        f"dev {metric}",
        f"{d['dev']:.2f}",
        f"{p['dev']:.2f} (before recovery {p['dev_before_recovery']:.2f})",
    )
    table.add_row(f"validation {metric}", f"{d['validation']:.2f}", f"{p['validation']:.2f}")
    table.add_row("latency b1 @128", f"{d['latency_ms']:.1f} ms", f"{p['latency_ms']:.1f} ms")
    table.add_row(
        "throughput b32 @128", f"{d['throughput']:.1f} seq/s", f"{p['throughput']:.1f} seq/s"
    )
    table.add_row(
        "speed-up measured (b1 / b32)", "1.00", f"{s['latency']:.2f}x / {s['throughput']:.2f}x"
    )
    table.add_row("speed-up ideal (encoder MACs)", "1.00", f"{s['ideal']:.2f}x")
    table.add_row("measured / ideal (b32)", "", f"{s['throughput_vs_ideal']:.2f}")
    console.print(table)
    console.print(f"pruned model: {summary['paths']['pruned']}  (load with prunekit.load)")


def main() -> None:
    logging.basicConfig(level=os.environ.get("PRUNEKIT_LOG", "WARNING"))
    app()


if __name__ == "__main__":
    sys.exit(main())

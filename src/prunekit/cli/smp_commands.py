"""``prunekit smp ...``: commands of Single-Shot Meta-Pruning that are not a pruning run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunekit.cli.app import (
    AsJson,
    DataDir,
    DeviceOption,
    Overwrite,
    Quiet,
    Seed,
    app,
    emit,
    user_errors,
)

smp_app = typer.Typer(help="Single-Shot Meta-Pruning: train the pruner that `--method smp` uses.")
app.add_typer(smp_app, name="smp")


@smp_app.command("train-pruner")
@user_errors
def train_pruner(
    out: Annotated[Path, typer.Option(help="Output directory for the trained pruner.")],
    model: Annotated[
        str, typer.Option(help="Pre-trained encoder: a directory or 'default' (PyPI MiniLM).")
    ] = "default",
    tasks: Annotated[
        str, typer.Option(help="Comma-separated GLUE tasks whose inputs train the pruner.")
    ] = "rte,mrpc,sst2,cola",
    steps: Annotated[int, typer.Option(help="Optimizer steps (the paper: 8,000).")] = 300,
    micro_batch: Annotated[
        int, typer.Option(help="Sequences per micro-batch, one task each (paper: 60).")
    ] = 16,
    accumulation: Annotated[
        int, typer.Option(help="Micro-batches per optimizer step (paper: 8).")
    ] = 4,
    learning_rate: Annotated[float, typer.Option(help="SGD learning rate.")] = 2e-2,
    ndf: Annotated[int, typer.Option(help="Pruner width (the released pruners: 8).")] = 8,
    pair_representation: Annotated[
        str,
        typer.Option(
            help="Pair tasks' representation: 'pooler' (pooled [CLS], the paper) or 'mean' "
            "(mean of the last states; for models trained through mean pooling)."
        ),
    ] = "pooler",
    data_dir: DataDir = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    device: DeviceOption = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Meta-train SMP's pruner on a frozen pre-trained model, reading no labels."""
    from prunekit.recipes.smp import PrunerTrainConfig, run_train_pruner

    record = run_train_pruner(
        PrunerTrainConfig(
            out=out,
            model=model,
            tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
            steps=steps,
            micro_batch=micro_batch,
            accumulation=accumulation,
            learning_rate=learning_rate,
            ndf=ndf,
            pair_representation=pair_representation,
            data_dir=data_dir,
            resume=resume,
            overwrite=overwrite,
            device=device,
            seed=seed,
            progress=not quiet,
        )
    )
    emit(
        record,
        as_json,
        f"saved {out}: {record['steps']} steps, final loss {record['final_loss']:.4g}, "
        f"{record['train_seconds'] / 60:.1f} min",
    )

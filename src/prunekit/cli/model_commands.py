"""Commands that make models: finetune, eval, prune."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prunekit.cli.app import (
    AsJson,
    DataDir,
    DeviceOption,
    MethodConfigFile,
    MethodOption,
    Overwrite,
    Quiet,
    Seed,
    app,
    emit,
    train_config,
    user_errors,
)


@app.command()
@user_errors
def finetune(
    task: Annotated[
        str, typer.Option(help="GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli.")
    ],
    out: Annotated[Path, typer.Option(help="Output directory for the fine-tuned model.")],
    model: Annotated[
        str, typer.Option(help="Path, hub name, or 'default' (PyPI MiniLM).")
    ] = "default",
    data_dir: DataDir = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak AdamW learning rate.", show_default=False)
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs over the train split.", show_default=False)
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Sequences per step (per process).", show_default=False)
    ] = None,
    max_seq_length: Annotated[
        int | None, typer.Option(help="Truncate inputs to N tokens.", show_default=False)
    ] = None,
    max_train_samples: Annotated[
        int | None,
        typer.Option(
            help="Seeded subset of train (default: the recipe's; 0: the whole split).",
            show_default=False,
        ),
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option(help="Linear warm-up fraction.", show_default=False)
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option(help="AdamW weight decay.", show_default=False)
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps (default: each epoch).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint.")
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32, or bf16 (autocast; ~1.7x faster steps on CPUs with AMX, not bit-equal)."
        ),
    ] = None,
    group_by_length: Annotated[
        bool | None,
        typer.Option(
            "--group-by-length/--random-batches",
            help="Batches of similar length: random order, less padding (GLUE: 1.5-2.9x fewer "
            "token slots). Default: the recipe's.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune an encoder on a GLUE task with the task's dense recipe; flags override it.

    `accelerate launch` runs it on several processes.
    """
    from prunekit.recipes.finetune import finetune_config, run_finetune

    config = finetune_config(
        task,
        out,
        model,
        data_dir,
        seed,
        max_seq_length=max_seq_length,
        max_train_samples=max_train_samples,
        resume=resume,
        overwrite=overwrite,
        learning_rate=learning_rate,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        checkpoint_every=checkpoint_every,
        device=device,
        precision=precision,
        group_by_length=group_by_length,
    )
    record = run_finetune(config, progress=not quiet)
    emit(
        record,
        as_json,
        f"saved {out}: validation {record['validation']['primary']:.2f}, "
        f"dev {record['dev']['primary']:.2f} ({task})",
    )


@app.command("eval")
@user_errors
def eval_(
    model: Annotated[str, typer.Option(help="Model directory (or 'default').")],
    task: Annotated[
        str | None, typer.Option(help="GLUE task (default: the one the model was fine-tuned on).")
    ] = None,
    split: Annotated[
        str,
        typer.Option(
            help="dev (reporting; MNLI also dev_mismatched), validation (carved from train), "
            "or train."
        ),
    ] = "dev",
    data_dir: DataDir = None,
    max_samples: Annotated[int | None, typer.Option(help="Seeded subset of the split.")] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 64,
    seed: Seed = 0,
    device: DeviceOption = "auto",
    as_json: AsJson = False,
) -> None:
    """Evaluate a model on a GLUE split."""
    from prunekit.recipes.evaluate import run_evaluate

    result = run_evaluate(
        model,
        task,
        split,
        data_dir,
        seed,
        max_samples=max_samples,
        batch_size=batch_size,
        device=device,
    )
    metrics = ", ".join(f"{k} {v:.2f}" for k, v in result.metrics.items())
    emit(
        result.to_dict(),
        as_json,
        f"{result.task} {result.split} ({result.examples} examples): {metrics}",
    )


@app.command()
@user_errors
def prune(
    model: Annotated[
        str,
        typer.Option(
            help="Fine-tuned model directory; for methods that prune pre-trained models (smp, "
            "sparse-kd) a pre-trained one or 'default'."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output directory for the pruned model.")],
    method: Annotated[
        str | None,
        typer.Option(
            help="Pruning method (see `prunekit methods`); default: the main job's, the "
            "comparison's leader at 50% R1 (marked [default] there)."
        ),
    ] = None,
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
    method_option: MethodOption = None,
    method_config: MethodConfigFile = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            "--epsilon",
            help="Methods that choose the head count (astar, peer): allowed drop of the primary "
            "metric in points; without --heads the method picks the count.",
        ),
    ] = None,
    sparsity: Annotated[
        float | None,
        typer.Option(
            help="Unstructured methods (magnitude, movement, sparse-kd): share of the "
            "linears' weights set to 0."
        ),
    ] = None,
    lossless: Annotated[
        bool,
        typer.Option(
            "--lossless",
            help="Let the method choose the largest head count within --epsilon (default 0) "
            "of the unpruned model; no --heads.",
        ),
    ] = False,
    max_evals: Annotated[
        int | None, typer.Option(help="Search methods (astar): cap on evaluated head sets.")
    ] = None,
    branching: Annotated[
        int | None, typer.Option(help="Search methods (astar): successors per state.")
    ] = None,
    task: Annotated[str | None, typer.Option(help="GLUE task (default: the model's).")] = None,
    data_dir: DataDir = None,
    search_samples: Annotated[
        int | None, typer.Option(help="Subsample the validation split for the decision.")
    ] = None,
    train_samples: Annotated[
        int | None,
        typer.Option(help="Seeded train subset for methods that train or score on train."),
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
    learning_rate: Annotated[
        float | None, typer.Option(help="Recovery learning rate [default: 5e-5].")
    ] = None,
    distill: Annotated[
        bool, typer.Option("--distill", help="Recover with logit KD from the unpruned model.")
    ] = False,
    distill_temperature: Annotated[
        float | None, typer.Option(help="KD temperature T [default: 2.0].")
    ] = None,
    distill_alpha: Annotated[
        float | None, typer.Option(help="Weight of the KD term; CE gets 1 - alpha [default: 0.5].")
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Fine-tuned model to distil from (default: a copy of --model, or for methods "
            "that prune pre-trained models the task's model from the dense cache)."
        ),
    ] = None,
    allow_untrained_head: Annotated[
        bool,
        typer.Option(
            "--allow-untrained-head",
            help="Prune a model that was never fine-tuned for the task (random classifier).",
        ),
    ] = False,
    device: DeviceOption = "auto",
    seed: Seed = 0,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
    quiet: Quiet = False,
) -> None:
    """Prune heads or weights with a registered method and save the smaller model."""
    from pydantic import ValidationError

    from prunekit.errors import ConfigError
    from prunekit.recipes.common import at_least
    from prunekit.recipes.prune import (
        DistillConfig,
        PruneConfig,
        read_method_options,
        run_prune,
    )

    at_least(0, recover_epochs=recover_epochs, at_least_heads_per_layer=at_least_heads_per_layer)
    options = read_method_options(method_config, method_option or ())
    if lossless and (heads is not None or keep_heads is not None):
        raise ConfigError("--lossless lets the method choose the head count; drop --heads")
    if lossless and budget is None and "budget" not in options:
        budget = 0.0  # a budget given as a method option or in a method config file stands
    # Shorthands for common method settings; the method's Config says whether it has them.
    shorthands = {
        "budget": budget,
        "max_evals": max_evals,
        "branching": branching,
        "sparsity": sparsity,
    }
    for key, value in shorthands.items():
        if value is not None:
            options[key] = value
    if iterative:
        options["iterative"] = True
    recover = None
    if recover_epochs:
        recover = train_config(
            epochs=recover_epochs, learning_rate=learning_rate, seed=seed, device=device
        )
    else:  # recovery's settings without recovery would be dropped without a word (the recipe
        # refuses --recover-max-samples, which its Python callers can set too)
        recovery_only = {"--distill": distill or None, "--learning-rate": learning_rate}
        if given := [flag for flag, value in recovery_only.items() if value is not None]:
            raise ConfigError(f"{given[0]} applies to recovery; add --recover-epochs E")
    distill_config = None
    if distill:  # DistillConfig's own defaults for what is not given
        given = {"temperature": distill_temperature, "alpha_kd": distill_alpha}
        try:
            distill_config = DistillConfig(**{k: v for k, v in given.items() if v is not None})
        except ValidationError:
            raise ConfigError(
                "--distill-alpha must be in [0, 1] and --distill-temperature > 0"
            ) from None
    elif distill_alpha is not None or distill_temperature is not None:
        flag = "--distill-alpha" if distill_alpha is not None else "--distill-temperature"
        raise ConfigError(f"{flag} sets the distillation of recovery; add --distill")
    record = run_prune(
        PruneConfig(
            model=model,
            out=out,
            **({"method": method} if method else {}),
            heads=heads,
            keep_heads=keep_heads,
            per_layer=per_layer,
            min_heads_per_layer=at_least_heads_per_layer,
            task=task,
            data_dir=data_dir,
            seed=seed,
            search_samples=search_samples,
            train_samples=train_samples,
            recover=recover,
            recover_max_samples=recover_max_samples,
            eval_max_samples=eval_max_samples,
            distill=distill_config,
            options=options,
            allow_untrained_head=allow_untrained_head,
            teacher=teacher,
            device=device,
            overwrite=overwrite,
            progress=not quiet,
        )
    )
    h = record["heads"]
    emit(record, as_json, f"saved {out}: {h['after']}/{h['original']} heads kept")

"""Recipe `prunekit eval`: evaluate a model on one split of a GLUE task."""

from __future__ import annotations

from pathlib import Path

from prunekit.data import get_task, make_collate, task_dataset
from prunekit.device import resolve_device
from prunekit.models.sources import load_for_task, recorded_task
from prunekit.recipes.common import at_least, console, seed_everything
from prunekit.train import EvalResult, evaluate

__all__ = ["run_evaluate"]


def run_evaluate(
    model: str,
    task: str | None,
    split: str = "dev",
    data_dir: Path | None = None,
    seed: int = 0,
    max_seq_length: int = 128,
    max_samples: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
) -> EvalResult:
    """``task`` defaults to the task the model was fine-tuned on (``config.finetuning_task``)."""
    at_least(1, max_samples=max_samples, batch_size=batch_size)
    at_least(2, max_seq_length=max_seq_length)
    where = resolve_device(device)  # a bad or absent device is refused before the model loads
    spec = get_task(task or recorded_task(model))
    seed_everything(seed)  # a classifier created here is drawn from it: same seed, same numbers
    loaded, tokenizer = load_for_task(model, spec)
    if new := getattr(loaded, "prunekit_new_modules", None):
        console.print(
            f"[yellow]note:[/] {model} has no {spec.name} classifier ({', '.join(new)} created "
            "with random weights): these metrics measure an untrained head; fine-tune first",
            highlight=False,
        )
    data = task_dataset(spec, split, tokenizer, data_dir, seed, max_seq_length, max_samples)
    return evaluate(loaded.to(where), data, make_collate(tokenizer), spec, split, batch_size)

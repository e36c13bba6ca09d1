"""`decide`: run one registered method on a model and a task's data, the same way everywhere.

`prunekit prune`, `prunekit compare` and the main job all decide through here, so every method
sees the same splits: validation (carved from train, optionally subsampled) for scoring and
search, train for methods that train, never dev.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import nn

from prunekit.data import TaskData, train_examples_digest
from prunekit.methods.registry import (
    HeadTarget,
    MethodConfig,
    MethodResult,
    PruneRequest,
    get_method,
)
from prunekit.models import current_plan
from prunekit.models.memo import hash_weights

__all__ = ["decide"]


def decide(
    model: nn.Module,
    method: str,
    target: HeadTarget,
    data: TaskData,
    seed: int,
    options: dict[str, Any] | None = None,
    search_samples: int | None = None,
    teacher: nn.Module | None = None,
    train_samples: int | None = None,
    state_dir: Path | None = None,
    cache_dir: Path | None = None,
    train_budget_steps: int | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    keep_trained_state: bool = False,
) -> MethodResult:
    """Run ``method`` on ``model`` (never modified: a method that trains returns a copy).

    ``train_samples`` gives methods that read the train split a seeded subset of it.
    ``keep_trained_state``: see `PruneRequest` (for callers that delete ``state_dir`` once
    their output is written).

    The seconds spent deciding are added to ``result.record["decision_seconds"]``.
    """
    info = get_method(method)
    config = info.parse_config(options)
    started = time.perf_counter()
    certify = None
    if info.certifies:  # search on one half, certify on the other (seeded, disjoint)
        search_part, certify_part = data.search_certify_split("validation", seed, search_samples)
        search = data.batches("validation", indices=search_part)
        certify = data.batches("validation", indices=certify_part)
    else:
        search = data.batches("validation", search_samples)
    if state_dir is not None:  # a checkpoint resumes only the run that wrote it
        samples = (search_samples, train_samples, train_budget_steps)
        state_dir = state_dir / _run_id(method, config, target, seed, model, teacher, data, samples)
    request = PruneRequest(
        model=model,
        plan=current_plan(model),
        target=target,
        seed=seed,
        batches=search,
        certify_batches=certify,
        train_set=data.dataset("train", train_samples) if "train" in info.needs_data else None,
        collate=data.collate,
        tokenizer=data.tokenizer,
        task=data.task,
        teacher=teacher,
        config=config,
        state_dir=state_dir,
        keep_trained_state=keep_trained_state,
        cache_dir=cache_dir,
        train_budget_steps=train_budget_steps,
        on_progress=on_progress,
    )
    result = info(request)
    result.record["decision_seconds"] = round(time.perf_counter() - started, 3)
    return result


def _run_id(
    method: str,
    config: MethodConfig,
    target: HeadTarget,
    seed: int,
    model: nn.Module,
    teacher: nn.Module | None,
    data: TaskData,
    samples: tuple[int | None, ...],
) -> str:
    """What a method's checkpoint must share with the run that resumes it: the method, its
    settings, target and seed, and what it starts from (the weights, the teacher's, the task's
    train examples), so a rerun with another --model, --teacher or --data-dir starts afresh
    instead of resuming into the other run's weights."""
    key = [method, config.model_dump(mode="json"), asdict(target), seed, list(samples)]
    key += [data.task.name, data.max_seq_length, data.batch_size]
    digest = hashlib.sha256(json.dumps(key).encode())
    hash_weights(digest, model)
    if teacher is not None and teacher is not model:
        hash_weights(digest, teacher)
    digest.update(train_examples_digest(data.task, data.data_dir).encode())
    return f"{method}-{digest.hexdigest()[:12]}"

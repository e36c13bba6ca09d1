"""Automatic Peer Distillation (Li, Wang, Huang, Bragin, Li, Ding, IJCAI 2023).

The paper's text and code were not available; this is methods.md §3(b)'s reconstruction, every
choice OUR CHOICE and configurable:

- **Location.** HISP importance (Michel et al., layer-normalised) on ``importance_examples``
  seeded training examples (the validation split judges losslessness), ranked globally, so
  the counts per layer come out uneven; at least
  ``min_heads_per_layer`` (1) stay in every layer. The scores are measured once per model and
  seed in the caller's shared ``cache_dir`` and read back by its other fractions and budgets.
  ``locator="l0"`` uses L0 gates with the same target instead.
- **Peer distillation.** The student starts as a copy of the fine-tuned model (the teacher,
  frozen). Loss = CE + alpha·τ²·KL(teacher ‖ student at τ) + beta·peer + gamma·hidden-state MSE
  (`prunekit.train.distill`): the peer term makes each layer's retained heads reproduce the
  teacher's *whole* attention output, what the pruned heads contributed included
  (`prunekit.models.head_outputs`). Regression (STS-B) uses MSE for CE and KD.
- **Gradual removal.** The pruned heads' gates step down to 0 in ``increments`` (4) equal steps
  over the first ``ramp_fraction`` (half) of training; the final mask trains for the rest. The
  recipe then removes them physically (the gated and the cut model agree).
- **Lossless mode** (budget mode: no head target): the largest fraction of ``grid``
  (0.30..0.90) whose distilled model stays within ``budget`` points (epsilon) of the teacher on
  the validation split, found by bisection (a larger fraction is assumed to fail when a smaller
  one does); every fraction tried is in the record. That assumption does not always hold: on
  MRPC (~0.2 F1 per validation example) 40% failed at epsilon 0 where 45% would have passed.
  ``search="descend"`` tries the grid from the largest fraction down and stops at the first
  feasible one, which is the largest feasible under any shape of the curve, at up to one
  student per grid point instead of about four. With the caller's shared ``cache_dir``
  (compare's run dir) every student is kept (`prunekit.models.memo`): another budget probing
  the same fraction, or a fixed-fraction run of it, reads it back instead of training again.
- Training: AdamW, lr 2e-5, batch 32, warm-up 10%, linear decay, ``epochs`` (3) of the train
  split, or the request's ``train_budget_steps`` when given (compare's equal budget).
- **Pairing (optional, off by default).** With ``pairing_weight`` > 0 each pruned head is
  paired with the retained head of its layer whose attention maps are most alike on the
  teacher (cosine of flattened maps, padding left out, averaged over ``pairing_examples``
  seeded training examples), and the loss adds ``pairing_weight`` · Σ_pairs MSE(student map
  of the retained head, teacher map of the pruned head) (methods.md suggests 0.1). It needs
  attention maps, so student and teacher run eager attention while it is on, and the
  student's attention-probability dropout is off (the maps a model returns in train mode are
  after dropout: matching them would chase noise).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Subset

from prunekit.data import by_length, compute_metrics, primary_metric
from prunekit.device import module_device
from prunekit.errors import ConfigError
from prunekit.methods.config import CountMode
from prunekit.methods.peer_distil import distilled, teacher_similarity
from prunekit.methods.registry import (
    RESUMES_AT_DEFAULT,
    HeadTarget,
    MethodResult,
    PruneRequest,
    TrainingMethodConfig,
    get_method,
    register_method,
    select_top_heads,
)
from prunekit.methods.targets import largest_feasible
from prunekit.models import apply_plan
from prunekit.models.memo import (
    hash_inputs,
    inputs_digest,
    weights_digest,
)
from prunekit.outputs import atomic_output_dir
from prunekit.plan import PruningPlan
from prunekit.scoring import head_importance, normalize_per_layer
from prunekit.train.distill import (
    check_teacher_shape,
)

__all__ = ["Config", "prune_peer"]

GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(13))  # 0.30 .. 0.90


class Config(TrainingMethodConfig):
    read_only_with: ClassVar[dict[str, str]] = {"pairing_examples": "pairing_weight"}
    read_only_in_mode: ClassVar[dict[str, CountMode]] = {
        "budget": "budget",
        "grid": "budget",
        "search": "budget",
    }

    budget: float | None = Field(
        None, ge=0, description="lossless mode: allowed validation drop (points, epsilon)"
    )
    grid: tuple[float, ...] = Field(GRID, description="fractions of heads tried (lossless)")
    search: Literal["bisect", "descend"] = Field(
        "bisect",
        description="lossless: bisect the grid (assumes a monotone metric, ~4 students) or "
        "descend from the largest fraction to the first feasible (any shape, up to one per point)",
        # added after benchmark run dirs recorded peer's settings; its default is the search
        # they ran, so they resume (`prunekit.recipes.compare_config.settings_differ`)
        json_schema_extra={RESUMES_AT_DEFAULT: True},
    )
    locator: Literal["hisp", "l0"] = Field("hisp", description="how heads are chosen")

    @field_validator("grid")
    @classmethod
    def _fractions(cls, grid: tuple[float, ...]) -> tuple[float, ...]:
        if not grid or not all(0 < f < 1 for f in grid):
            raise ValueError("give fractions of heads to remove, each in (0, 1): e.g. [0.3,0.5]")
        return grid

    min_heads_per_layer: int = Field(1, ge=0, description="heads every layer keeps")
    importance_examples: int = Field(
        2000, ge=1, description="seeded train examples HISP importance is measured on"
    )
    epochs: int = Field(3, ge=1, description="distillation epochs (without a step budget)")
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    alpha_kd: float = Field(1.0, ge=0, description="weight of logit KD")
    temperature: float = Field(2.0, gt=0)
    beta_peer: float = Field(1.0, ge=0, description="weight of the peer loss")
    peer_reduction: Literal["sum", "mean"] = Field(
        "sum",
        description="the peer loss over features: squared norm (the spec) or mean (an MSE, "
        "~1/hidden-size of it: on MiniLM the norm is ~99% of the total loss)",
        json_schema_extra={RESUMES_AT_DEFAULT: True},  # added after run dirs recorded settings
    )
    gamma_hidden: float = Field(1.0, ge=0, description="weight of hidden-state MSE")
    pairing_weight: float = Field(
        0.0, ge=0, description="weight of the optional attention-map pairing loss (0: off)"
    )
    pairing_examples: int = Field(
        256, ge=1, description="seeded train examples the head pairing is measured on"
    )
    increments: int = Field(4, ge=1, description="steps down of the pruned heads' gates")
    # below 1: the final mask must train for at least a step before the student is judged
    ramp_fraction: float = Field(0.5, gt=0, lt=1, description="share of training they take")
    checkpoint_every: int = Field(50, ge=1)


@register_method(
    "peer",
    config=Config,
    summary="Li et al. 2023: heads located by HISP rank, their knowledge distilled into the "
    "retained heads of the same layer (peer loss + KD), removed gradually",
    per_layer=False,
    decides_count=True,
    trains_weights=True,
    needs_teacher=True,
    needs_data=("validation", "train"),
)
def prune_peer(request: PruneRequest, config: Config) -> MethodResult:
    check_teacher_shape("peer", request.teacher, request.model)
    total = request.plan.heads_total
    scores = None  # HISP's importance does not depend on the fraction: measured once
    if config.locator == "hisp":
        scores = _remembered_importance(request, config.importance_examples)
    similarity = None  # nor does the teacher's head similarity (pairing)
    if config.pairing_weight > 0:  # a layer without heads pairs nothing (its maps: none)
        similarity = teacher_similarity(request, config)
    # the students' memo key holds the train examples: hashed once, not once per student
    examples = inputs_digest(request.train_set) if request.cache_dir is not None else None
    if request.target.keep < request.plan.heads_kept:  # fixed-fraction mode
        plan = _locate(request, config, request.target, scores)
        student, record = distilled(request, config, plan, similarity, examples=examples)
        return MethodResult(plan, model=student, record=record)

    budget = 0.0 if config.budget is None else config.budget
    reference = _validation_metric(request.teacher, request)
    per_layer = max(config.min_heads_per_layer, request.target.min_per_layer)
    floor = max(1, per_layer * request.plan.num_layers)
    # Fractions count the original heads; on a pruned model those that remove nothing more
    # would pass trivially and steer the search, so they are left out.
    grid = sorted(
        f for f in config.grid if floor <= total - round(f * total) < request.plan.heads_kept
    )
    if not grid:  # a search over nothing would return the model unpruned, as if none passed
        raise ConfigError(
            f"peer: no fraction of grid {list(config.grid)} removes a head and leaves at least "
            f"{floor} ({per_layer} a layer) of the model's {request.plan.heads_kept}; give "
            "others, or lower min_heads_per_layer"
        )
    tried: dict[float, dict[str, Any]] = {}

    def feasible(fraction: float) -> bool:
        keep = total - round(fraction * total)
        target = HeadTarget(keep, min_per_layer=per_layer)
        plan = _locate(request, config, target, scores)
        student, record = distilled(
            request, config, plan, similarity, tag=f"{fraction:.2f}", examples=examples
        )
        # Judged as it will be used: the pruned heads cut out.
        metric = _validation_metric(apply_plan(copy.deepcopy(student), plan), request)
        ok = reference - metric <= budget
        tried[fraction] = {"plan": plan, "record": record, "metric": metric}
        if ok:  # only the largest feasible fraction so far is kept: one student in memory
            for earlier in tried.values():
                earlier.pop("student", None)
            tried[fraction]["student"] = student
        return ok

    chosen = largest_feasible(grid, feasible, search=config.search)
    summary = {f"{f:.2f}": round(v["metric"], 4) for f, v in sorted(tried.items())}
    # What a budget report shows of any search (A* writes the same keys): here the search
    # split is the validation split, and nothing is held out to certify on.
    certificate = {
        "budget": budget,  # the recipe judges the dev drop against it, as for A*
        "split": "validation",
        "search_drop": None if chosen is None else reference - tried[chosen]["metric"],
        "evaluations": len(tried),
        # students an earlier search or run trained: read back, evaluated, not trained again
        "students_from_memo": sum("reused_student" in v["record"] for v in tried.values()),
        # what the students cost to train, also when this search read them from the memo
        "student_seconds": sum(v["record"].get("seconds", 0.0) for v in tried.values()),
        "tried": [
            [f, round(v["metric"], 4), reference - v["metric"] <= budget]
            for f, v in sorted(tried.items())
        ],
    }
    if chosen is None:  # not even the smallest fraction is lossless: keep every head
        dense = request.plan.model_copy(update={"meta": {"tried": summary}})
        record = {"validation_reference": reference, "certificate": certificate}
        return MethodResult(dense, record=record)
    best = tried[chosen]
    record = {
        **best["record"],
        "fraction": chosen,
        "budget": budget,
        "validation_reference": reference,
        "validation_metric": best["metric"],
        "certificate": certificate,  # its "tried" lists every fraction, metric and verdict
    }
    plan = best["plan"].model_copy(update={"meta": {"fraction": chosen, "tried": summary}})
    return MethodResult(plan, model=best["student"], record=record)


def _locate(
    request: PruneRequest, config: Config, target: HeadTarget, scores: torch.Tensor | None
) -> PruningPlan:
    floor = max(target.min_per_layer, config.min_heads_per_layer)
    if floor * request.plan.num_layers > target.keep:
        raise ConfigError(
            f"peer cannot keep {target.keep} heads with at least {floor} in each of "
            f"{request.plan.num_layers} layers; lower min_heads_per_layer"
        )
    if config.locator == "l0":
        located = get_method("l0")(
            PruneRequest(
                model=request.model,
                plan=request.plan,
                target=HeadTarget(target.keep, False, floor),
                seed=request.seed,
                train_set=request.train_set,
                collate=request.collate,
                task=request.task,
                options=config.loop_options(),  # the gates train as the peers will
            )
        )
        return located.plan
    return select_top_heads(scores, request.plan, HeadTarget(target.keep, False, floor))


def _remembered_importance(request: PruneRequest, examples: int) -> torch.Tensor:
    """`_importance`, or the scores measured before on the same model, examples and seed, kept
    in the caller's shared cache: each fraction and budget is a run of its own, and HISP's
    importance on 2,000 training examples took about a third of a one-epoch MRPC run."""
    subset = _importance_subset(request, examples)
    if request.cache_dir is None:
        return _importance(request, subset)
    task = getattr(request.task, "name", None)
    identity = [weights_digest(request.model), examples, request.seed, task]
    digest = hashlib.sha256(json.dumps(identity).encode())
    # the encoded inputs themselves: another --data-dir or --max-seq-length is other data
    hash_inputs(digest, subset)
    key = digest.hexdigest()[:16]
    directory = request.cache_dir / "importance" / key
    if directory.is_dir():  # renamed into place only once complete (`atomic_output_dir`)
        return load_file(directory / "importance.safetensors")["importance"]
    scores = _importance(request, subset)
    with atomic_output_dir(directory, overwrite=True, shared=True) as tmp:
        save_file({"importance": scores.contiguous()}, str(tmp / "importance.safetensors"))
    return scores


def _importance(request: PruneRequest, subset: Subset) -> torch.Tensor:
    """Layer-normalised HISP importance on ``subset``, a seeded subset of the *train* split
    (`_importance_subset`; the validation split judges losslessness, so it must not choose the
    heads)."""
    by_size = by_length(subset)  # a sum over examples: batches of similar length pad less
    subset = Subset(subset, by_size) if by_size is not None else subset
    batches = DataLoader(subset, batch_size=32, collate_fn=request.collate)
    return normalize_per_layer(head_importance(request.model, batches))


def _importance_subset(request: PruneRequest, examples: int) -> Subset:
    """The seeded subset of the train split HISP's importance is measured on."""
    order = torch.randperm(
        len(request.train_set), generator=torch.Generator().manual_seed(request.seed)
    )
    return Subset(request.train_set, sorted(order[:examples].tolist()))


@torch.no_grad()
def _validation_metric(model: torch.nn.Module, request: PruneRequest) -> float:
    """The task's primary metric on the validation batches (never dev)."""
    model.eval()
    device = module_device(model)
    logits, labels = [], []
    for batch in request.batches():
        labels.append(batch["labels"].numpy())
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        logits.append(model(**inputs).logits.float().cpu().numpy())
    logits_all, labels_all = np.concatenate(logits), np.concatenate(labels)
    task = request.task
    predictions = logits_all[:, 0] if task.is_regression else logits_all.argmax(-1)
    return compute_metrics(task, predictions, labels_all)[primary_metric(task)]

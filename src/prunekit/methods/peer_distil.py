"""Peer's distillation of one student (`distilled`): a copy of the fine-tuned model learns from
it with CE, KD, the peer loss, hidden-state MSE and optional attention pairing while the pruned
heads' gates step down to 0; students are kept in a memo per run dir, so bisection and the
fixed fractions share them. The method's choices are documented in `prunekit.methods.peer`."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Subset

from prunekit.device import module_device
from prunekit.methods.registry import (
    PruneRequest,
)
from prunekit.models.gates import HeadGates, plan_gates
from prunekit.models.head_outputs import AttentionOutputs, attention_dropout_off
from prunekit.models.memo import (
    inputs_digest,
    load_weights_memo,
    save_weights_memo,
    weights_digest,
)
from prunekit.models.surgery import current_plan
from prunekit.plan import PruningPlan
from prunekit.scoring.maps import per_layer_maps
from prunekit.scoring.similarity import attention_map_similarity
from prunekit.train import TrainConfig, distillation_parts
from prunekit.train.distill import (
    attention_pairing_loss,
    hidden_state_loss,
    note_unused_temperature,
    peer_loss,
)
from prunekit.train.schedules import epoch_steps, stepped_ramp

if TYPE_CHECKING:
    from prunekit.methods.peer import Config


def distilled(
    request: PruneRequest,
    config: Config,
    plan: PruningPlan,
    similarity: torch.Tensor | None,
    tag: str = "fixed",
    examples: str | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """`_distil`, or the student it trained before from the same model, teacher, plan, seed,
    train examples and settings (the budget aside), kept in the caller's shared cache: lossless
    mode at two budgets probes some fractions twice, and fixed-fraction runs meet them again.
    ``examples``: `inputs_digest` of the train split, when the caller has it already."""
    if request.cache_dir is None:
        return _distil(request, config, plan, similarity, tag)
    settings = config.model_dump(
        mode="json", exclude={"budget", "grid", "search", "checkpoint_every"}
    )
    if settings["peer_reduction"] == "sum":  # students memoised before it existed stay found
        del settings["peer_reduction"]
    teacher = "same" if request.teacher is request.model else weights_digest(request.teacher)
    identity = [weights_digest(request.model), teacher, settings, plan.kept_heads, request.seed]
    task = getattr(request.task, "name", None)
    identity += [request.train_budget_steps, len(request.train_set), task]
    # the encoded examples themselves: a rerun into the same --out with another --data-dir or
    # --max-seq-length of the same size trains on other data (as the importance memo's key)
    identity.append(examples or inputs_digest(request.train_set))
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    directory = request.cache_dir / "students" / key
    student = copy.deepcopy(request.model)
    record = load_weights_memo(directory, student)
    if record is not None:
        return student.eval(), record | {"reused_student": key}
    student, record = _distil(request, config, plan, similarity, tag)
    save_weights_memo(directory, student, record)
    return student, record


def _distil(
    request: PruneRequest,
    config: Config,
    plan: PruningPlan,
    similarity: torch.Tensor | None,
    tag: str = "fixed",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a copy of the model with the pruned heads gated down gradually; returns it."""
    teacher = request.teacher.eval()
    teacher_device = module_device(teacher)
    student = copy.deepcopy(request.model)
    device = module_device(student)
    kept = plan_gates(plan, device)
    before = plan_gates(request.plan, device)
    steps = request.train_budget_steps
    if steps is None:
        steps = config.epochs * epoch_steps(len(request.train_set), config.batch_size)
    # the final mask trains for at least the last step (a 1-step run trains only it)
    ramp = min(max(1, int(config.ramp_fraction * steps)), steps - 1)
    regression = request.task is not None and request.task.is_regression
    note_unused_temperature("peer", "temperature" in config.model_fields_set, request.task)

    def gates(step: int) -> torch.Tensor:
        fraction = stepped_ramp(step, ramp, config.increments)
        return kept + (before - kept) * (1.0 - fraction)  # pruned heads: 1 -> 0 in steps

    pairing = config.pairing_weight > 0
    outputs = {"output_hidden_states": True, "output_attentions": pairing}
    # maps per original layer: BERT-style models return none for a layer without heads
    student_heads, teacher_heads = request.plan.kept_heads, current_plan(teacher).kept_heads

    def loss_fn(model, batch, step: int) -> dict[str, torch.Tensor]:
        head_gates.set(gates(step))
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            teacher_view.clear()
            on_teacher = {k: v.to(teacher_device) for k, v in inputs.items()}
            out_t = teacher(**on_teacher, **outputs)
        student_view.clear()
        out_s = model(**inputs, **outputs)
        parts = distillation_parts(
            out_s.logits,
            out_t.logits,
            batch["labels"],
            config.temperature,
            config.alpha_kd,
            1.0,
            regression,
        )
        peer = peer_loss(
            student_view.sums, teacher_view.sums, inputs["attention_mask"], config.peer_reduction
        )
        hidden = hidden_state_loss(
            out_s.hidden_states, out_t.hidden_states, inputs["attention_mask"]
        )
        parts = {**parts, "peer": config.beta_peer * peer, "hidden": config.gamma_hidden * hidden}
        if pairing:
            mask = inputs["attention_mask"]
            paired = attention_pairing_loss(
                per_layer_maps(out_s.attentions, student_heads, mask),
                per_layer_maps(out_t.attentions, teacher_heads, mask.to(teacher_device)),
                pairs,
                mask,
            )
            parts["pairing"] = config.pairing_weight * paired
        return parts

    train = TrainConfig(
        learning_rate=config.learning_rate,
        max_steps=steps,
        batch_size=config.batch_size,
        warmup_ratio=config.warmup_ratio,
        checkpoint_every=config.checkpoint_every,
        seed=request.seed,
        device=str(device),
        **config.loop_options(),
    )

    pairs = _pair_heads(request, plan, similarity) if similarity is not None else []
    with (
        _eager_attention(student, teacher, when=pairing),
        attention_dropout_off(student) if pairing else contextlib.nullcontext(),
        HeadGates(student, gates(0)) as head_gates,
        AttentionOutputs(student) as student_view,
        AttentionOutputs(teacher) as teacher_view,
    ):
        # its students are memoised (weights only) where the caller keeps a cache: the
        # optimizer states of a whole search would be kept besides them for nothing
        keeps = request.keep_trained_state and request.cache_dir is None
        result = dataclasses.replace(request, keep_trained_state=keeps).train(
            student, train, loss_fn, state=tag, report=lambda step: {"note": f"fraction {tag}"}
        )
    record = {"loss_curve": result.log, "train_steps": result.steps, "seconds": result.seconds}
    if pairing:
        record["pairs"] = [list(pair) for pair in pairs]
    return student, record


@contextlib.contextmanager
def _eager_attention(*models: torch.nn.Module, when: bool) -> Iterator[None]:
    """Eager attention (which returns the maps) on ``models`` for the block, then back."""
    before = [m.config._attn_implementation for m in models]
    if when:
        for model in models:
            model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if when:
            for model, implementation in zip(models, before, strict=True):
                model.set_attn_implementation(implementation)


def teacher_similarity(request: PruneRequest, config: Config) -> torch.Tensor:
    """``[L, H, H]`` attention-map similarity of the teacher's heads on seeded train inputs."""
    order = torch.randperm(
        len(request.train_set), generator=torch.Generator().manual_seed(request.seed + 1)
    )
    subset = Subset(request.train_set, sorted(order[: config.pairing_examples].tolist()))
    batches = DataLoader(subset, batch_size=32, collate_fn=request.collate)
    with _eager_attention(request.teacher, when=True):
        return attention_map_similarity(request.teacher, batches)


def _pair_heads(
    request: PruneRequest, plan: PruningPlan, similarity: torch.Tensor
) -> list[tuple[int, int, int]]:
    """``(layer, student position of the retained head, teacher position of the pruned head)``
    for every pruned head: the retained head whose teacher attention maps are most alike."""
    teacher_heads = current_plan(request.teacher).kept_heads
    pairs = []
    for layer, retained in enumerate(plan.kept_heads):
        peers = [r for r in retained if r in teacher_heads[layer]]
        pruned = sorted(set(request.plan.kept_heads[layer]) - set(retained))
        for head in pruned:
            if not peers or head not in teacher_heads[layer]:
                continue
            best = max(peers, key=lambda r: float(similarity[layer, head, r]))
            student_position = request.plan.kept_heads[layer].index(best)
            pairs.append((layer, student_position, teacher_heads[layer].index(head)))
    return pairs

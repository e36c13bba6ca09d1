"""SparseBERT: knowledge-aware sparse pruning (Xu, Yen, Zhao, Xiao, NAACL 2021; code
dongkuanx27/SparseBERT, ``task_distill_prune_simultaneously.py``; methods.md §4).

The student is the **pre-trained** model with a new classifier (this method's metadata says it
prunes pre-trained models, so `prunekit prune` loads it as such; a head-pruned student is
compared on the heads it has); the teacher is the fine-tuned
dense model (by default from the dense cache, or ``--teacher DIR``). While the student learns
from the teacher (attention maps, hidden states of the embeddings and every layer, and the
logits), the six linears of every layer are magnitude-pruned per tensor to ``sparsity`` (0.95)
on the cubic schedule, the masks re-applied after every optimizer step (`gradual_magnitude`).
Loss per step: sum over layers of MSE(A^S, A^T) + sum over the embeddings and layers of
MSE(H^S, H^T) + soft cross-entropy at τ = 1, as in the code; for STS-B (OUR CHOICE, methods.md
§6.5, as every KD method) the mean of MSE to the teacher's score and MSE to the gold score,
where the code has MSE to gold alone.

The attention term compares pre-softmax scores ``Q K^T / sqrt(d)`` as the code does;
transformers 5 returns only probabilities, so they are rebuilt from each layer's query and key
projections (`prunekit.models.attention_scores`). Entries of padded keys are zeroed as in the
code, and (OUR CHOICE) so are the rows of padded queries, which carry nothing. lr 3e-5 with the
code's constant schedule. ``attention_loss="probabilities"`` compares the probabilities a model
returns instead (the method's first version: on MiniLM that term starts about 300 times
smaller than the hidden one, 0.003 against 0.92 on an MRPC batch, so it hardly counted), with
the student's attention dropout off, since the probabilities returned in train mode are after
dropout.
Both MSE terms are means over the padded batch, as in the code, whose batches are all padded to
128 tokens; prunekit pads each batch to its longest example, so (OUR CHOICE, a known
difference) the padding's share, and with it the weight of the attention and hidden terms
against the prediction term, moves from batch to batch, and length-grouped batches
(``group_by_length``) dilute them less than random ones.
TinyBERT-style augmentation (``augment`` = N copies of every training example, off by default)
draws replacements from the model's word-piece embedding neighbours instead of BERT-MLM/GloVe
(`prunekit.data.augment`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from prunekit.data.augment import WordPieces, augment_dataset
from prunekit.errors import ConfigError
from prunekit.methods.magnitude import GradualConfig, gradual_magnitude
from prunekit.methods.registry import MethodResult, PruneRequest, register_method
from prunekit.models import current_plan
from prunekit.models.attention_scores import AttentionScores
from prunekit.models.head_outputs import attention_dropout_off
from prunekit.train.distill import check_teacher_shape

__all__ = ["Config", "prune_sparse_kd", "sparse_kd_parts"]


class Config(GradualConfig):
    """The gradual sparsifier's settings, with SparseBERT's defaults (its KD is always on)."""

    read_only_with: ClassVar[dict[str, str]] = {
        "augment_probability": "augment",
        "augment_candidates": "augment",
    }

    lr_schedule: Literal["linear", "constant"] = Field(
        "constant", description="SparseBERT's code trains at a constant rate"
    )
    attention_loss: Literal["scores", "probabilities"] = Field(
        "scores", description="what the attention term compares: pre-softmax scores (the code)"
    )
    augment: int = Field(
        0, ge=0, description="augmented copies per training example (TinyBERT: 30 on small tasks)"
    )
    augment_probability: float = Field(0.4, ge=0, le=1, description="per-word replacement")
    augment_candidates: int = Field(15, ge=1, description="embedding neighbours per word")


def sparse_kd_parts(
    student_out,
    teacher_out,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    regression: bool,
    pairs: list[tuple[int, int, torch.Tensor | None]] | None = None,
    maps: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """The three SparseBERT terms of one batch (attention, hidden, prediction).

    ``maps``: (student's, teacher's) attention maps per layer with heads, e.g. pre-softmax
    scores from `AttentionScores`; None takes the probabilities the outputs carry.
    ``pairs``: for each student layer with heads, ``(student map index, teacher map index,
    positions of the student's heads among the teacher's or None)``; layers without heads have
    no map. None pairs every layer one to one.
    """
    # a layer without heads returns no map (BERT-style) or an empty one (MPNet): left out alike
    student_maps, teacher_maps = maps or (
        [a for a in student_out.attentions if a.shape[1]],
        [a for a in teacher_out.attentions if a.shape[1]],
    )
    valid = attention_mask[:, None, :, None] * attention_mask[:, None, None, :]  # query x key
    valid = valid.to(student_maps[0].dtype if student_maps else student_out.logits.dtype)
    if pairs is None:
        pairs = [(i, i, None) for i in range(len(student_maps))]
    attention = student_out.logits.new_zeros(())  # a student without heads: no attention term
    for mine, theirs, heads in pairs:
        # the teacher's dtype may differ (a half-precision teacher beside a student the loop
        # trains in float32): mse_loss's backward refuses mixed dtypes
        s = student_maps[mine]
        t = teacher_maps[theirs].to(valid.device, s.dtype)
        if heads is not None:
            t = t.index_select(1, heads.to(t.device))
        attention = attention + F.mse_loss(s * valid, t * valid)
    hidden = sum(
        F.mse_loss(s, t.to(s.device, s.dtype))
        for s, t in zip(student_out.hidden_states, teacher_out.hidden_states, strict=True)
    )
    student_logits = student_out.logits
    if regression:  # OUR CHOICE, methods.md §6.5 (as every KD method): teacher and gold alike
        student = student_logits.squeeze(-1).float()  # fp32: bf16 would round gold scores
        teacher = teacher_out.logits.squeeze(-1).to(student.device).float()
        gold = labels.to(student.device).float()
        prediction = 0.5 * (F.mse_loss(student, teacher) + F.mse_loss(student, gold))
    else:  # soft cross-entropy at tau = 1, mean over batch and classes as in the code
        target = torch.softmax(teacher_out.logits.to(student_logits.device), dim=-1)
        prediction = -(target * torch.log_softmax(student_logits, dim=-1)).mean()
    return {"attention": attention, "hidden": hidden, "prediction": prediction}


@register_method(
    "sparse-kd",
    config=Config,
    summary="SparseBERT (Xu et al. 2021): magnitude-prune the pre-trained model to a sparsity "
    "while distilling attention, hidden states and logits from the fine-tuned teacher",
    targets=("sparsity",),
    per_layer=False,
    attn_implementation="eager",
    trains_weights=True,
    needs_teacher=True,
    prunes_pretrained=True,
    needs_data=("train",),
)
def prune_sparse_kd(request: PruneRequest, config: Config) -> MethodResult:
    if config.augment:
        request = _augmented(request, config)
    teacher = request.teacher.eval()
    regression = request.task is not None and request.task.is_regression
    pairs = _attention_pairs(request.plan, current_plan(teacher), request.model, teacher)
    student = copy.deepcopy(request.model)
    scores = config.attention_loss == "scores"
    # hooks on the modules themselves: they fire however the loop wraps the student
    student_scores, teacher_scores = AttentionScores(student), AttentionScores(teacher)

    def loss_fn(model, batch, step: int) -> dict[str, torch.Tensor]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        outputs = dict(output_attentions=not scores, output_hidden_states=True)
        with torch.no_grad():
            teacher_device = next(teacher.parameters()).device
            on_teacher = {k: v.to(teacher_device) for k, v in inputs.items()}
            teacher_out = teacher(**on_teacher, **outputs)
        student_out = model(**inputs, **outputs)
        maps = (student_scores.scores(), teacher_scores.scores()) if scores else None
        return sparse_kd_parts(
            student_out,
            teacher_out,
            inputs["attention_mask"],
            batch["labels"],
            regression,
            pairs,
            maps,
        )

    with contextlib.ExitStack() as stack:
        if scores:  # dropout acts after the softmax: the scores never see it
            stack.enter_context(student_scores)
            stack.enter_context(teacher_scores)
        else:  # the probabilities returned in train mode are after dropout: no noise on them
            stack.enter_context(attention_dropout_off(student))
        result = gradual_magnitude(request, config, student, loss_fn)
    result.plan = result.plan.model_copy(
        update={"meta": {**result.plan.meta, "distill": "attention+hidden+prediction"}}
    )
    return result


def _augmented(request: PruneRequest, config: Config) -> PruneRequest:
    """The request with its train split followed by ``augment`` augmented copies."""
    if request.tokenizer is None:
        raise ConfigError("augmentation rewrites tokens: the request needs the model's tokenizer")
    train_set = augment_dataset(
        request.train_set,
        WordPieces(request.tokenizer),
        request.model.get_input_embeddings().weight,
        config.augment,
        config.augment_probability,
        config.augment_candidates,
        seed=request.seed,
    )
    return dataclasses.replace(request, train_set=train_set)


def _attention_pairs(student, teacher, student_model, teacher_model):
    """Which attention map of the teacher each of the student's is compared with, and which of
    its heads; refuses a teacher of another shape (one line, not a shape error mid-training)."""
    check_teacher_shape("sparse-kd", teacher_model, student_model)
    pairs, mine_index, theirs_index = [], 0, 0
    for layer, (mine, theirs) in enumerate(
        zip(student.kept_heads, teacher.kept_heads, strict=True)
    ):
        if not set(mine) <= set(theirs):
            raise ConfigError(f"the student keeps heads of layer {layer} the teacher lacks")
        if mine:
            heads = None
            if mine != theirs:
                heads = torch.tensor([theirs.index(h) for h in mine], dtype=torch.long)
            pairs.append((mine_index, theirs_index, heads))
            mine_index += 1
        theirs_index += bool(theirs)  # a layer without heads returns no attention map
    return pairs

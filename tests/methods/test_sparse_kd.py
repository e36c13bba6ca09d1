"""SparseBERT's losses and method: zero distillation for an identical student, the target
sparsity per tensor, and compare refusing methods that prune pre-trained models."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from conftest import labelled_batch, tiny_model, train_request, word_tokenizer

from prunekit import current_plan
from prunekit.errors import ConfigError
from prunekit.methods import PruneRequest, get_method
from prunekit.methods.sparse_kd import _attention_pairs, sparse_kd_parts
from prunekit.models.attention_scores import AttentionScores
from prunekit.models.masks import masked_linears
from prunekit.recipes.compare import CompareConfig, run_compare

BATCH = labelled_batch()


def outputs(model):
    inputs = {k: v for k, v in BATCH.items() if k != "labels"}
    with torch.no_grad():
        return model(**inputs, output_attentions=True, output_hidden_states=True)


def test_the_distillation_terms_vanish_for_a_student_equal_to_the_teacher():
    teacher = tiny_model("bert", attn="eager")
    same = outputs(copy.deepcopy(teacher))
    parts = sparse_kd_parts(same, outputs(teacher), BATCH["attention_mask"], BATCH["labels"], False)
    assert parts["attention"].item() == 0.0 and parts["hidden"].item() == 0.0
    probabilities = torch.softmax(same.logits, -1)
    entropy = -(probabilities * torch.log_softmax(same.logits, -1)).mean()
    assert parts["prediction"].item() == pytest.approx(entropy.item())  # soft CE's minimum


def test_the_score_term_vanishes_for_the_teacher_and_ignores_padded_keys_and_queries():
    teacher = tiny_model("bert", attn="eager")
    mask = BATCH["attention_mask"]
    assert (mask == 0).any()  # the batch has padding to ignore

    def parts_against(student):
        with torch.no_grad(), AttentionScores(student) as mine, AttentionScores(teacher) as theirs:
            student_out, teacher_out = outputs(student), outputs(teacher)
        maps = (mine.scores(), theirs.scores())
        return sparse_kd_parts(student_out, teacher_out, mask, BATCH["labels"], False, maps=maps)

    assert parts_against(copy.deepcopy(teacher))["attention"].item() == 0.0
    assert parts_against(tiny_model("bert", attn="eager", seed=1))["attention"].item() > 0
    # entries of padded keys or padded queries do not count; every other entry does
    with torch.no_grad(), AttentionScores(teacher) as recorder:
        teacher_out = outputs(teacher)
    scores = recorder.scores()
    real = (mask[:, None, :, None] * mask[:, None, None, :]).bool().expand_as(scores[0])
    off_padding = [m.masked_fill(~real, 5.0) for m in scores]
    on_real = [m + real.float() for m in scores]
    for student_maps, expected_zero in ((off_padding, True), (on_real, False)):
        parts = sparse_kd_parts(
            teacher_out, teacher_out, mask, BATCH["labels"], False, maps=(student_maps, scores)
        )
        assert (parts["attention"].item() == 0.0) == expected_zero


@pytest.mark.parametrize("attention_loss", ["scores", "probabilities"])
def test_the_student_ends_at_the_target_sparsity(attention_loss):
    teacher = tiny_model("bert", attn="eager", seed=1)
    request = kd_request(
        tiny_model("bert", attn="eager"),
        teacher,
        epochs=2,
        events=3,
        sparsity=0.9,
        attention_loss=attention_loss,
    )
    result = get_method("sparse-kd")(request)
    for key, weight in masked_linears(result.model, result.plan).items():
        mask = result.plan.masks[key]
        assert int(mask.sum()) == round(0.1 * weight.numel()), key  # the target, not fewer
        assert not weight[~mask].any() and int((weight != 0).sum()) == int(mask.sum()), key
    curve = result.record["loss_curve"]
    assert {"attention", "hidden", "prediction"} <= set(curve[0])
    assert all(math.isfinite(point["attention"]) and point["attention"] > 0 for point in curve)


@pytest.mark.parametrize("method", ["sparse-kd", "smp"])
def test_compare_refuses_methods_that_prune_pre_trained_models(method, tmp_path):
    with pytest.raises(ConfigError, match="pre-trained"):
        run_compare(CompareConfig(task="rte", out=tmp_path, methods=(method,)))


def kd_request(student, teacher, **options) -> PruneRequest:
    defaults = {"epochs": 1, "batch_size": 4, "events": 2, "sparsity": 0.5}
    return train_request(student, teacher, defaults | options)


def test_a_head_pruned_student_is_compared_on_its_own_heads():
    from prunekit import PruningPlan, apply_plan

    student = tiny_model("bert", attn="eager")
    apply_plan(
        student,
        PruningPlan.build(
            num_layers=3, num_heads=4, intermediate_size=37, kept_heads=[[0, 2], [], [1, 2, 3]]
        ),
    )
    teacher = tiny_model("bert", attn="eager", seed=1)
    result = get_method("sparse-kd")(kd_request(student, teacher))
    assert result.plan.kept_heads == ((0, 2), (), (1, 2, 3))
    # the student's maps (layers 0 and 2; layer 1 has none) against the teacher's heads 0, 2
    # of layer 0 and 1, 2, 3 of layer 2
    pairs = _attention_pairs(current_plan(student), current_plan(teacher), student, teacher)
    assert [(mine, theirs) for mine, theirs, _ in pairs] == [(0, 0), (1, 2)]
    assert pairs[0][2].tolist() == [0, 2] and pairs[1][2].tolist() == [1, 2, 3]


def test_a_teacher_of_another_shape_is_a_clear_error():
    import transformers
    from conftest import tiny_config

    config = tiny_config("bert")
    config.hidden_size, config.num_attention_heads = 48, 4
    other = transformers.AutoModelForSequenceClassification.from_config(
        config, attn_implementation="eager"
    )
    with pytest.raises(ConfigError, match="layers, heads and width"):
        get_method("sparse-kd")(kd_request(tiny_model("bert", attn="eager"), other))


def test_augmentation_multiplies_the_training_data_and_needs_the_tokenizer():
    teacher = tiny_model("bert", attn="eager", seed=1)
    plain = get_method("sparse-kd")(kd_request(tiny_model("bert", attn="eager"), teacher))
    request = kd_request(tiny_model("bert", attn="eager"), teacher, augment=2, augment_candidates=3)
    with pytest.raises(ConfigError, match="tokenizer"):
        get_method("sparse-kd")(request)
    request.tokenizer = word_tokenizer()
    augmented = get_method("sparse-kd")(request)
    # One epoch over three times the examples: three times the steps.
    assert augmented.record["train_steps"] == 3 * plain.record["train_steps"]


def test_on_regression_the_prediction_term_weighs_teacher_and_gold_alike():
    """STS-B (methods.md §6.5, as every KD method): MSE to the teacher plus MSE to gold."""
    teacher = tiny_model("bert", attn="eager", num_labels=1)
    student = tiny_model("bert", attn="eager", num_labels=1, seed=1)
    gold = torch.linspace(0.0, 5.0, BATCH["labels"].shape[0])
    mine, theirs = outputs(student), outputs(teacher)
    parts = sparse_kd_parts(mine, theirs, BATCH["attention_mask"], gold, True)
    s, t = mine.logits.squeeze(-1), theirs.logits.squeeze(-1)
    expected = 0.5 * (torch.mean((s - t) ** 2) + torch.mean((s - gold) ** 2))
    assert torch.allclose(parts["prediction"], expected)


def test_a_student_without_heads_trains_on_hidden_states_and_predictions():
    from prunekit import PruningPlan, apply_plan

    student = tiny_model("bert", attn="eager")
    apply_plan(
        student,
        PruningPlan.build(num_layers=3, num_heads=4, intermediate_size=37, kept_heads=[[]] * 3),
    )
    parts = sparse_kd_parts(
        outputs(student),
        outputs(tiny_model("bert", attn="eager")),
        BATCH["attention_mask"],
        BATCH["labels"],
        False,
    )
    assert parts["attention"].item() == 0.0 and parts["hidden"].item() > 0.0

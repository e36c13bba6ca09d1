"""Tests for GLUE metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunekit.data import (
    compute_metrics,
    constant_prediction_floor,
    get_task,
    list_tasks,
    primary_metric,
)
from prunekit.errors import DataError

# Ten binary examples with TP=4, TN=3, FP=1, FN=2 (positive class is 1).
GOLD = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
PRED = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]


def test_confusion_matrix_fixture() -> None:
    pairs = list(zip(GOLD, PRED, strict=True))
    assert (pairs.count((1, 1)), pairs.count((0, 0)), pairs.count((0, 1)), pairs.count((1, 0))) == (
        4, 3, 1, 2,
    )  # fmt: skip


def test_cola_matthews_by_formula() -> None:
    tp, tn, fp, fn = 4, 3, 1, 2
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    # = (12 - 2) / sqrt(5 * 6 * 4 * 5) = 10 / sqrt(600) = 0.40825
    assert mcc == pytest.approx(0.408248, abs=1e-6)
    assert compute_metrics("cola", PRED, GOLD) == {"matthews": pytest.approx(100 * mcc)}


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_accuracy_and_f1_by_formula(task: str) -> None:
    tp, fp, fn = 4, 1, 2
    f1 = 2 * tp / (2 * tp + fp + fn)  # = 8 / 11
    out = compute_metrics(task, np.array(PRED), np.array(GOLD))
    assert out == {"accuracy": pytest.approx(70.0), "f1": pytest.approx(100 * 8 / 11)}
    assert out["f1"] == pytest.approx(100 * f1)


@pytest.mark.parametrize("task", ["sst2", "qnli", "rte", "wnli"])
def test_accuracy_only(task: str) -> None:
    assert compute_metrics(task, PRED, GOLD) == {"accuracy": pytest.approx(70.0)}  # 7 of 10


def test_mnli_three_class_accuracy() -> None:
    assert compute_metrics("mnli", [0, 1, 2, 2], [0, 1, 1, 2]) == {"accuracy": 75.0}


def test_stsb_pearson_and_spearman_by_hand() -> None:
    pred = [1.0, 2.0, 3.0, 4.0, 100.0]
    gold = [2.0, 1.0, 4.0, 3.0, 5.0]
    # Spearman: ranks of pred 1..5, of gold 2,1,4,3,5; d = -1,1,-1,1,0; sum d^2 = 4;
    # rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8.
    rho = 1 - 6 * 4 / (5 * 24)
    # Pearson: mean pred 22, mean gold 3; deviations dx = -21,-20,-19,-18,78 and
    # dy = -1,-2,1,0,2; sum dx*dy = 21 + 40 - 19 + 0 + 156 = 198;
    # sum dx^2 = 441 + 400 + 361 + 324 + 6084 = 7610; sum dy^2 = 10.
    r = 198 / math.sqrt(7610 * 10)
    out = compute_metrics("STS-B", pred, gold)
    assert out == {"pearson": pytest.approx(100 * r), "spearman": pytest.approx(100 * rho)}
    assert out["pearson"] == pytest.approx(71.775, abs=1e-3)


def test_stsb_accepts_regression_head_shape() -> None:
    pred = np.array([[0.1], [0.5], [0.9]])
    out = compute_metrics("stsb", pred, [1.0, 2.0, 3.0])
    assert out == {"pearson": pytest.approx(100.0), "spearman": pytest.approx(100.0)}


def test_values_are_plain_floats() -> None:
    for task, pred, gold in [("mrpc", PRED, GOLD), ("stsb", [1.0, 2.0], [2.0, 3.0])]:
        for value in compute_metrics(task, pred, gold).values():
            assert type(value) is float


def test_constant_predictions_do_not_crash() -> None:
    assert compute_metrics("cola", [1] * 10, GOLD) == {"matthews": 0.0}
    assert compute_metrics("mrpc", [0] * 10, GOLD) == {"accuracy": 40.0, "f1": 0.0}
    assert compute_metrics("stsb", [2.5] * 4, [1.0, 2.0, 3.0, 4.0]) == {
        "pearson": 0.0,
        "spearman": 0.0,
    }
    # a diverged regression head: 0 (explains nothing), not nan that reports would average
    assert compute_metrics("stsb", [1.0, float("nan"), 3.0, 2.0], [1.0, 2.0, 3.0, 4.0]) == {
        "pearson": 0.0,
        "spearman": 0.0,
    }


def test_length_mismatch_and_empty() -> None:
    with pytest.raises(DataError, match="3 predictions but 2 labels"):
        compute_metrics("sst2", [0, 1, 1], [0, 1])
    with pytest.raises(DataError, match="No predictions"):
        compute_metrics("sst2", [], [])
    with pytest.raises(DataError, match="at least 2"):
        compute_metrics("stsb", [1.0], [1.0])


def test_bad_class_values() -> None:
    with pytest.raises(DataError, match="class indices"):
        compute_metrics("rte", [0, 2], [0, 1])
    with pytest.raises(DataError, match="class indices"):
        compute_metrics("rte", ["entailment"], ["entailment"])
    with pytest.raises(DataError, match="argmax"):
        compute_metrics("mnli", np.zeros((4, 3)), [0, 1, 2, 0])


def test_primary_metric() -> None:
    expected = {"cola": "matthews", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman",
                "qqp": "accuracy", "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy",
                "wnli": "accuracy"}  # fmt: skip
    assert {t: primary_metric(t) for t in list_tasks()} == expected
    for task in list_tasks():
        n = get_task(task).num_labels
        pred = [0.0, 1.0, 2.0] if n == 1 else [0, 1, 0]
        gold = [0.0, 2.0, 1.0] if n == 1 else [0, 1, 1]
        assert expected[task] in compute_metrics(task, pred, gold)


def test_constant_prediction_floor_is_the_best_single_answer():
    # 3 of 4 pairs are paraphrases: "1" for all gives F1 = 2 * 0.75 / 1.75; "0" gives F1 = 0
    assert constant_prediction_floor("mrpc", [1, 1, 0, 1]) == pytest.approx(100 * 1.5 / 1.75)
    assert constant_prediction_floor("rte", [0, 1, 1]) == pytest.approx(100 * 2 / 3)
    assert constant_prediction_floor("sst2", [0, 0, 1]) == pytest.approx(100 * 2 / 3)
    assert constant_prediction_floor("cola", [0, 1, 1]) == 0.0
    assert constant_prediction_floor("stsb", [0.5, 2.0, 4.5]) == 0.0

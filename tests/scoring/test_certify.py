"""The certificate's bootstrap bound and the search/certify split it is measured on."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prunekit.data import TaskData, get_task
from prunekit.scoring.certify import bootstrap_drop_bound


def accuracy_case(n: int, p: float, seed: int):
    """Reference always right; the pruned model right with probability ``p``: the accuracy
    drop is ``100 (1 - p_hat)`` with standard error ``100 sqrt(p (1 - p) / n)``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    reference = np.eye(2)[labels]
    right = rng.random(n) < p
    pruned = np.eye(2)[np.where(right, labels, 1 - labels)]
    return reference, pruned, labels, 100 * (1 - right.mean())


def test_the_bound_matches_the_normal_approximation():
    n, p = 2000, 0.9
    reference, pruned, labels, drop = accuracy_case(n, p, seed=1)
    bound = bootstrap_drop_bound(get_task("rte"), reference, pruned, labels, samples=2000)
    assert bound.drop == pytest.approx(drop)
    se = 100 * math.sqrt(p * (1 - p) / n)
    # one-sided 95%: 1.645 standard errors above the drop (90% would be 1.28, 0.24 lower)
    assert (bound.upper_bound - bound.drop) / se == pytest.approx(1.645, abs=0.1)
    assert bound.examples == n and bound.confidence == 0.95
    lower = bootstrap_drop_bound(
        get_task("rte"), reference, pruned, labels, samples=2000, confidence=0.9
    )
    assert (lower.upper_bound - lower.drop) / se == pytest.approx(1.282, abs=0.1)


def test_the_bound_covers_the_true_drop_about_95_percent_of_the_time():
    true_drop = 100 * (1 - 0.9)
    covered = 0
    for seed in range(60):
        reference, pruned, labels, _ = accuracy_case(300, 0.9, seed)
        bound = bootstrap_drop_bound(get_task("rte"), reference, pruned, labels, samples=300)
        covered += bound.upper_bound >= true_drop
    assert 0.85 <= covered / 60 <= 1.0


def test_identical_predictions_bound_the_drop_like_the_rule_of_three():
    n = 300
    reference, _, labels, _ = accuracy_case(n, 0.9, seed=0)
    bound = bootstrap_drop_bound(get_task("rte"), reference, reference.copy(), labels)
    # no change among n examples: the change rate is below ~3/n at 95%, and so is the drop
    assert bound.drop == 0.0
    assert bound.upper_bound == pytest.approx(100 * 3 / n, rel=0.35)
    plain = bootstrap_drop_bound(
        get_task("mrpc"), reference, reference.copy(), labels, harm_examples=0
    )
    assert plain.upper_bound == 0.0  # what the uncorrected bootstrap would certify


def test_regression_tasks_get_no_pseudo_example():
    rng = np.random.default_rng(0)
    labels = rng.random(200) * 5
    reference = (labels + rng.normal(0, 0.5, 200))[:, None]
    bound = bootstrap_drop_bound(get_task("stsb"), reference, reference.copy(), labels)
    assert bound.upper_bound == 0.0


def test_search_and_certify_parts_are_disjoint_seeded_and_capped():
    data = TaskData(get_task("sst2"), tokenizer=None, data_dir=None, seed=0)
    data._cache[("validation", None, None)] = list(range(2500))  # stands in for the encoded split
    search, certify = data.search_certify_split("validation", seed=3)
    assert not set(search) & set(certify)
    assert len(search) == len(certify) == 1000  # large tasks: each part capped
    assert (search, certify) == data.search_certify_split("validation", seed=3)
    assert (search, certify) != data.search_certify_split("validation", seed=4)
    small, held_out = data.search_certify_split("validation", seed=3, search_samples=200)
    assert len(small) == 200 and set(small) <= set(search) and held_out == certify

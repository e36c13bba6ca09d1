"""A*: optimal on a synthetic super-additive metric, budget respected, back-off, exact cache."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest
import torch
from conftest import TINY, tiny_batch, tiny_model

from prunekit import current_plan
from prunekit.data import get_task
from prunekit.methods import HeadTarget, PruneRequest, get_method, head_target
from prunekit.methods.astar_search import (
    EvalCounter,
    certify_in_sequence,
    longest_feasible_prefix,
    path_to,
    search_deepest,
    search_fixed_k,
    search_max_heads,
    within_capacity,
)
from prunekit.scoring.evaluator import GatedEvaluator

L, H = TINY["layers"], TINY["heads"]
HEADS = [(layer, h) for layer in range(L) for h in range(H)]


def synthetic(seed: int):
    """drop(P) = sum of per-head weights + non-negative pairwise interactions (super-additive)."""
    rng = random.Random(seed)
    weight = {h: rng.uniform(0, 3) for h in HEADS}
    pair = {frozenset(p): rng.uniform(0, 1) for p in itertools.combinations(HEADS, 2)}

    def drop(state):
        return sum(weight[h] for h in state) + sum(
            pair[frozenset(p)] for p in itertools.combinations(sorted(state), 2)
        )

    return weight, drop


FLOOR_CAPACITY = {layer: H - 2 for layer in range(L)}  # --at-least-heads-per-layer 2


def respects_floor(state) -> bool:
    return all(sum(1 for li, _ in state if li == layer) <= H - 2 for layer in range(L))


def assert_fixed_k_finds_the_brute_force_optimum(seed: int, k: int, capacity=None) -> None:
    """Fixed-K A* with full branching returns the K-set of least drop among those allowed
    (every set, or those keeping the per-layer floor when ``capacity`` is FLOOR_CAPACITY)."""
    weight, drop = synthetic(seed)
    result = search_fixed_k(
        k,
        100.0,
        weight,
        lambda states: [drop(s) for s in states],
        budget=math.inf,
        branching=len(HEADS),
        counter=EvalCounter(10**6),
        capacity=capacity,
    )
    allowed = [c for c in itertools.combinations(HEADS, k) if capacity is None or respects_floor(c)]
    assert len(result.state) == k and (capacity is None or respects_floor(result.state))
    assert result.drop == pytest.approx(min(drop(frozenset(c)) for c in allowed))
    assert not result.capped


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [2, 4])
def test_fixed_k_astar_finds_the_brute_force_optimum(seed, k):
    assert_fixed_k_finds_the_brute_force_optimum(seed, k)


def budget_search(name: str, weight, drop, budget: float, limit: int = 10**6, capacity=None):
    drops = lambda states: [drop(s) for s in states]  # noqa: E731
    counter, branching, depth = EvalCounter(limit), len(HEADS), len(HEADS)
    if name == "per-k":
        return search_max_heads(100.0, weight, drops, budget, branching, counter, depth, capacity)
    return search_deepest(weight, drops, budget, branching, counter, depth, capacity=capacity)


@pytest.mark.parametrize("search", ["deepest", "per-k"])
def test_budget_mode_returns_the_largest_feasible_set(search):
    weight, drop = synthetic(7)
    budget = 2.5
    result = budget_search(search, weight, drop, budget)
    assert drop(result.state) <= budget
    feasible_sizes = [
        k
        for k in range(1, len(HEADS))
        if any(drop(frozenset(c)) <= budget for c in itertools.combinations(HEADS, k))
    ]
    assert len(result.state) == max(feasible_sizes)


def test_deepest_search_crosses_a_plateau_that_stalls_per_k_search():
    # Removing up to 6 heads (any) improves the metric; each head beyond costs 0.3 points.
    weight = dict.fromkeys(HEADS, 0.0)

    def drop(state):
        return -1.0 if len(state) <= 6 else 0.3 * (len(state) - 6)

    deepest = budget_search("deepest", weight, drop, budget=0.5, limit=100)
    per_k = budget_search("per-k", weight, drop, budget=0.5, limit=100)
    assert len(deepest.state) == 7 and drop(deepest.state) <= 0.5
    # per-K A* must first expand every cheaper (plateau) state before it would pop a 7-set:
    # capped there, it returns a 7-set its expansions measured (within the budget) rather
    # than stopping at 6
    assert per_k.capped and len(per_k.state) == 7 and drop(per_k.state) <= 0.5


def test_capped_fixed_k_search_still_returns_k_heads():
    weight, drop = synthetic(1)
    result = search_fixed_k(
        6,
        100.0,
        weight,
        lambda states: [drop(s) for s in states],
        budget=math.inf,
        branching=4,
        counter=EvalCounter(10),
    )
    assert result.capped and len(result.state) == 6


def test_certify_in_sequence_returns_the_last_passing_state_of_the_chain():
    small, medium, big = (frozenset(HEADS[:k]) for k in (1, 2, 3))
    full_metric = {frozenset(): 80.0, big: 78.0, medium: 79.5, small: 80.0}
    info = certify_in_sequence(full_metric.__getitem__, [small, medium, big], budget=1.0)
    assert info["state"] == medium and info["backed_off"] and info["drop"] == pytest.approx(0.5)
    assert info["states_tried"] == 3
    passing = certify_in_sequence(full_metric.__getitem__, [small, medium, big], budget=2.0)
    assert passing["state"] == big and not passing["backed_off"]
    assert certify_in_sequence(full_metric.__getitem__, [], budget=2.0)["state"] == frozenset()


def labelled(n_batches: int = 3, task_labels: int = 2):
    out = []
    for i in range(n_batches):
        batch = tiny_batch(batch=6, seq=10, seed=i)
        batch["labels"] = torch.tensor([(j + i) % task_labels for j in range(6)])
        out.append(batch)
    return out


def test_prefix_cache_gives_exactly_the_uncached_outputs():
    model = tiny_model("bert")
    rng = random.Random(0)
    states = [frozenset(rng.sample(HEADS, rng.randint(0, 6))) for _ in range(25)]
    plain = GatedEvaluator(model, labelled(), get_task("rte"), cache_bytes=0, states_per_forward=1)
    cached = GatedEvaluator(model, labelled(), get_task("rte"), states_per_forward=1)
    stacked = GatedEvaluator(model, labelled(), get_task("rte"), states_per_forward=5)
    cached.logits(states[:5])  # warm the cache so later states start mid-network
    for state in states:
        reference = plain.logits([state])[0]
        assert np.array_equal(cached.logits([state])[0], reference)
    for got, want in zip(stacked.logits(states), plain.logits(states), strict=True):
        assert np.allclose(got, want, atol=1e-5)
    assert cached.stats.layer_forwards_saved > 0
    assert plain.metrics(states) == cached.metrics(states)


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet"])
def test_cache_is_exact_for_other_families(family):
    model = tiny_model(family)
    states = [frozenset(), frozenset({(2, 1)}), frozenset({(2, 1), (2, 3)}), frozenset({(1, 0)})]
    plain = GatedEvaluator(model, labelled(), get_task("rte"), cache_bytes=0)
    cached = GatedEvaluator(model, labelled(), get_task("rte"), states_per_forward=2)
    for got, want in zip(cached.logits(states), plain.logits(states), strict=True):
        assert np.allclose(got, want, atol=1e-5)


def astar_request(model, target, **options):
    batches = labelled
    return PruneRequest(
        model=model,
        plan=current_plan(model),
        target=target,
        seed=0,
        batches=batches,
        task=get_task("rte"),
        options=options,
    )


def planted_heads_model():
    """A tiny BERT whose heads matter, and batches labelled with its own predictions.

    On the plain tiny model no removal of up to all 12 heads flipped a prediction, so a budget
    never bound. Here each head's block of the attention output projection is scaled by
    10**U(-1, 1.3) (seeded): the full model scores 100, and 674 of the 4,096 head sets keep
    every prediction, the largest of them (one set) removes 9 heads."""
    model = tiny_model("bert")
    rng, width = random.Random(1), TINY["hidden"] // H
    with torch.no_grad():
        for layer in model.bert.encoder.layer:
            projection = layer.attention.output.dense.weight
            for h in range(H):
                projection[:, h * width : (h + 1) * width] *= 10 ** rng.uniform(-1, 1.3)
        batches = [tiny_batch(batch=8, seq=10, seed=i) for i in range(6)]
        for batch in batches:
            batch["labels"] = model(**batch).logits.argmax(-1)
    return model, batches


@pytest.fixture(scope="module")
def planted():
    model, batches = planted_heads_model()
    states = [frozenset(c) for k in range(L * H + 1) for c in itertools.combinations(HEADS, k)]
    evaluator = GatedEvaluator(model, batches, get_task("rte"), states_per_forward=16)
    metrics = evaluator.metrics(states)
    feasible = {state for state, metric in zip(states, metrics, strict=True) if metric >= 100.0}
    return model, batches, feasible


def test_budget_mode_finds_the_largest_head_set_within_the_budget(planted):
    model, batches, feasible = planted
    largest = max(len(state) for state in feasible)
    assert 0 < largest < L * H  # the budget binds: removing every head costs accuracy
    request = astar_request(
        model, HeadTarget(keep=L * H), budget=0.0, branching=L * H, max_evals=5000
    )
    request.batches = lambda: batches
    certificate = get_method("astar")(request).plan.meta["certificate"]
    removed = frozenset(tuple(head) for head in certificate["search_removed"])
    assert certificate["mode"] == "max-heads-under-budget"
    assert certificate["final_drop"] <= 0.0
    assert removed in feasible and len(removed) == largest
    assert certificate["heads_removed"] == largest  # without a certify part, the search's set


def test_fixed_k_mode_hits_the_head_count():
    model = tiny_model("bert")
    target = head_target(current_plan(model), keep_heads=7)
    plan = get_method("astar")(astar_request(model, target, max_evals=200, branching=4)).plan
    assert plan.heads_kept == 7
    assert plan.meta["certificate"]["mode"] == "fixed-k"


def test_cache_evicting_mid_call_still_gives_exact_outputs():
    model = tiny_model("bert")
    plain = GatedEvaluator(model, labelled(), get_task("rte"), cache_bytes=0)
    evaluator = GatedEvaluator(model, labelled(), get_task("rte"), states_per_forward=1)
    first, second = frozenset({(0, 0)}), frozenset({(0, 1)})
    evaluator.logits([first, second])  # caches both layer-0 prefixes
    one_entry = sum(b["input_ids"].numel() for b in labelled()) * TINY["hidden"] * 4
    evaluator.cache_bytes = one_entry + 1  # the next store evicts every older entry
    # Two groups start at layer 1 from different cached prefixes; running the first stores
    # its layer-1 outputs and evicts the second group's prefix before that group runs.
    states = [first | {(1, 2)}, second | {(1, 2)}]
    for got, want in zip(evaluator.logits(states), plain.logits(states), strict=True):
        assert np.allclose(got, want, atol=1e-5)


def test_memo_replays_a_search_without_forwards_and_gives_the_same_plan(tmp_path):
    model = tiny_model("bert")
    options = {"budget": 0.0, "max_evals": 120, "memo_dir": str(tmp_path)}
    first = get_method("astar")(astar_request(model, HeadTarget(keep=L * H), **options)).plan
    memo_files = list(tmp_path.glob("*.jsonl"))
    assert len(memo_files) == 1
    again = get_method("astar")(astar_request(model, HeadTarget(keep=L * H), **options)).plan
    assert again.kept_heads == first.kept_heads
    cert, cert_again = first.meta["certificate"], again.meta["certificate"]
    assert cert_again["cache"]["forwards"] == 0  # every metric came from the memo
    assert cert_again["evaluations"] == cert["evaluations"]
    assert cert_again["evaluations_from_memo"] == cert["evaluations"]


def test_memo_is_keyed_by_weights_and_split(tmp_path):
    model = tiny_model("bert")
    evaluator = GatedEvaluator(model, labelled(), get_task("rte"), memo_dir=tmp_path)
    evaluator.metrics([frozenset(), frozenset({(0, 1)})])
    other_split = GatedEvaluator(model, labelled(n_batches=2), get_task("rte"), memo_dir=tmp_path)
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    other_weights = GatedEvaluator(model, labelled(), get_task("rte"), memo_dir=tmp_path)
    files = {e.memo_file for e in (evaluator, other_split, other_weights)}
    assert len(files) == 3  # named at construction, from the weights then in place
    other_weights.metric(frozenset())
    assert other_weights.stats.memo_hits == 0 and other_weights.stats.states == 1
    # other attention kernels are other measurements
    eager = tiny_model("bert", attn="eager")
    sdpa = tiny_model("bert", attn="sdpa")
    assert (
        GatedEvaluator(eager, labelled(), get_task("rte"), memo_dir=tmp_path).memo_file
        != GatedEvaluator(sdpa, labelled(), get_task("rte"), memo_dir=tmp_path).memo_file
    )


def test_memo_skips_a_torn_last_line(tmp_path):
    model = tiny_model("bert")
    evaluator = GatedEvaluator(model, labelled(), get_task("rte"), memo_dir=tmp_path)
    states = [frozenset(), frozenset({(0, 1)}), frozenset({(1, 0), (2, 2)})]
    want = evaluator.metrics(states)
    with evaluator.memo_file.open("a") as handle:
        handle.write('{"removed": [[0, 3]], "met')  # a run killed mid-write
    reread = GatedEvaluator(model, labelled(), get_task("rte"), memo_dir=tmp_path)
    assert reread.metrics(states) == want
    assert reread.stats.memo_hits == 3 and reread.stats.states == 0
    appended = reread.metric(frozenset({(0, 3)}))  # must not be glued to the torn line
    third = GatedEvaluator(model, labelled(), get_task("rte"), memo_dir=tmp_path)
    assert third.metric(frozenset({(0, 3)})) == appended and third.stats.states == 0


def test_a_killed_search_resumes_from_its_memo(tmp_path):
    model = tiny_model("bert")

    class Killed(Exception):
        pass

    def kill(info):
        raise Killed

    request = astar_request(model, HeadTarget(keep=L * H), max_evals=40, memo_dir=str(tmp_path))
    request.on_progress = kill  # dies after the first chunk of single-head ablations
    with pytest.raises(Killed):
        get_method("astar")(request)
    (memo,) = tmp_path.glob("*.jsonl")
    assert len(memo.read_text().splitlines()) == 1 + 8  # a0 and the first eight ablations
    again = get_method("astar")(
        astar_request(model, HeadTarget(keep=L * H), max_evals=40, memo_dir=str(tmp_path))
    ).plan
    assert again.meta["certificate"]["evaluations_from_memo"] == 1 + 8


def test_certify_in_sequence_stops_at_the_first_failure():
    """A later state that would pass is never tested: choosing among tested states by how they
    did on the certify examples is what fixed-sequence testing rules out."""
    chain = [frozenset(HEADS[:k]) for k in range(1, 6)]
    tested = []

    def metric_of(state):
        tested.append(state)
        return 80.0 - (3.0 if len(state) == 2 else 0.0)  # only the 2-head state fails

    info = certify_in_sequence(metric_of, chain, budget=1.0)
    assert info["state"] == chain[0] and info["states_tried"] == 2
    assert not set(tested) & set(chain[2:])


def test_certify_in_sequence_uses_the_upper_bound_when_given():
    chain = [frozenset(HEADS[:k]) for k in range(1, 4)]
    bounds = dict(zip(chain, (0.2, 0.9, 1.4), strict=True))
    info = certify_in_sequence(lambda s: 80.0, chain, 1.0, upper_bound_of=bounds.__getitem__)
    assert info["state"] == chain[1] and info["drop"] == 0.0


def test_lazy_successors_lift_the_old_depth_ceiling():
    """72 heads, 50 of which cost nothing: at 200 states and branching 8 the old expansion
    stops at 200 / 8 = 25 heads; measuring 4 successors per pop dives past 50% of heads."""
    heads = [(layer, h) for layer in range(6) for h in range(12)]
    free = set(heads[:50])

    def drops(states):
        return [0.0 if state <= free else 5.0 for state in states]

    weight = {h: (0.0 if h in free else 1.0) for h in heads}
    old = search_deepest(weight, drops, 0.5, 8, EvalCounter(200), len(heads) - 1)
    assert len(old.state) <= 25 and old.capped
    lazy = search_deepest(weight, drops, 0.5, 8, EvalCounter(200), len(heads) - 1, 4)
    assert len(lazy.state) >= 36  # at least half of the heads
    assert lazy.state <= free and lazy.drop == 0.0


def test_astar_certifies_on_the_held_out_part():
    model = tiny_model("bert")
    request = astar_request(model, HeadTarget(keep=L * H), budget=5.0, max_evals=60)
    request.certify_batches = lambda: labelled(4)  # a held-out part: other examples

    result = get_method("astar")(request)
    certificate = result.record["certificate"]
    assert certificate["certified"] and certificate["confidence"] == 0.95
    assert certificate["certify_examples"] == 4 * 6
    assert certificate["upper_bound"] <= 5.0  # what is returned is certified within B
    assert certificate["upper_bound"] >= certificate["final_drop"]


def test_a_head_count_without_a_budget_certifies_nothing():
    """No bound to certify: the certificate says so, and its JSON holds no Infinity."""
    model = tiny_model("bert")
    request = astar_request(model, HeadTarget(keep=L * H - 3), max_evals=60)
    request.certify_batches = lambda: labelled(4)
    certificate = get_method("astar")(request).record["certificate"]
    assert certificate["budget"] is None and not certificate["certified"]
    assert certificate["verified"] is None and certificate["confidence"] is None
    json.dumps(certificate, allow_nan=False)


def test_a_start_from_a_good_order_passes_a_trap_the_ablations_lead_into():
    """Single-head ablations rank 22 'trap' heads first (each alone is free, any two cost 5
    points): a dive from the full model stalls at one head; started from the longest feasible
    prefix of an order that puts the 50 harmless heads first, it keeps all 50."""
    heads = [(layer, h) for layer in range(6) for h in range(12)]
    harmless, trap = heads[:50], set(heads[50:])

    def drops(states):
        return [5.0 if len(state & trap) >= 2 else 0.0 for state in states]

    weight = {h: (0.0 if h in trap else 0.1) for h in heads}
    empty = search_deepest(weight, drops, 0.5, 8, EvalCounter(200), len(heads) - 1, 4)
    assert len(empty.state) == 1
    counter = EvalCounter(200)
    starts = longest_feasible_prefix(harmless + sorted(trap), drops, 0.5, counter, 71)
    assert len(starts[-1][0]) == 51  # 50 harmless heads and one trap head are still free
    assert counter.used <= 1 + math.ceil(math.log2(71))
    started = search_deepest(weight, drops, 0.5, 8, counter, len(heads) - 1, 4, starts)
    assert len(started.state) == 51 and drops([started.state]) == [0.0]
    assert path_to(started.state, started.parents)[0] == starts[-1][0]  # the certify chain


def test_searches_record_the_nested_path_to_their_set():
    weight, drop = synthetic(3)
    drops = lambda states: [drop(s) for s in states]  # noqa: E731
    heads = len(HEADS)
    for result in (
        search_deepest(weight, drops, 2.5, heads, EvalCounter(10**6), heads, 2),
        search_max_heads(100.0, weight, drops, 2.5, heads, EvalCounter(10**6), heads),
        search_fixed_k(3, 100.0, weight, drops, math.inf, 4, EvalCounter(10**6)),
    ):
        path = path_to(result.state, result.parents)
        assert path[-1] == result.state and len(path[0]) == 1
        assert all(a < b and len(b) == len(a) + 1 for a, b in itertools.pairwise(path))


def test_astar_starts_from_hisp_order_and_keeps_at_least_its_prefix():
    model = tiny_model("bert")
    request = astar_request(model, HeadTarget(keep=L * H), budget=2.0, max_evals=60)
    certificate = get_method("astar")(request).record["certificate"]
    assert certificate["start"] == "hisp"
    assert 0 < certificate["start_heads"] <= certificate["heads_removed"]
    # the prefix A* started from is HISP's own choice at that size, within budget
    target = head_target(current_plan(model), keep_heads=L * H - certificate["start_heads"])
    hisp = get_method("hisp")(astar_request(model, target)).plan
    hisp_removed = frozenset(
        (layer, h) for layer in range(L) for h in range(H) if h not in hisp.kept_heads[layer]
    )
    evaluator = GatedEvaluator(model, labelled(), get_task("rte"))
    assert evaluator.metric(frozenset()) - evaluator.metric(hisp_removed) <= 2.0
    empty = astar_request(model, HeadTarget(keep=L * H), budget=2.0, max_evals=60, start="empty")
    assert get_method("astar")(empty).record["certificate"]["start_heads"] == 0


def test_capped_fixed_k_search_completes_along_the_given_order():
    """Single-head ablations rank 12 'trap' heads first (each alone is free, all together cost
    50 points): capped before depth 12, completion by d+ takes the trap, completion along an
    order that puts the harmless heads first does not, and only it reports the heads it added."""
    heads = [(layer, h) for layer in range(6) for h in range(12)]
    trap = set(heads[60:])
    harmless = heads[:60]

    def drops(states):
        return [50.0 if trap <= state else 0.1 * len(state - trap) for state in states]

    weight = {h: (0.0 if h in trap else 0.2) for h in heads}
    by_ablation = search_fixed_k(40, 100.0, weight, drops, math.inf, 8, EvalCounter(30))
    assert by_ablation.capped and len(by_ablation.state) == 40
    assert trap <= by_ablation.state and drops([by_ablation.state]) == [50.0]
    calls = []

    def order():
        calls.append(1)
        return harmless + sorted(trap)

    completed = search_fixed_k(40, 100.0, weight, drops, math.inf, 8, EvalCounter(30), order)
    assert completed.capped and len(completed.state) == 40 and len(calls) == 1
    assert not trap <= completed.state and drops([completed.state])[0] < 50.0
    assert 0 < completed.completed_heads < 40 and by_ablation.completed_heads > 0
    uncapped = search_fixed_k(2, 100.0, weight, drops, math.inf, 8, EvalCounter(10**6), order)
    assert not uncapped.capped and uncapped.completed_heads == 0 and len(calls) == 1


def test_capped_fixed_k_astar_reports_its_completion():
    model = tiny_model("bert")
    keep = L * H - 5
    request = astar_request(model, HeadTarget(keep=keep), max_evals=3)
    record = get_method("astar")(request).record
    certificate = record["certificate"]
    assert certificate["capped"] and certificate["complete"] == "hisp"
    assert 0 < certificate["completed_heads"] <= 5 and certificate["heads_removed"] == 5
    (warning,) = record["warnings"]  # what `prunekit prune` prints
    assert f"{certificate['completed_heads']} of them were added in HISP's" in warning
    assert "--max-evals" in warning


@pytest.mark.parametrize("search", ["deepest", "per-k"])
def test_budget_searches_keep_the_per_layer_floor_and_find_the_largest_set_within_it(search):
    weight, drop = synthetic(7)
    budget = 10.0
    result = budget_search(search, weight, drop, budget, capacity=FLOOR_CAPACITY)
    assert respects_floor(result.state) and drop(result.state) <= budget
    sizes = [
        k
        for k in range(1, len(HEADS))
        for c in itertools.combinations(HEADS, k)
        if respects_floor(c) and drop(frozenset(c)) <= budget
    ]
    assert len(result.state) == max(sizes)
    # without the floor the same budget removes more, so the floor is what bound it
    assert len(budget_search(search, weight, drop, budget).state) > len(result.state)


def test_fixed_k_search_finds_the_best_set_that_keeps_the_floor():
    assert_fixed_k_finds_the_brute_force_optimum(3, 5, FLOOR_CAPACITY)


def test_within_capacity_drops_the_heads_a_full_layer_cannot_lose():
    order = [(0, 0), (0, 1), (0, 2), (1, 0), (0, 3), (1, 1)]
    assert within_capacity(order, {0: 2, 1: 1}) == [(0, 0), (0, 1), (1, 0)]
    assert within_capacity(order, {0: 2, 1: 1}, frozenset([(0, 0)])) == [(0, 1), (1, 0)]
    assert within_capacity(order, None, frozenset([(0, 0)])) == order[1:]


@pytest.mark.parametrize("keep", [L * H, 2 * L])
def test_astar_honours_at_least_heads_per_layer(keep):
    """Budget mode (keep all = the most heads under budget) and fixed-K mode both leave
    every layer with at least two heads when asked, however loose the budget."""
    model = tiny_model("bert")
    target = HeadTarget(keep=keep, min_per_layer=2)
    result = get_method("astar")(astar_request(model, target, budget=100.0, max_evals=200))
    assert [len(kept) for kept in result.plan.kept_heads] == [2] * L
    assert result.record["certificate"]["min_heads_per_layer"] == 2


def test_a_capped_fixed_k_search_returns_a_k_set_it_measured_before_completing_one():
    """K = 3 and two heads form a cheap pair: A* measures 3-sets below the pair, then pops a
    cheaper shallow state whose expansion runs out of evaluations. The cheapest measured
    3-set is the answer; completing the deepest popped state along an order (which here
    puts the expensive head first) would add a head nobody measured."""
    heads = [(0, h) for h in range(4)]
    cost = {(0, 0): 0.1, (0, 1): 0.1, (0, 2): 0.1, (0, 3): 5.0}

    def drops(states):
        return [sum(cost[h] for h in state) for state in states]

    weight = {h: (0.0 if h != (0, 3) else 0.01) for h in heads}
    seen_at_cap = []
    for limit in range(1, 16):
        result = search_fixed_k(3, 100.0, weight, drops, math.inf, 4, EvalCounter(limit))
        if result.capped and not result.completed_heads:
            seen_at_cap.append(result)
            assert len(result.state) == 3 and result.drop == pytest.approx(drops([result.state])[0])
    assert seen_at_cap, "no cap hit after measuring a 3-set"
    assert all(r.drop == pytest.approx(0.3) for r in seen_at_cap)


def test_a_budget_under_what_the_held_out_part_can_certify_says_so():
    """The plain tiny model keeps every prediction with heads removed, so the search removes
    many at a budget of 0; 24 held-out examples cannot bound a drop of 0 (the bound of an
    unchanged model is already over it), so the certificate keeps none, and says why."""
    model = tiny_model("bert")
    request = astar_request(model, HeadTarget(keep=L * H), budget=0.0, max_evals=60)
    request.certify_batches = lambda: labelled(4)
    result = get_method("astar")(request)
    certificate = result.record["certificate"]
    assert certificate["search_removed"] and certificate["heads_removed"] == 0
    floor = certificate["verified"]["smallest_certifiable"]
    assert floor > 0
    (warning,) = [w for w in result.record["warnings"] if "certified" in w]
    assert f"is certified only from {floor:.2f} points" in warning
    assert f"raise --budget to {floor:.2f}" in warning
    # at that budget the same search keeps its heads, and nothing is said
    request = astar_request(model, HeadTarget(keep=L * H), budget=floor, max_evals=60)
    request.certify_batches = lambda: labelled(4)
    again = get_method("astar")(request)
    assert again.record["certificate"]["heads_removed"] > 0
    assert not [w for w in again.record["warnings"] if "certified" in w]


def test_a_set_that_raises_the_metric_is_reported_as_measured(monkeypatch):
    """The search clips its drops at 0 (A*'s g), but the certificate reports what was measured:
    removing heads here raises the metric by a point each, so the final drop is negative."""
    from prunekit.scoring.evaluator import GatedEvaluator as Evaluator

    monkeypatch.setattr(Evaluator, "metrics", lambda self, states: [50.0 + len(s) for s in states])
    model = tiny_model("bert")
    request = astar_request(model, HeadTarget(keep=L * H), budget=0.0, max_evals=40)
    certificate = get_method("astar")(request).record["certificate"]
    removed = certificate["heads_removed"]
    assert removed > 0
    assert certificate["final_metric"] == 50.0 + removed
    assert certificate["final_drop"] == -removed

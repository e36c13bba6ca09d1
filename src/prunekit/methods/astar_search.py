"""A*'s searches over head sets, on an abstract ``drop_of(states)``: no model, no data.

`prunekit.methods.astar` measures drops through `GatedEvaluator` and calls these; tests call
them on synthetic metrics. See that module's docstring for the algorithm and its choices.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prunekit.scoring.evaluator import State

__all__ = [
    "SearchResult",
    "EvalCounter",
    "search_fixed_k",
    "search_max_heads",
    "search_deepest",
    "longest_feasible_prefix",
    "certify_in_sequence",
    "path_to",
    "within_capacity",
]

# How many more heads each layer may lose (``--at-least-heads-per-layer``); None: no limit.
Capacity = Mapping[int, int] | None


@dataclass
class SearchResult:
    state: State | None
    drop: float
    evaluations: int
    capped: bool = False
    # each feasible state the search measured, mapped to its parent (the state it was a
    # successor of): `path_to` reads it; starts have no parent
    parents: dict[State, State] = field(default_factory=dict)
    # heads a capped fixed-K search added by its completion order, not by measured search
    completed_heads: int = 0


class EvalCounter:
    """Distinct states evaluated so far; re-visiting a memoised state costs nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[State] = set()

    @property
    def used(self) -> int:
        return len(self.seen)

    def admit(self, states: list[State]) -> bool:
        new = [s for s in states if s not in self.seen]
        if self.used + len(new) > self.limit:
            return False
        self.seen.update(new)
        return True


def _head_order(delta_plus: dict) -> list:
    """Heads by single-head ablation drop d+, smallest first (ties by index, deterministic)."""
    return sorted(delta_plus, key=lambda h: (delta_plus[h], h))


def _open_heads(state: State, order: Sequence, capacity: Capacity) -> list:
    """Heads of ``order`` that ``state`` could remove next: not removed yet, in a layer that
    may still lose one."""
    if capacity is None:
        return [h for h in order if h not in state]
    removed = Counter(layer for layer, _ in state)
    return [h for h in order if h not in state and removed[h[0]] < capacity[h[0]]]


def within_capacity(order: Sequence, capacity: Capacity, start: State = frozenset()) -> list:
    """``order`` without the heads that would take a layer past its capacity when removed in
    that order after ``start``: every prefix of the result respects the per-layer floor."""
    if capacity is None:
        return [h for h in order if h not in start]
    removed = Counter(layer for layer, _ in start)
    kept = []
    for head in order:
        if head not in start and removed[head[0]] < capacity[head[0]]:
            removed[head[0]] += 1
            kept.append(head)
    return kept


def _feasible_children(
    state: State,
    order: list,
    branching: int,
    closed: set,
    counter: EvalCounter,
    drop_of,
    budget,
    capacity: Capacity = None,
) -> list[tuple[State, float]] | None:
    """Measure the successors of ``state`` and keep those within budget, with their g.

    Successors add one of the ``branching`` lowest-d+ heads not yet removed (and whose layer
    may still lose one); closed states are skipped. None when the evaluation cap refuses them.
    """
    children = [state | {h} for h in _open_heads(state, order, capacity)][:branching]
    children = [c for c in children if c not in closed]
    if not counter.admit(children):
        return None
    measured = [(c, max(0.0, drop)) for c, drop in zip(children, drop_of(children), strict=True)]
    return [(child, g) for child, g in measured if g <= budget]


def search_fixed_k(
    k: int,
    a0: float,
    delta_plus: dict[tuple[int, int], float],
    drop_of,
    budget: float,
    branching: int,
    counter: EvalCounter,
    completion_order: Callable[[], Sequence] | None = None,
    capacity: Capacity = None,
) -> SearchResult:
    """A* for the K-set with the least measured drop (``drop_of(states) -> list[float]``).

    When the evaluations run out (infinite budget), the deepest, cheapest partial set is
    completed by ``completion_order()`` (called only then), or by d+ without it. ``capacity``
    limits the heads removed per layer; the heuristic ignores it, so it stays admissible."""
    order = _head_order(delta_plus)

    def heuristic(state: State) -> float:
        remaining = k - len(state)
        return sum(itertools.islice((delta_plus[h] for h in order if h not in state), remaining))

    tie = itertools.count()
    start: State = frozenset()
    frontier = [(heuristic(start), -0, next(tie), start, 0.0)]
    closed: set[State] = set()
    parents: dict[State, State] = {}
    best_partial: tuple[float, int, State, float] | None = None
    while frontier:
        f, _, _, state, g = heapq.heappop(frontier)
        if state in closed:
            continue
        closed.add(state)
        if len(state) == k:
            return SearchResult(state, g, counter.used, parents=parents)
        if best_partial is None or (-len(state), f) < (-best_partial[1], best_partial[0]):
            best_partial = (f, len(state), state, g)
        children = _feasible_children(
            state, order, branching, closed, counter, drop_of, budget, capacity
        )
        if children is None:
            break
        for child, g_child in children:
            parents.setdefault(child, state)
            heapq.heappush(
                frontier, (g_child + heuristic(child), -len(child), next(tie), child, g_child)
            )
    # Out of evaluations: successors already measured wait on the frontier. A K-set among
    # them is a measured answer (the cheapest one is taken); else the deepest, cheapest state
    # measured, popped or not, is finished along an order.
    waiting = [(g, -len(s), f, s) for f, _, _, s, g in frontier if s not in closed]
    goals = [entry for entry in waiting if -entry[1] == k]
    if goals:
        g, _, _, state = min(goals, key=lambda e: (e[0], sorted(e[3])))
        return SearchResult(state, g, counter.used, True, parents)
    for g, neg_depth, f, state in waiting:
        if best_partial is None or (neg_depth, f) < (-best_partial[1], best_partial[0]):
            best_partial = (f, -neg_depth, state, g)
    if math.isinf(budget) and best_partial is not None:
        partial = best_partial[2]
        rest = completion_order() if completion_order is not None else order
        state = partial | frozenset(within_capacity(rest, capacity, partial)[: k - len(partial)])
        counter.seen.add(state)
        parents.setdefault(state, partial)
        drop = max(0.0, drop_of([state])[0])
        return SearchResult(state, drop, counter.used, True, parents, k - len(partial))
    return SearchResult(None, math.inf, counter.used, bool(frontier), parents)


def search_max_heads(
    a0: float,
    delta_plus: dict,
    drop_of,
    budget: float,
    branching: int,
    counter: EvalCounter,
    max_k: int,
    capacity: Capacity = None,
) -> SearchResult:
    """Grow K while a feasible K-set exists; return the largest one found."""
    best = SearchResult(frozenset(), 0.0, 0)
    parents: dict[State, State] = {}
    for k in range(1, max_k + 1):
        result = search_fixed_k(
            k, a0, delta_plus, drop_of, budget, branching, counter, capacity=capacity
        )
        parents = result.parents | parents  # the first parent found stays
        if result.state is None:
            best.capped = result.capped
            break
        best = result
    best.parents = parents
    best.evaluations = counter.used
    return best


def longest_feasible_prefix(
    order: Sequence, drop_of, budget: float, counter: EvalCounter, max_k: int
) -> list[tuple[State, float]]:
    """Bisect the prefixes of ``order`` for the longest within ``budget`` (a longer prefix is
    taken to fail when a shorter one does: the usual case, not a law); the feasible prefixes
    measured on the way, with their g, shortest first. Stops early when the cap refuses."""
    low, high = 1, min(max_k, len(order))
    feasible: list[tuple[State, float]] = []
    while low <= high:
        middle = (low + high) // 2
        state = frozenset(order[:middle])
        if not counter.admit([state]):
            break
        (drop,) = drop_of([state])
        if max(0.0, drop) <= budget:
            feasible.append((state, max(0.0, drop)))
            low = middle + 1
        else:
            high = middle - 1
    return sorted(feasible, key=lambda c: len(c[0]))


def search_deepest(
    delta_plus: dict,
    drop_of,
    budget: float,
    branching: int,
    counter: EvalCounter,
    max_k: int,
    successors_per_step: int | None = None,
    starts: Sequence[tuple[State, float]] = (),
    capacity: Capacity = None,
) -> SearchResult:
    """Best-first on (more heads removed, smaller drop) over feasible states; the largest wins.

    ``successors_per_step`` k measures a popped state's next k successors (of its
    ``branching``) and puts the state back for the rest, so diving costs about k evaluations a
    level; None measures all ``branching`` at once. ``starts`` are measured feasible states
    (with their g) that join the empty set on the frontier: the deepest is expanded first.
    """
    order = _head_order(delta_plus)
    step = successors_per_step or branching
    tie = itertools.count()
    start: State = frozenset()
    frontier = [(0, 0.0, next(tie), start, 0)]
    measured: set[State] = {start}
    parents: dict[State, State] = {}
    best: tuple[State, float] = (start, 0.0)
    for state, g in starts:
        measured.add(state)
        heapq.heappush(frontier, (-len(state), g, next(tie), state, 0))
    capped = False
    while frontier:
        depth, g, _, state, tried = heapq.heappop(frontier)
        if (len(state), -g) > (len(best[0]), -best[1]):
            best = (state, g)
        if len(state) >= max_k:
            continue
        successors = [state | {h} for h in _open_heads(state, order, capacity)][:branching]
        if tried + step < len(successors):  # the rest of this state's successors come later
            heapq.heappush(frontier, (depth, g, next(tie), state, tried + step))
        children = [c for c in successors[tried : tried + step] if c not in measured]
        if not children:
            continue
        if not counter.admit(children):
            capped = True
            break
        measured.update(children)
        drops = drop_of(children)
        for child, drop in zip(children, drops, strict=True):
            g_child = max(0.0, drop)
            if g_child <= budget:
                parents[child] = state
                heapq.heappush(frontier, (-len(child), g_child, next(tie), child, 0))
    return SearchResult(best[0], best[1], counter.used, capped, parents)


def path_to(state: State, parents: dict[State, State]) -> list[State]:
    """The nested states the search went through to reach ``state``, shortest first: from
    the first one without a parent (a successor of the full model, or a start) to ``state``."""
    path = []
    while state:
        path.append(state)
        state = parents.get(state, frozenset())
    return path[::-1]


def certify_in_sequence(
    metric_of,
    chain: Sequence[State],
    budget: float,
    upper_bound_of: Callable[[State], float] | None = None,
) -> dict[str, Any]:
    """The longest passing prefix of ``chain`` by fixed-sequence testing.

    States are tested in the given order (nested, shortest first) and testing stops at the
    first that fails; the last that passed is returned (nothing removed when the first fails).
    A state passes when its drop under ``metric_of``, or ``upper_bound_of(state)`` (a
    one-sided confidence bound) when given, stays within ``budget``. Because the order is fixed
    before any state is tested on these examples, the bound's confidence holds for the returned
    state jointly over all the states tested, with no correction for their number (the
    fixed-sequence procedure): unlike picking the best of many tested states, which favours
    the one that the examples' noise flattered.
    """
    a0_full = metric_of(frozenset())
    chosen, drop, tried = frozenset(), 0.0, 0
    for state in chain:
        tried += 1
        state_drop = max(0.0, a0_full - metric_of(state))
        bound = state_drop if upper_bound_of is None else upper_bound_of(state)
        if bound > budget:
            break
        chosen, drop = state, state_drop
    return {
        "state": chosen,
        "a0": a0_full,
        "drop": drop,
        "backed_off": bool(chain) and chosen != chain[-1],
        "states_tried": tried,
    }

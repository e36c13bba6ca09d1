"""A*'s searches over head sets, on an abstract ``drop_of(states)``: no model, no data.

`prunekit.methods.astar` measures drops through `GatedEvaluator` and calls these; tests call
them on synthetic metrics. See that module's docstring for the algorithm and its choices.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prunekit.scoring.evaluator import State

__all__ = [
    "MAX_BACK_OFF",
    "SearchResult",
    "EvalCounter",
    "search_fixed_k",
    "search_max_heads",
    "search_deepest",
    "longest_feasible_prefix",
    "verify_or_back_off",
]

MAX_BACK_OFF = 16


@dataclass
class SearchResult:
    state: State | None
    drop: float
    evaluations: int
    capped: bool = False
    feasible: list[tuple[State, float]] = field(default_factory=list)


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


def _feasible_children(
    state: State, order: list, branching: int, closed: set, counter: EvalCounter, drop_of, budget
) -> list[tuple[State, float]] | None:
    """Measure the successors of ``state`` and keep those within budget, with their g.

    Successors add one of the ``branching`` lowest-d+ heads not yet removed; closed states are
    skipped. None when the evaluation cap refuses them.
    """
    children = [state | {h} for h in order if h not in state][:branching]
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
) -> SearchResult:
    """A* for the K-set with the least measured drop (``drop_of(states) -> list[float]``)."""
    order = _head_order(delta_plus)

    def heuristic(state: State) -> float:
        remaining = k - len(state)
        return sum(itertools.islice((delta_plus[h] for h in order if h not in state), remaining))

    tie = itertools.count()
    start: State = frozenset()
    frontier = [(heuristic(start), -0, next(tie), start, 0.0)]
    closed: set[State] = set()
    feasible: list[tuple[State, float]] = []
    best_partial: tuple[float, int, State, float] | None = None
    while frontier:
        f, _, _, state, g = heapq.heappop(frontier)
        if state in closed:
            continue
        closed.add(state)
        if len(state) == k:
            return SearchResult(state, g, counter.used, feasible=feasible)
        if best_partial is None or (-len(state), f) < (-best_partial[1], best_partial[0]):
            best_partial = (f, len(state), state, g)
        children = _feasible_children(state, order, branching, closed, counter, drop_of, budget)
        if children is None:
            break
        feasible += children
        for child, g_child in children:
            heapq.heappush(
                frontier, (g_child + heuristic(child), -len(child), next(tie), child, g_child)
            )
    if math.isinf(budget) and best_partial is not None:
        # Out of evaluations: finish the deepest, cheapest partial set greedily by d+.
        state = best_partial[2]
        state = state | frozenset([h for h in order if h not in state][: k - len(state)])
        counter.seen.add(state)
        return SearchResult(
            state, max(0.0, drop_of([state])[0]), counter.used, capped=True, feasible=feasible
        )
    return SearchResult(None, math.inf, counter.used, capped=bool(frontier), feasible=feasible)


def search_max_heads(
    a0: float,
    delta_plus: dict,
    drop_of,
    budget: float,
    branching: int,
    counter: EvalCounter,
    max_k: int,
) -> SearchResult:
    """Grow K while a feasible K-set exists; return the largest one found."""
    best = SearchResult(frozenset(), 0.0, 0)
    feasible: list[tuple[State, float]] = []
    for k in range(1, max_k + 1):
        result = search_fixed_k(k, a0, delta_plus, drop_of, budget, branching, counter)
        feasible += result.feasible
        if result.state is None:
            best.capped = result.capped
            break
        best = result
    best.feasible = feasible
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
    feasible: list[tuple[State, float]] = list(starts)
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
        successors = [state | {h} for h in order if h not in state][:branching]
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
                feasible.append((child, g_child))
                heapq.heappush(frontier, (-len(child), g_child, next(tie), child, 0))
    return SearchResult(best[0], best[1], counter.used, capped=capped, feasible=feasible)


def verify_or_back_off(
    metric_of,
    removed: State,
    result: SearchResult,
    budget: float,
    upper_bound_of: Callable[[State], float] | None = None,
    per_size: int = 1,
    chain: Sequence[State] = (),
) -> dict[str, Any]:
    """Re-check ``removed`` with ``metric_of``; else back off to the largest passing state.

    A state passes when its drop, or ``upper_bound_of(state)`` (a certificate's confidence
    bound) when given, stays within ``budget``.

    Candidates are the feasible states the search measured, the ``per_size`` least-drop ones of
    each size up to ``len(removed)`` (a size passes when one of them does: the state that
    scored best on the searched examples is not always the one that holds up on others). Their
    sizes are bisected, taking a failure to mean that larger sets fail too (the usual case, not
    a law): about log2(sizes) rounds find the largest passing size, trying at most
    ``MAX_BACK_OFF * per_size`` states in all. If none passes, nothing is removed.

    ``chain``: nested states, shortest first, each taken to be feasible (A*'s HISP-order
    prefixes up to the longest within budget on the search part). When the search's own set
    does not pass, the longest passing state of the chain longer than the back-off's choice is
    bisected for too (about log2(len(chain)) more states) and wins when found.
    """
    a0_full = metric_of(frozenset())
    tried = 0
    limit = MAX_BACK_OFF * per_size

    def drop_if_passing(state: State) -> float | None:
        nonlocal tried
        tried += 1
        drop = max(0.0, a0_full - metric_of(state))
        bound = drop if upper_bound_of is None else upper_bound_of(state)
        return drop if bound <= budget else None

    chosen, drop = removed, drop_if_passing(removed)
    if drop is None:
        of_size: dict[int, list[tuple[float, State]]] = {}
        for state, g in result.feasible:
            if state != removed and len(state) <= len(removed):
                of_size.setdefault(len(state), []).append((g, state))
        best = {
            size: list(
                dict.fromkeys(s for _, s in sorted(states, key=lambda c: (c[0], sorted(c[1]))))
            )[:per_size]
            for size, states in of_size.items()
        }
        sizes = sorted(best)
        chosen, low, high = frozenset(), 0, len(sizes) - 1
        while low <= high and tried <= limit:
            middle = (low + high) // 2
            passing = None
            for candidate in best[sizes[middle]]:
                if (candidate_drop := drop_if_passing(candidate)) is not None:
                    passing = candidate, candidate_drop
                    break
            if passing is None:
                high = middle - 1
            else:
                (chosen, drop), low = passing, middle + 1
        longer = [state for state in chain if len(state) > len(chosen) and state != removed]
        low, high = 0, len(longer) - 1
        while low <= high:  # the chain's longest passing state, beyond the back-off's choice
            middle = (low + high) // 2
            if (candidate_drop := drop_if_passing(longer[middle])) is None:
                high = middle - 1
            else:
                (chosen, drop), low = (longer[middle], candidate_drop), middle + 1
    return {
        "state": chosen,
        "a0": a0_full,
        "drop": 0.0 if drop is None else drop,
        "backed_off": chosen != removed,
        "states_tried": tried,
    }

"""A* search head pruning with an accuracy certificate (Parnami, Singh, Joshi, arXiv 2110.15225).

The paper's text was not available; this is the reconstruction of methods.md §2(b) (OUR CHOICE,
every choice configurable):

- a0 = metric of the fine-tuned model on the search split (the validation split carved from
  train, optionally subsampled); never dev. Single-head ablation drops ``d_h = a0 - metric
  without h``, clipped ``d+_h = max(d_h, 0)``.
- A state is the set P of removed heads. Successors add one of the ``branching`` heads not in P
  with the smallest ``d+``. ``g(P) = max(0, a0 - metric(P))`` is measured; a state with
  ``g > budget`` is discarded and never expanded, which is the guarantee on the search split.
- Fixed-K mode: goal ``|P| = K``, heuristic ``h(P)`` = sum of the ``K - |P|`` smallest ``d+``
  outside P (admissible when removals interact super-additively); the first goal popped is the
  K-set with the least measured drop. Ties prefer deeper states.
- Budget mode (``keep`` not given) looks for the largest feasible set. Default
  (``budget_search="deepest"``): one best-first search over feasible states ordered by more
  heads removed, then smaller drop; it dives to the budget's frontier and spends the remaining
  evaluations on alternatives there. ``budget_search="per-k"`` instead runs the fixed-K A* for
  K = 1, 2, ... while a feasible K-set exists (evaluations shared across K). Per-K A* must pop
  every state with a smaller drop before it can accept a K-set, and when removing heads leaves
  the metric flat or higher (MiniLM on STS-B: 17 heads at no loss) those states are
  exponentially many: in benchmarks/astar.py all four budgets stopped at the same capped set.
  Both return the largest feasible set when the evaluations are not capped.
- ``max_evals`` caps state evaluations. When it runs out in fixed-K mode (where the budget is
  infinite), the best partial state is completed greedily by ``d+`` (flagged in the result).
- With ``verify_batches`` the final set is re-checked on the full search split; if it fails,
  the search backs off to the largest verified feasible state found (sizes bisected).

Evaluations go through `GatedEvaluator` (gates, prefix-activation cache, stacked states).
Settings are the fields of `Config`. ``memo_dir`` (or, without it, the caller's shared
``cache_dir``) persists measured metrics keyed by a fingerprint of model and split, so a killed
search resumes and searches at other budgets reuse them; the search and its result are the same
with or without it.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from prunekit.errors import ConfigError
from prunekit.methods.registry import MethodConfig, MethodResult, PruneRequest, register_method
from prunekit.scoring.evaluator import GatedEvaluator, State

__all__ = [
    "Config",
    "prune_astar",
    "SearchResult",
    "search_fixed_k",
    "search_max_heads",
    "search_deepest",
    "verify_or_back_off",
]


class Config(MethodConfig):
    budget: float | None = Field(
        None,
        ge=0,
        description="allowed drop of the primary metric in points on the search split "
        "(default 0 in budget mode, unbounded with a head target)",
    )
    branching: int = Field(16, ge=1, description="successors per state (lowest-ablation heads)")
    max_evals: int = Field(2000, ge=1, description="cap on distinct head sets evaluated")
    states_per_forward: int = Field(4, ge=1, description="head sets stacked in one forward")
    cache_mb: int = Field(4096, ge=0, description="prefix-activation cache size (MiB)")
    memo_dir: str | None = Field(None, description="persist measured states here (resumable)")
    budget_search: Literal["deepest", "per-k"] = Field(
        "deepest", description="budget mode: deepest-first best-first, or fixed-K A* per K"
    )


MAX_BACK_OFF = 16
ABLATION_CHUNK = 8


@dataclass
class SearchResult:
    state: State | None
    drop: float
    evaluations: int
    capped: bool = False
    feasible: list[tuple[State, float]] = field(default_factory=list)


class _Counter:
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
    state: State, order: list, branching: int, closed: set, counter: _Counter, drop_of, budget
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
    counter: _Counter,
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
    counter: _Counter,
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


def search_deepest(
    delta_plus: dict,
    drop_of,
    budget: float,
    branching: int,
    counter: _Counter,
    max_k: int,
) -> SearchResult:
    """Best-first on (more heads removed, smaller drop) over feasible states; the largest wins."""
    order = _head_order(delta_plus)
    tie = itertools.count()
    start: State = frozenset()
    frontier = [(0, 0.0, next(tie), start)]
    closed: set[State] = set()
    feasible: list[tuple[State, float]] = []
    best: tuple[State, float] = (start, 0.0)
    capped = False
    while frontier:
        _, g, _, state = heapq.heappop(frontier)
        if state in closed:
            continue
        closed.add(state)
        if (len(state), -g) > (len(best[0]), -best[1]):
            best = (state, g)
        if len(state) >= max_k:
            continue
        children = _feasible_children(state, order, branching, closed, counter, drop_of, budget)
        if children is None:
            capped = True
            break
        feasible += children
        for child, g_child in children:
            heapq.heappush(frontier, (-len(child), g_child, next(tie), child))
    return SearchResult(best[0], best[1], counter.used, capped=capped, feasible=feasible)


@register_method(
    "astar",
    config=Config,
    summary="A* search for the largest head set within --budget points, with a certificate",
    per_layer=False,
    decides_count=True,
)
def prune_astar(request: PruneRequest, config: Config) -> MethodResult:
    if request.batches is None or request.task is None:
        raise ConfigError("astar needs the task and labelled validation (search) batches")
    # Budgets and fixed-K points on one model search the same states: without a memo_dir of
    # its own, the search keeps its memo in the caller's shared cache (compare's run dir).
    memo_dir = config.memo_dir
    if memo_dir is None and request.cache_dir is not None:
        memo_dir = str(request.cache_dir)
    # A head target selects fixed-K mode; "keep everything" asks for the most heads under budget.
    fixed_k = request.target.keep < request.plan.heads_kept
    started = time.perf_counter()
    plan = request.plan
    evaluator = GatedEvaluator(
        request.model,
        request.batches(),
        request.task,
        cache_bytes=config.cache_mb << 20,
        states_per_forward=config.states_per_forward,
        memo_dir=memo_dir,
    )
    a0 = evaluator.metric(frozenset())
    heads = [(layer, h) for layer, kept in enumerate(plan.kept_heads) for h in kept]
    ablation: list[float] = []
    for i in range(0, len(heads), ABLATION_CHUNK):  # chunks: progress, and memo lines as we go
        ablation += evaluator.metrics([frozenset([h]) for h in heads[i : i + ABLATION_CHUNK]])
        request.progress(step=len(ablation), steps=len(heads), note="single-head ablations")
    delta = {h: a0 - m for h, m in zip(heads, ablation, strict=True)}
    delta_plus = {h: max(d, 0.0) for h, d in delta.items()}

    counter = _Counter(config.max_evals)
    budget = config.budget
    if fixed_k:
        budget = math.inf if budget is None else float(budget)
    else:
        budget = 0.0 if budget is None else float(budget)
    largest = 0

    def drop_of(states):
        nonlocal largest
        drops = [a0 - m for m in evaluator.metrics(states)]
        largest = max(
            [largest] + [len(s) for s, d in zip(states, drops, strict=True) if d <= budget]
        )
        request.progress(
            step=counter.used,
            steps=counter.limit,
            note=f"largest set within budget: {largest} heads",
        )
        return drops

    if fixed_k:
        k = plan.heads_kept - request.target.keep
        result = search_fixed_k(k, a0, delta_plus, drop_of, budget, config.branching, counter)
    elif config.budget_search == "deepest":
        result = search_deepest(
            delta_plus, drop_of, budget, config.branching, counter, plan.heads_kept - 1
        )
    else:
        result = search_max_heads(
            a0, delta_plus, drop_of, budget, config.branching, counter, plan.heads_kept - 1
        )
    if result.state is None:
        raise ConfigError(
            f"astar found no set of {plan.heads_kept - request.target.keep} heads within a drop "
            f"of {budget} on the search split ({counter.used} evaluations); raise --budget or "
            "max_evals"
        )
    removed, drop, reference = result.state, result.drop, a0
    verified = None
    if request.full_batches is not None:
        removed, drop, verified = _verify(
            request, request.full_batches, removed, result, budget, memo_dir
        )
        reference = verified["a0"]  # the certificate speaks for the whole search split
    kept = [
        tuple(h for h in layer_heads if (layer, h) not in removed)
        for layer, layer_heads in enumerate(plan.kept_heads)
    ]
    certificate: dict[str, Any] = {
        "a0": reference,
        "metric": evaluator.metric_name,
        "budget": budget,
        "final_metric": reference - drop,
        "final_drop": drop,
        "heads_removed": len(removed),
        # Distinct states measured, whether by a forward now or read from the memo.
        "evaluations": evaluator.stats.states + evaluator.stats.memo_hits,
        "evaluations_from_memo": evaluator.stats.memo_hits,
        "search_states": counter.used,
        "capped": result.capped,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "mode": "fixed-k" if fixed_k else "max-heads-under-budget",
        "budget_search": None if fixed_k else config.budget_search,
        "search_examples": len(evaluator.labels),
        "search_a0": a0,
        "search_drop": result.drop,
        "verified": verified,
        "single_head_drops": {f"{li}.{h}": d for (li, h), d in sorted(delta.items())},
        "cache": {
            "layer_forwards": evaluator.stats.layer_forwards,
            "layer_forwards_saved": evaluator.stats.layer_forwards_saved,
            "saved_fraction": evaluator.stats.saved_fraction,
            "forwards": evaluator.stats.forwards,
        },
    }
    chosen = plan.model_copy(
        update={"kept_heads": tuple(kept), "method": "astar", "meta": {"certificate": certificate}}
    )
    return MethodResult(chosen, record={"certificate": certificate})


def _verify(
    request: PruneRequest,
    batches,
    removed: State,
    result: SearchResult,
    budget: float,
    memo_dir=None,
) -> tuple[State, float, dict]:
    full = GatedEvaluator(request.model, batches(), request.task, cache_bytes=0, memo_dir=memo_dir)
    info = verify_or_back_off(full.metric, removed, result, budget)
    info["examples"] = len(full.labels)
    return info.pop("state"), info["drop"], info


def verify_or_back_off(
    metric_of, removed: State, result: SearchResult, budget: float
) -> dict[str, Any]:
    """Re-check ``removed`` with ``metric_of``; else back off to the largest passing state.

    Candidates are the feasible states the search measured, the least-drop one of each size up
    to ``len(removed)``. Their sizes are bisected, taking a failure to mean that larger sets
    fail too (the usual case, not a law): about log2(sizes) passes over the full split find the
    largest passing size, at most ``MAX_BACK_OFF`` in all. If none passes, nothing is removed.
    """
    a0_full = metric_of(frozenset())
    tried = 0

    def drop_if_passing(state: State) -> float | None:
        nonlocal tried
        tried += 1
        drop = max(0.0, a0_full - metric_of(state))
        return drop if drop <= budget else None

    chosen, drop = removed, drop_if_passing(removed)
    if drop is None:
        best_of_size: dict[int, tuple[State, float]] = {}
        for state, g in result.feasible:
            size = len(state)
            if state == removed or size > len(removed):
                continue
            if size not in best_of_size or g < best_of_size[size][1]:
                best_of_size[size] = (state, g)
        sizes = sorted(best_of_size)
        chosen, low, high = frozenset(), 0, len(sizes) - 1
        while low <= high and tried <= MAX_BACK_OFF:
            middle = (low + high) // 2
            candidate = best_of_size[sizes[middle]][0]
            candidate_drop = drop_if_passing(candidate)
            if candidate_drop is None:
                high = middle - 1
            else:
                chosen, drop, low = candidate, candidate_drop, middle + 1
    return {
        "state": chosen,
        "a0": a0_full,
        "drop": 0.0 if drop is None else drop,
        "backed_off": chosen != removed,
        "states_tried": tried,
    }

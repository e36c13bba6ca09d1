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
- ``--at-least-heads-per-layer m`` (the target's ``min_per_layer``) is a constraint on the
  states, in both modes: a successor may remove a head only from a layer that keeps more than
  m heads, and HISP's order (start and completion) skips heads a full layer cannot lose. The
  heuristic ignores it, so it stays admissible. (Before 0.2 the floor was silently ignored.)
- ``max_evals`` caps state evaluations. When it runs out in fixed-K mode, the cheapest K-set
  already measured (a successor not yet popped) is returned; without one (and where the budget
  is infinite) the deepest, cheapest measured state is completed along an order, and the
  certificate says how many heads that added (``completed_heads``). OUR CHOICE
  (``complete="hisp"``): HISP's layer-normalised gradient order, computed only then (one
  backward pass over the search part). ``complete="ablation"`` completes by ``d+``, as
  before: single-head ablations cannot see redundancy, and on STS-B (200 states, K = 50) it
  removed all 12 heads of the last layer, each free alone, and lost 26 points (dev 60.4, HISP
  83.6); at K = 65, 76 points.
- Successors are generated lazily in budget mode (``successors_per_step``, default 4): a
  popped state measures its next few successors, not all ``branching`` at once, and goes back
  to the frontier for the rest. A dive then costs a few evaluations per level instead of
  ``branching``, which lifts the depth ceiling of ``max_evals / branching`` (25 heads at 200
  states and branching 8) while the order of the search stays the same.
- Start (OUR CHOICE, ``start="hisp"``, deepest budget search): before the search, heads are
  ordered by HISP's gradient importance (Michel et al., layer-normalised) on the search part,
  and the longest prefix of that order within budget is bisected for (about log2(heads)
  evaluations, taking a longer prefix to fail when a shorter one does). The feasible prefixes
  join the empty set on the frontier, so the search dives on from the longest, by ``d+``,
  and the certificate's chain (below) runs through HISP's prefixes first. The cost is one
  backward pass over the search part. Without it, a dive led by single-head ablations alone
  stopped short of HISP's count (MRPC, STS-B in benchmarks/astar.py). ``start="empty"`` is
  the paper's search from the full model.
- Certificate on unseen data (the request's ``certify_batches``: `decide` splits the carved
  validation split into disjoint, seeded search and certify halves, because a set chosen for
  scoring well on its examples overfits them). The final set is certified when the one-sided
  ``confidence`` (95%) paired-bootstrap upper bound of its drop on the certify part (its
  pool holding ``harm_examples`` harmful pseudo-example, so that a part in which no prediction
  changed does not certify a zero drop: `prunekit.scoring.certify`) stays
  within the budget. The states tested form one chain fixed by the search part alone: the
  path of nested states the search took to its set (when it started from HISP's prefix,
  HISP's shorter prefixes first), shortest first. They are tested in that order and testing
  stops at the first failure (fixed-sequence testing), so the 95% holds for the returned set
  jointly over every state tested. Picking the largest passing state among many (the earlier
  back-off by bisection, several states per size) let the certify half's noise choose, and
  certified sets broke their budget on dev at 3 of 16 benchmark points. Without a certify
  part (a request built by hand) the certificate is the search part's own.

Evaluations go through `GatedEvaluator` (gates, prefix-activation cache, stacked states).
Settings are the fields of `Config`. ``memo_dir`` (or, without it, the caller's shared
``cache_dir``) persists measured metrics keyed by a fingerprint of model and split, so a killed
search resumes and searches at other budgets reuse them; the search and its result are the same
with or without it, up to the float-precision differences between stacked and single forwards
that `GatedEvaluator` describes (a memo replays what one grouping measured).
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from prunekit.errors import ConfigError
from prunekit.methods.astar_search import (
    EvalCounter,
    SearchResult,
    certify_in_sequence,
    longest_feasible_prefix,
    path_to,
    search_deepest,
    search_fixed_k,
    search_max_heads,
    within_capacity,
)
from prunekit.methods.config import CountMode
from prunekit.methods.hisp import head_order
from prunekit.methods.registry import MethodConfig, MethodResult, PruneRequest, register_method
from prunekit.scoring.certify import bootstrap_drop_bound
from prunekit.scoring.evaluator import GatedEvaluator, State

__all__ = ["Config", "prune_astar"]


class Config(MethodConfig):
    read_only_in_mode: ClassVar[dict[str, CountMode]] = {
        "budget": "budget",  # with a head count: refused (it would certify fewer heads)
        "budget_search": "budget",
        "successors_per_step": "budget",
        "start": "budget",
        "complete": "count",
    }

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
    successors_per_step: int | None = Field(
        4, ge=1, description="budget mode: successors measured per pop (None: all at once)"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="certificate's one-sided level")
    bootstrap_samples: int = Field(1000, ge=100, description="resamples for the bound")
    start: Literal["hisp", "empty"] = Field(
        "hisp",
        description="deepest budget search: also start from the longest HISP-order prefix "
        "within budget (OUR CHOICE), or only from the full model (the paper's)",
    )
    complete: Literal["hisp", "ablation"] = Field(
        "hisp",
        description="fixed-K mode, out of evaluations: complete the partial set in HISP's "
        "gradient order (OUR CHOICE) or by single-head ablation drops",
    )
    harm_examples: int = Field(
        1,
        ge=0,
        description="harmful pseudo-examples in the bootstrap pool (classification): a certify "
        "part with no changed prediction still bounds the drop (about the rule of three)",
    )


ABLATION_CHUNK = 8


@register_method(
    "astar",
    config=Config,
    summary="A* search for the largest head set within --budget points, with a certificate",
    per_layer=False,
    decides_count=True,
    certifies=True,
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

    # --at-least-heads-per-layer: each layer may lose all but that many of the heads it has
    floor = request.target.min_per_layer
    capacity = (
        {layer: max(0, len(kept) - floor) for layer, kept in enumerate(plan.kept_heads)}
        if floor
        else None
    )
    max_k = (
        plan.heads_kept - 1
        if capacity is None
        else min(plan.heads_kept - 1, sum(capacity.values()))
    )
    counter = EvalCounter(config.max_evals)
    budget = config.budget
    if fixed_k:
        budget = math.inf if budget is None else float(budget)
    else:
        budget = 0.0 if budget is None else float(budget)
    largest = 0
    starts: list[tuple[State, float]] = []
    hisp_order: list[tuple[int, int]] = []

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

        def hisp_order() -> list[tuple[int, int]]:  # one backward pass, only when capped
            return head_order(request.model, request.batches(), plan)

        completion = hisp_order if config.complete == "hisp" else None
        result = search_fixed_k(
            k, a0, delta_plus, drop_of, budget, config.branching, counter, completion, capacity
        )
    elif config.budget_search == "deepest":
        if config.start == "hisp":
            request.progress(step=counter.used, steps=counter.limit, note="HISP order prefixes")
            hisp_order = within_capacity(
                head_order(request.model, request.batches(), plan), capacity
            )
            starts = longest_feasible_prefix(hisp_order, drop_of, budget, counter, max_k)
        result = search_deepest(
            delta_plus,
            drop_of,
            budget,
            config.branching,
            counter,
            max_k,
            config.successors_per_step,
            starts,
            capacity,
        )
    else:
        result = search_max_heads(
            a0, delta_plus, drop_of, budget, config.branching, counter, max_k, capacity
        )
    if result.state is None:
        raise ConfigError(
            f"astar found no set of {plan.heads_kept - request.target.keep} heads within a drop "
            f"of {budget} on the search split ({counter.used} evaluations); raise --budget or "
            "max_evals"
        )
    verified = None
    # a head count without --budget has no bound to certify (budget inf: every set passes)
    certifies = request.certify_batches is not None and math.isfinite(budget)
    if certifies:
        # the search's path to its set; from a HISP prefix, the shorter prefixes before it
        chain = path_to(result.state, result.parents)
        if chain and chain[0] in {state for state, _ in starts}:
            chain = [frozenset(hisp_order[:k]) for k in range(1, len(chain[0]))] + chain
        removed, verified = _certify(request, chain, budget, config, memo_dir)
        reference, final_metric = verified["a0"], verified["metric"]  # the certify part's
    else:
        removed, reference = result.state, a0
        final_metric = evaluator.metric(removed)  # measured already: read from its memo
    certificate: dict[str, Any] = {
        "a0": reference,
        "metric": evaluator.metric_name,
        "budget": budget if math.isfinite(budget) else None,  # JSON has no Infinity
        "min_heads_per_layer": floor,
        # as measured: a set that raised the metric shows a negative drop (the search's own
        # drops, g in A*, are clipped at 0, and so was this one before)
        "final_metric": final_metric,
        "final_drop": reference - final_metric,
        "heads_removed": len(removed),
        # Distinct states measured, whether by a forward now or read from the memo.
        "evaluations": evaluator.stats.states + evaluator.stats.memo_hits,
        "evaluations_from_memo": evaluator.stats.memo_hits,
        "search_states": counter.used,
        "capped": result.capped,
        "completed_heads": result.completed_heads,
        "complete": config.complete if fixed_k else None,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "mode": "fixed-k" if fixed_k else "max-heads-under-budget",
        "budget_search": None if fixed_k else config.budget_search,
        "search_examples": len(evaluator.labels),
        "search_a0": a0,
        "search_drop": result.drop,
        "start": config.start if not fixed_k and config.budget_search == "deepest" else None,
        "start_heads": max((len(state) for state, _ in starts), default=0),
        # The search's own set, before certification: what a certificate measured on the
        # searched examples would have returned (benchmarks compare its dev drop).
        "search_removed": sorted([layer, head] for layer, head in result.state),
        "verified": verified,
        "certified": certifies,
        "certify_examples": verified["examples"] if verified else None,
        "upper_bound": verified.get("upper_bound") if verified else None,
        "confidence": config.confidence if certifies else None,
        "single_head_drops": {f"{li}.{h}": d for (li, h), d in sorted(delta.items())},
        "cache": {
            "layer_forwards": evaluator.stats.layer_forwards,
            "layer_forwards_saved": evaluator.stats.layer_forwards_saved,
            "saved_fraction": evaluator.stats.saved_fraction,
            "forwards": evaluator.stats.forwards,
        },
    }
    chosen = plan.without_heads(removed).model_copy(update={"meta": {"certificate": certificate}})
    return MethodResult(
        chosen,
        record={
            "certificate": certificate,
            "warnings": _warnings(result, config)
            + _certify_warnings(len(result.state), len(removed), verified, budget),
        },
    )


def _certify_warnings(searched: int, kept: int, verified: dict | None, budget: float) -> list[str]:
    """What the held-out certificate took back from the search's set, in one line: at a budget
    under the smallest certifiable drop (a few hundred examples cannot bound a drop of 0) it
    takes back everything, silently otherwise."""
    if verified is None or not verified["backed_off"]:
        return []
    floor = verified["smallest_certifiable"]
    if floor > budget:
        return [
            f"astar's search removed {searched} heads, but on {verified['examples']} held-out "
            f"examples a set that changes no prediction is certified only from {floor:.2f} "
            "points (the bound of an "
            f"unchanged model), so at a budget of {budget:g} the certificate removes {kept}: "
            f"raise --budget to {floor:.2f} or more, or give it more data"
        ]
    return [
        f"astar's search removed {searched} heads; {kept} of them hold the budget on the "
        f"{verified['examples']} held-out examples (certificate.json's verified)"
    ]


def _warnings(result: SearchResult, config: Config) -> list[str]:
    """What a capped search means for the set it returned, in one line."""
    if result.completed_heads:
        order = "HISP's gradient" if config.complete == "hisp" else "single-head ablation"
        return [
            f"astar measured its max_evals ({result.evaluations}) head sets before reaching "
            f"{len(result.state)} heads: {result.completed_heads} of them were added in "
            f"{order} order, not searched; raise --max-evals for a fuller search"
        ]
    if result.capped:
        return [
            f"astar stopped at its max_evals ({result.evaluations}) head sets: a larger "
            "--max-evals may find a larger or cheaper set within the budget"
        ]
    return []


def _certify(
    request: PruneRequest, chain: list[State], budget: float, config: Config, memo_dir=None
) -> tuple[State, dict]:
    """Certify on the held-out part: the longest state of ``chain`` (tested in order, up to
    the first failure) whose bootstrap upper bound on the drop stays within the budget."""
    held_out = GatedEvaluator(
        request.model, request.certify_batches(), request.task, cache_bytes=0, memo_dir=memo_dir
    )
    (reference,) = held_out.logits([frozenset()])
    bounds: dict[State, Any] = {}

    def bound_of(logits: Any) -> Any:
        return bootstrap_drop_bound(
            request.task,
            reference,
            logits,
            held_out.labels,
            config.bootstrap_samples,
            config.confidence,
            request.seed,
            config.harm_examples,
        )

    def upper_bound_of(state: State) -> float:
        (logits,) = held_out.logits([state])
        bounds[state] = bound_of(logits)
        return bounds[state].upper_bound

    info = certify_in_sequence(held_out.metric, chain, budget, upper_bound_of)
    info["examples"] = len(held_out.labels)
    # the bound of a model that changed no prediction: no smaller budget can pass here
    info["smallest_certifiable"] = bound_of(reference).upper_bound
    info["chain_states"] = len(chain)
    chosen = info.pop("state")
    info["metric"] = held_out.metric(chosen)  # measured in the sequence (or the reference)
    if chosen in bounds:
        info["upper_bound"] = bounds[chosen].upper_bound
    else:  # nothing certified: the empty set's bound is zero by construction
        info["upper_bound"] = 0.0
    return chosen, info

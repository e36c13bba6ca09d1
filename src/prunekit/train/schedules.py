"""Schedules as pure functions of the optimizer step, so a resumed run lands on the same values.

Nothing here wraps ``optimizer.step``: the loop turns a schedule into a ``LambdaLR`` factor, and
methods call their schedules (budget ramps, sparsity) with the step the loss function receives.
"""

from __future__ import annotations

import math

from prunekit.processes import process_count

__all__ = [
    "epoch_steps",
    "linear_warmup_decay",
    "constant",
    "linear_ramp",
    "stepped_ramp",
    "cubic_sparsity_events",
    "sparsity_at",
]


def epoch_steps(examples: int, batch_size: int) -> int:
    """Optimizer steps one epoch of ``examples`` takes in this process, as the loop counts them.

    Under `accelerate launch` with N processes each takes every N-th batch (the last round
    padded), so an epoch is ``ceil(batches / N)`` steps: a method that sizes its run in epochs
    and hands the loop a step count must divide too, or N processes train N times the epochs.
    """
    batches = -(-examples // batch_size)
    return -(-batches // process_count())


def linear_warmup_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total`` (BERT).

    The same formula as transformers' ``get_linear_schedule_with_warmup``, so fine-tuning runs
    reproduce the numbers of prunekit 0.1.
    """
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def constant(step: int) -> float:
    """Learning-rate factor 1 at every step (gates, multipliers, or ``lr_schedule="constant"``)."""
    return 1.0


def linear_ramp(step: int, start: float, end: float, ramp_steps: int) -> float:
    """``start`` at step 0, ``end`` from ``ramp_steps`` on, linear in between (L0's budget)."""
    return start + (end - start) * min(1.0, step / max(1, ramp_steps))


def stepped_ramp(step: int, ramp_steps: int, increments: int) -> float:
    """0 until the first of ``increments`` equal steps up, 1 from ``ramp_steps`` on:
    ``floor(increments * step / ramp_steps) / increments`` (peer distillation's gradual mask)."""
    if step >= ramp_steps:
        return 1.0
    return math.floor(increments * step / max(1, ramp_steps)) / increments


def cubic_sparsity_events(
    total_steps: int,
    events: int,
    final: float,
    initial_warmup: float = 0.0,
    final_warmup: float = 0.0,
) -> dict[int, float]:
    """Gradual pruning (Zhu & Gupta 2017, as SparseBERT's code runs it): E = min(events,
    ramp) mask updates over the ramp, the k-th at step ``t_i + ceil(k * ramp / E)`` aiming at
    ``final * (1 - (1 - k/E)^3)`` (for 1,000 steps and 100 events: steps 10, 20, ..., as the
    code's f = round(total/100)); OUR CHOICE: the last update, at the end of the ramp, reaches
    ``final`` exactly (the authors' last event falls just short of it). ``{step: sparsity}``.

    ``initial_warmup`` and ``final_warmup`` (shares of ``total_steps``, methods.md §5.4, the
    movement-pruning code's t_i and t_f) hold the model dense for the first steps and the
    final mask for the last ones, so the pruned model trains on before the run ends; the ramp
    is what lies between."""
    if initial_warmup < 0 or final_warmup < 0 or initial_warmup + final_warmup >= 1:
        raise ValueError(
            f"initial_warmup ({initial_warmup}) and final_warmup ({final_warmup}) must be "
            "non-negative shares of the run that leave steps to prune in"
        )
    start = int(initial_warmup * total_steps)
    end = total_steps - int(final_warmup * total_steps)
    ramp = max(1, end - start)
    count = max(1, min(events, ramp))
    schedule = {
        start + -(-k * ramp // count): final * (1.0 - (1.0 - k / count) ** 3)
        for k in range(1, count)
    }
    schedule[start + ramp] = final
    return schedule


def sparsity_at(events: dict[int, float], step: int) -> float:
    """The sparsity in force after ``step`` optimizer steps (0 before the first event)."""
    return max((s for t, s in events.items() if t <= step), default=0.0)

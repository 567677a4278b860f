"""Replay of a recorded feed through the guards, one oracle per underlying.

A file has no receive times, so each update is taken as received at its own timestamp, or at the
latest earlier one when it arrives out of order: the clock never goes back. A replay therefore
cannot see a future-dated update (the engine, with its own clock, does); everything else is
judged as live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from margin_engine.oracle.aggregator import OracleState, Outcome, PriceUpdate, apply_update
from margin_engine.oracle.params import OracleParams


@dataclass(frozen=True)
class ReplayStep:
    update: PriceUpdate
    now_s: int  # the clock it was applied at
    outcome: Outcome


def replay(
    updates: Iterable[PriceUpdate], params: OracleParams | Callable[[str], OracleParams]
) -> tuple[ReplayStep, ...]:
    """`params`: one set for every underlying, or a function of the underlying (a profile's)."""
    params_for = params if callable(params) else (lambda _u: params)
    states: dict[str, OracleState] = {}
    steps: list[ReplayStep] = []
    now_s = 0
    for update in updates:
        now_s = max(now_s, update.timestamp_s)
        state = states.get(update.underlying) or OracleState(update.underlying)
        states[update.underlying], outcome = apply_update(state, update, params_for(update.underlying), now_s)
        steps.append(ReplayStep(update, now_s, outcome))
    return tuple(steps)

"""Margin calls (profile `[margin_calls]`, Binance Portfolio Margin's levels on equity /
maintenance): after every command, each account whose level the command changed gets a
`margin_call` event (warn, reduce_only, liquidation, clear); while an account is at reduce_only or
below, trades that add to its risk are refused (`reduce_only`), reductions pass. The levels are
read for every account at once on the array book, after the command's own events."""

from __future__ import annotations

from margin_engine.engine.events import Event, MarginCalled
from margin_engine.engine.state import State, evolve
from margin_engine.engine.tx import reject
from margin_engine.errors import InputError
from margin_engine.margin.calculator import margin_totals
from margin_engine.margin.flat import flatten
from margin_engine.margin.profile import MarginCallParams

BLOCKING = ("reduce_only", "liquidation")  # levels at which risk-adding trades are refused


def level_of(equity_units: int, maintenance_units: int, params: MarginCallParams) -> tuple[str, float | None]:
    """The level and equity / maintenance; nothing required is always clear."""
    if maintenance_units <= 0:
        return "clear", None
    ratio = equity_units / maintenance_units
    if ratio <= 1:
        return "liquidation", ratio
    if ratio <= params.reduce_only_ratio:
        return "reduce_only", ratio
    return ("warn" if ratio <= params.warn_ratio else "clear"), ratio


def margin_calls(before: State, events: list[Event]) -> list[Event]:
    """The margin_call events the command's `events` bring (none without `[margin_calls]`)."""
    params = before.profile.margin_calls
    if params is None or not events:
        return []
    after = before.scratch()
    for event in events:
        evolve(after, event)
    ids = list(after.accounts)
    if not ids:
        return []
    totals = _totals(after, ids)
    out: list[Event] = []
    for i, account in enumerate(ids):
        if i not in totals:
            continue  # a market its collateral needs is not set yet: margined nowhere, called never
        level, ratio = level_of(*totals[i], params)
        if level != after.margin_levels.get(account, "clear"):
            out.append(MarginCalled(account, level, ratio, after.now_s or 0))
    return out


def _totals(state: State, ids: list[str]) -> dict[int, tuple[int, int]]:
    """(equity, maintenance) by position in `ids`; an account that cannot be margined is left out."""
    now, p = state.now_s or 0, state.profile
    try:
        t = margin_totals(flatten([state.view(a) for a in ids], p), state.markets, p, now)
        return {i: (int(t.equity[i]), int(t.maintenance_margin[i])) for i in range(len(ids))}
    except InputError:  # one account's market is missing: margin the others one by one
        out = {}
        for i, a in enumerate(ids):
            try:
                t = margin_totals(flatten([state.view(a)], p), state.markets, p, now)
            except InputError:
                continue
            out[i] = (int(t.equity[0]), int(t.maintenance_margin[0]))
        return out


def check_reduce_only(state: State, accounts: list[str]) -> None:
    """A risk-adding side at the reduce_only level or below is refused."""
    for account in accounts:
        level = state.margin_levels.get(account)
        if level in BLOCKING:
            raise reject(
                "reduce_only",
                f"{account} is at the {level} margin-call level: it may only reduce its positions "
                "until equity / maintenance is back above margin_calls.reduce_only_ratio",
                account=account,
            )

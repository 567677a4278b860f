"""Funding: paid at a rate (an admin's `apply_funding`) or computed by the engine from the perp's
premium at every funding time the clock crosses (profile `[funding]`, each venue's published rule
in `perp.funding`).

The premium (mark - index) / index is constant between commands, so evolve integrates it as the
clock moves (`State.premiums`); at a funding time the window's time-weighted mean goes through the
venue's rule, a `funding_computed` event restarts the window and `pay_funding` moves the money.
When one advance_time crosses several funding times, the first pays the window's mean and each
later one the premium as it stands (it cannot change within one command), in one payment.
"""

from __future__ import annotations

from decimal import Decimal

from margin_engine.engine.events import FundingApplied, FundingComputed
from margin_engine.engine.state import premium_now
from margin_engine.engine.tx import Tx
from margin_engine.errors import InvariantViolation
from margin_engine.ledger.ledger import FEES, SETTLEMENT, allocation_key, user_key
from margin_engine.ledger.units import decimal_to_units_ceil, decimal_to_units_floor
from margin_engine.margin.profile import Profile
from margin_engine.perp.funding import drift_rate_hourly, dydx_rate_hourly, hyperliquid_rate_hourly

FUNDING_INTERVAL_S = 3600  # dYdX v4, Hyperliquid and Drift all pay every hour


def period_rate(profile: Profile, underlying: str, premium: float) -> float:
    """One funding period's rate under the profile's rule, at this mean premium."""
    params = profile.funding
    if params is None:
        raise InvariantViolation("a funding rate asked of a profile without [funding]")
    if params.rule == "dydx":
        perp = profile.underlyings[underlying].perp
        return dydx_rate_hourly([premium], perp.im_ratio, perp.mm_ratio)
    if params.rule == "hyperliquid":
        return hyperliquid_rate_hourly([premium])
    return drift_rate_hourly(1.0 + premium, 1.0, params.drift_contract_tier)  # TWAPs as ratios of the oracle's


def computed_funding(tx: Tx, before_s: int | None, now_s: int) -> None:
    """The funding times crossed from `before_s` to `now_s`, per perp with a market."""
    state = tx.scratch
    if state.profile.funding is None or before_s is None:
        return
    first = (before_s // FUNDING_INTERVAL_S + 1) * FUNDING_INTERVAL_S
    if first > now_s:
        return
    last = now_s // FUNDING_INTERVAL_S * FUNDING_INTERVAL_S
    periods = (last - first) // FUNDING_INTERVAL_S + 1
    for u in state.profile.underlyings:
        if u not in state.markets:
            continue
        name = f"{u}-PERP"
        p = premium_now(state, u)
        integral, since, as_of = state.premiums.get(name, (0.0, before_s, before_s))
        span = first - since
        mean = (integral + p * (first - as_of)) / span if span > 0 else p
        rate = period_rate(state.profile, u, mean) + (periods - 1) * period_rate(state.profile, u, p)
        tx.emit(FundingComputed(name, state.profile.funding.rule, mean, periods, Decimal(repr(rate)), last))
        if rate:
            pay_funding(tx, name, u, Decimal(repr(rate)))


def pay_funding(tx: Tx, name: str, underlying: str, rate: Decimal) -> None:
    """Payers pay rounded up, receivers get rounded down; the dust goes to the fee pool."""
    state = tx.scratch
    market = state.markets[underlying]
    settle, d = state.profile.settlement_asset, state.profile.settlement_decimals
    index = Decimal(repr(market.index))
    tx.emit(FundingApplied(name, rate, repr(market.index)))
    dust = 0
    for account in state.holders.get(name, {}):
        size = state.accounts[account].positions[name].size
        owed = size * index * rate  # > 0: this account pays
        isolated = state.accounts[account].mode == "isolated"
        key = allocation_key(account, name) if isolated else user_key(account)
        if owed > 0:
            paid = decimal_to_units_ceil(owed, d)
            tx.transfer(key, SETTLEMENT, settle, paid, "funding")
            dust += paid
        else:
            got = decimal_to_units_floor(-owed, d)
            tx.transfer(SETTLEMENT, key, settle, got, "funding")
            dust -= got
    tx.transfer(SETTLEMENT, FEES, settle, dust, "rounding")

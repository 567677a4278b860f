"""The perp mark from the venue's fills (Deribit: index + a 30 s EMA of the clamped basis) and
funding computed by the engine at each funding time (profile `[funding]`), by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from engine_checks import ok

from margin_engine.engine import Engine, event_from_json, replay
from margin_engine.engine.events import BasisObserved, FundingApplied, FundingComputed
from margin_engine.ledger.ledger import user_key
from margin_engine.margin.profile import FundingParams, load_profile

T0 = 1_795_593_600  # 2026-11-25T08:00:00Z
U = 1_000_000


def profile(basis_ema_s=None, rule=None):
    p = load_profile("deribit")
    btc = p.underlyings["BTC"]
    perp = btc.perp.model_copy(update={"basis_ema_s": basis_ema_s})
    update = {"underlyings": {**p.underlyings, "BTC": btc.model_copy(update={"perp": perp})}}
    if rule:
        update["funding"] = FundingParams(rule=rule)
    return p.model_copy(update=update)


def engine(p, deposits=None, perp=None) -> Engine:
    e = Engine(p)
    ok(e, {"type": "advance_time", "time": T0})
    market = {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6}
    ok(e, {**market, "perp": perp} if perp else market)
    for a, amount in (deposits or {"alice": "100000", "bob": "1000000", "carl": "1000000", "dan": "1000000"}).items():
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": amount})
    return e


def trade(buyer, seller, size, price):
    return {"type": "trade", "buyer": buyer, "seller": seller, "instrument": "BTC-PERP", "size": size, "price": price}


def mark(e):
    return e.state.markets["BTC"].perp_mark


def test_the_mark_is_the_index_plus_an_ema_of_the_fills_basis():
    e = engine(profile(basis_ema_s=30))
    seen = [x for x in ok(e, trade("alice", "bob", "1", "60300")) if isinstance(x, BasisObserved)]
    assert [(x.basis_usd, x.ema_usd, x.mark) for x in seen] == [(300.0, 300.0, 60300.0)]
    ok(e, {"type": "advance_time", "time": T0 + 30})
    ok(e, trade("carl", "dan", "0.1", "60000"))  # basis 0, 30 s later: e^-1 of 300 is left
    assert mark(e) == pytest.approx(60_000 + 300 * math.exp(-1))
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.7})  # a new vol keeps the basis
    assert mark(e) == pytest.approx(60_110.36, abs=0.01)
    ok(e, {"type": "advance_time", "time": T0 + 10_000})
    ok(e, trade("carl", "dan", "0.1", "69000"))  # +15%: clamped to 5% of the index
    assert e.state.basis["BTC-PERP"][0] == pytest.approx(3000.0, rel=1e-6) and mark(e) == pytest.approx(
        63_000, rel=1e-6
    )
    again = replay(e.state.profile, [event_from_json(x.to_json()) for x in e.journal])
    assert again.markets == e.state.markets and again.basis == e.state.basis


def test_a_widening_basis_not_the_index_liquidates_the_long():
    for basis_ema_s, liquidated in ((30, True), (None, False)):
        e = engine(
            profile(basis_ema_s=basis_ema_s), {"alice": "13000", "bob": "1000000", "carl": "1000000", "dan": "1000000"}
        )
        ok(e, trade("alice", "bob", "10", "60000"))  # IM 2.05% of 600,000 = 12,300; MM 6,300
        ok(e, {"type": "advance_time", "time": T0 + 30})
        ok(e, trade("carl", "dan", "0.01", "56000"))  # the perp crashes 6.7% below a steady index
        assert e.state.markets["BTC"].index == 60000.0
        assert ("alice" in [q["account"] for q in e.liquidation_queue()]) is liquidated
        # with the fills' basis: 0 + (1 - e^-1) x (-3,000, the 5% clamp) = -1,896 USD on 10 BTC,
        # more than alice's 13,000 less fees above maintenance; at the index she is untouched
        expected = 60_000 - 3_000 * (1 - math.exp(-1)) if basis_ema_s else 60_000
        assert mark(e) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rule", "hourly"),
    [
        ("hyperliquid", (0.002 - 0.0005) / 8),  # P + clamp(I - P, +/-0.05%) = 0.15% per 8 h
        ("dydx", (0.002 + 0.0001) / 8),  # within 600% x (2% - 1%)
        ("drift", 0.002 / 24),  # within 1/33 (tier A)
    ],
)
def test_funding_is_computed_at_each_hour_the_clock_crosses(rule, hourly):
    e = engine(profile(rule=rule), perp="60120")  # a premium of 0.2%
    ok(e, trade("alice", "bob", "1", "60000"))
    before = e.state.ledger.balance(user_key("alice"), "USDC")
    out = ok(e, {"type": "advance_time", "time": T0 + 3600})
    computed = next(x for x in out if isinstance(x, FundingComputed))
    assert (computed.rule, computed.periods, computed.time_s) == (rule, 1, T0 + 3600)
    assert computed.premium == pytest.approx(0.002) and float(computed.rate) == pytest.approx(hourly)
    assert next(x for x in out if isinstance(x, FundingApplied)).rate == computed.rate
    paid = before - e.state.ledger.balance(user_key("alice"), "USDC")
    assert paid == math.ceil(Decimal(60000) * computed.rate * U)  # the long pays, rounded up
    out = ok(e, {"type": "advance_time", "time": T0 + 3 * 3600 + 5})  # two more hours in one step
    computed = next(x for x in out if isinstance(x, FundingComputed))
    assert computed.periods == 2 and float(computed.rate) == pytest.approx(2 * hourly)
    assert not any(isinstance(x, FundingComputed) for x in ok(e, {"type": "advance_time", "time": T0 + 3 * 3600 + 900}))


def test_funding_takes_the_time_weighted_premium_of_the_window():
    e = engine(profile(rule="drift"), perp="60120")
    ok(e, {"type": "advance_time", "time": T0 + 1800})  # 0.2% for half the hour
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6, "perp": "60000"})
    out = ok(e, {"type": "advance_time", "time": T0 + 3600})  # 0 for the other half
    assert next(x for x in out if isinstance(x, FundingComputed)).premium == pytest.approx(0.001)


def test_the_basis_shows_in_the_margin_output():
    e = engine(profile(basis_ema_s=30))
    ok(e, trade("alice", "bob", "1", "60300"))
    out = next(m for m in e.margins() if m.id == "alice").to_json()
    assert out["positions"][0]["basis"] == "300.000000" and out["positions"][0]["mark_price"] == "60300.000000"


def test_dydx_initial_margin_scales_with_the_markets_open_interest():
    """v4-chain test genesis caps (25M, 50M USD): at 37.5M of open interest IMF = 5% + 0.5 x 95%."""
    p = load_profile("dydx")
    btc = p.underlyings["BTC"]
    perp = btc.perp.model_copy(update={"open_interest_lower_cap_usd": 25e6, "open_interest_upper_cap_usd": 50e6})
    p = p.model_copy(update={"underlyings": {**p.underlyings, "BTC": btc.model_copy(update={"perp": perp})}})
    e = Engine(p)
    ok(e, {"type": "advance_time", "time": T0})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "100000", "vol": 0.6})
    for a in ("alice", "bob", "carl"):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": "30000000"})
    ok(e, trade("alice", "bob", "100", "100000"))  # 10M of open interest: under the lower cap
    assert e.state.margin("alice").initial_margin == 10_000_000 * 0.05 * U
    ok(e, trade("alice", "bob", "275", "100000"))  # 37.5M
    assert e.state.markets["BTC"].open_interest == 375.0
    m = e.state.margin("alice")
    assert m.initial_margin == pytest.approx(37_500_000 * 0.525 * U) and m.maintenance_margin == 37_500_000 * 0.03 * U
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "100000", "vol": 0.7})  # keeps the engine's count
    assert e.state.markets["BTC"].open_interest == 375.0
    ok(e, trade("bob", "alice", "375", "100000"))  # all closed
    assert e.state.markets["BTC"].open_interest == 0.0

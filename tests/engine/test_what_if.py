"""What-if is the engine's own trade on a scratch copy: for any book and trades, its answer equals
what the engine then does with the same fills (margin after, allocations, fees, premium, or the
rejection), and it changes nothing."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path

import pytest
from engine_checks import ok, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from margin_engine.engine import Engine, Rejection
from margin_engine.engine.what_if import mark_prices, state_of_views, what_if
from margin_engine.files.portfolio import load_portfolio
from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.liquidation_price import perp_liquidation_price
from margin_engine.margin.profile import load_profile

T0 = "2026-11-25T08:00:00Z"
INSTRUMENTS = ["BTC-PERP", "ETH-PERP", "BTC-25DEC26-60000-C", "BTC-25DEC26-55000-P", "ETH-25DEC26-3000-C"]
PROFILE = load_profile("deribit-pm")  # standard rules for isolated and cross, the risk matrix for portfolio
U = 1_000_000


def engine_with(mode: str, usdc: int, btc: str, book: list[tuple[str, str, str]]) -> Engine:
    e = Engine(PROFILE)
    ok(e, {"type": "advance_time", "time": T0})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": 60000, "vol": 0.6})
    ok(e, {"type": "set_market", "underlying": "ETH", "index": 3000, "vol": 0.7})
    ok(e, {"type": "open_account", "account": "a", "mode": mode})
    ok(e, {"type": "open_account", "account": "b"})
    if usdc:
        ok(e, {"type": "deposit", "account": "a", "amount": str(usdc)})
    if Decimal(btc):
        ok(e, {"type": "deposit", "account": "a", "asset": "BTC", "amount": btc})
    ok(e, {"type": "deposit", "account": "b", "amount": "1000000000"})  # a counterparty that never lacks margin
    for inst, size, price in book:  # the book as the engine lets the account build it
        e.submit(trade(inst, size, price))
    return e


def trade(inst: str, size: str, price: str | None) -> dict:
    buy = not size.startswith("-")
    return {
        "type": "trade",
        "buyer": "a" if buy else "b",
        "seller": "b" if buy else "a",
        "instrument": inst,
        "size": size.lstrip("-"),
        "price": price,
        "aggressor": "buyer" if buy else "seller",
    }


def text(inst: str, size: str, price: str | None) -> str:
    return f"{inst}:{size}" + (f"@{price}" if price is not None else "")


def price_for(e: Engine, inst: str, move: float | None) -> str | None:
    """None: what-if's default, the mark; else the mark moved by `move` (bands may refuse it)."""
    if move is None:
        return None
    mark = mark_prices([parse_instrument(inst)], e.state)[inst]
    return f"{mark * (1 + move):.2f}"


fills = st.tuples(
    st.sampled_from(INSTRUMENTS),
    st.sampled_from(["-20", "-3", "-1", "-0.5", "0.1", "1", "2.5", "12"]),
    st.one_of(st.none(), st.sampled_from([-0.6, -0.02, 0.0, 0.01, 0.3])),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mode=st.sampled_from(["isolated", "cross", "portfolio"]),
    usdc=st.sampled_from([0, 1_000, 10_000, 150_000, 2_000_000]),
    btc=st.sampled_from(["0", "0.5", "3"]),
    book=st.lists(fills, max_size=4),
    trades=st.lists(fills, min_size=1, max_size=3),
)
def test_what_if_equals_the_engines_trade(mode, usdc, btc, book, trades):
    e = engine_with(mode, usdc, btc, [(i, s, price_for_book(i, m)) for i, s, m in book])
    priced = [(i, s, price_for(e, i, m)) for i, s, m in trades]
    before = copy.deepcopy(snapshot(e))
    answer = what_if(e.state, "a", [text(*t) for t in priced])
    assert snapshot(e) == before, "what-if changed the state"
    assert answer.before.to_json() == e.state.margin("a").to_json()
    for i, (inst, size, price) in enumerate(priced):
        if price is None:
            price = repr(mark_prices([parse_instrument(inst)], e.state)[inst])
        out = e.submit(trade(inst, size, price))
        if isinstance(out, Rejection):
            assert answer.rejection is not None and answer.rejected_trade == i, (out, answer.rejection)
            assert answer.rejection.to_json() == out.to_json()
            break
        assert answer.rejected_trade is None or answer.rejected_trade > i, answer.rejection
    else:
        assert answer.rejection is None, answer.rejection
    assert answer.after.to_json() == e.state.margin("a").to_json()


def price_for_book(inst: str, move: float | None) -> str:
    marks = {"BTC-PERP": 60000.0, "ETH-PERP": 3000.0}
    return f"{marks.get(inst, 2000.0 if inst.startswith('BTC') else 150.0) * (1 + (move or 0) / 10):.2f}"


def test_isolated_perp_allocates_what_the_engine_allocates():
    # issue 12: isolated, 10,000 USDC, buys 1 BTC-PERP at 60,000. The engine moves the position's IM
    # 60,000 x (2% + 1 x 0.005%) = 1,203 into it from the free pool and charges the 0.05% taker fee
    # 30; the old what-if showed "liquidatable, 0 allocated"
    e = engine_with("isolated", 10_000, "0", [])
    answer = what_if(e.state, "a", ["BTC-PERP:1@60000"]).to_json()
    assert answer["accepted"] is True
    (pos,) = answer["after"]["positions"]
    assert pos["collateral"] == "1203.000000"
    assert answer["after"]["liquidatable"] is False
    assert answer["change"]["equity"] == "-30.000000"
    ok(e, trade("BTC-PERP", "1", "60000"))
    assert json.dumps(e.state.margin("a").to_json(), sort_keys=True) == json.dumps(answer["after"], sort_keys=True)


def test_what_if_shows_the_liquidation_price_a_trade_leaves():
    e = engine_with("cross", 10_000, "0", [])
    answer = what_if(e.state, "a", ["BTC-PERP:1@60000"]).to_json()
    assert answer["liquidation_prices"]["before"] == []
    (after,) = answer["liquidation_prices"]["after"]
    # 10,000 less the 30 fee, long 1 from 60,000: Hyperliquid's closed form at MM 1% + 0.005%
    expected = perp_liquidation_price(60_000, 1, 9_970, 0.01005)
    assert after["underlying"] == "BTC" and float(after["below"]) == pytest.approx(expected, rel=1e-9)
    assert after["above"] is None


def test_a_portfolio_file_state_margins_as_the_file():
    # state_of_views rebuilds a file's accounts in an engine state: the margin before is the margin
    # `margin` computes from the file's views directly
    portfolio = load_portfolio(Path(__file__).parents[2] / "examples" / "pm-book.json", PROFILE)
    state = state_of_views(PROFILE, portfolio.markets, portfolio.valuation_s, portfolio.accounts)
    direct = compute_margins(portfolio.accounts, portfolio.markets, PROFILE, portfolio.valuation_s)
    assert [state.margin(a.id).to_json() for a in portfolio.accounts] == [m.to_json() for m in direct]

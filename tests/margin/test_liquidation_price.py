"""Liquidation prices: Hyperliquid's closed form for one perp by hand, the solver on the margin
maths against it, and the property that the price found, applied as an index move, leaves equity
at maintenance (perps, futures, options; cross and portfolio accounts)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from margin_engine.errors import InputError
from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import margin_totals
from margin_engine.margin.flat import flatten
from margin_engine.margin.liquidation_price import liquidation_prices, perp_liquidation_price
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW_S = 1795593600  # 2026-11-25T08:00:00Z
U = 10**6
DERIBIT = load_profile("deribit")
DERIBIT_PM = load_profile("deribit-pm")
MARKETS = {
    "BTC": parse_market("BTC", {"index": 60000, "vol": 0.6, "rate": 0.03, "perp": 60060}, "m"),
    "ETH": parse_market("ETH", {"index": 3000, "vol": 0.7}, "m"),
}


def test_hyperliquids_closed_form_by_hand():
    # long 1 at 60,000 with 3,000 of equity, maintenance 1%: 60,000 - 2,400 / 0.99 = 57,575.76
    assert perp_liquidation_price(60_000, 1, 3_000, 0.01) == pytest.approx(57_575.757576, abs=1e-6)
    # there: equity 3,000 - 2,424.24 = 575.76 = 1% x 57,575.76
    # short 1: 60,000 + 2,400 / 1.01 = 62,376.24
    assert perp_liquidation_price(60_000, -1, 3_000, 0.01) == pytest.approx(62_376.237624, abs=1e-6)
    assert perp_liquidation_price(60_000, 0.1, 10_000, 0.01) is None  # more cash than notional: never
    with pytest.raises(InputError):
        perp_liquidation_price(60_000, 0, 3_000, 0.01)


def test_the_solver_finds_the_closed_form_for_one_perp():
    # deribit: maintenance 1% + 0.005% per BTC of size; the mark 60,060 moves with the index
    size, cash = 2.0, 5_000.0
    view = AccountView(
        "a", "cross", {"USDC": int(cash * U)}, (PositionView(parse_instrument("BTC-PERP"), Decimal(2), -120_120 * U),)
    )
    found = liquidation_prices(view, MARKETS, DERIBIT, NOW_S, "BTC")
    ratio = 0.01 + 0.00005 * size
    equity = cash + size * 60_060 - 120_120
    mark = perp_liquidation_price(60_060, size, equity, ratio)
    assert found.below == pytest.approx(mark / 60_060 * 60_000, rel=1e-9) and found.above is None
    assert not found.now


def test_a_short_straddle_has_a_price_on_each_side():
    opts = [("BTC-25DEC26-60000-C", -1), ("BTC-25DEC26-60000-P", -1)]
    view = AccountView(
        "s", "cross", {"USDC": 40_000 * U}, tuple(PositionView(parse_instrument(n), Decimal(q), 0) for n, q in opts)
    )
    found = liquidation_prices(view, MARKETS, DERIBIT, NOW_S, "BTC")
    assert found.below is not None and found.above is not None
    assert found.below < 60_000 < found.above


def _gap_at(view, profile, underlying, price) -> int:
    base = MARKETS[underlying]
    moved = {**MARKETS, underlying: base.moved_to(price, base.confidence)}
    t = margin_totals(flatten([view], profile), moved, profile, NOW_S)
    return int(t.equity[0] - t.maintenance_margin[0])


names = st.sampled_from(
    ["BTC-PERP", "BTC-25DEC26", "BTC-25DEC26-60000-C", "BTC-25DEC26-55000-P", "BTC-26MAR27-70000-C", "ETH-PERP"]
)
position = st.tuples(names, st.integers(-30, 30).filter(bool))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(position, min_size=1, max_size=4, unique_by=lambda p: p[0]),
    st.integers(500, 60_000),
    st.sampled_from(["cross", "portfolio"]),
)
def test_the_price_found_puts_equity_at_maintenance(positions, cash, mode):
    """Applied as an index move, each liquidation price leaves equity - maintenance within two
    units (one for each side's rounding to a unit) and above zero just inside it."""
    profile = DERIBIT_PM if mode == "portfolio" else DERIBIT
    views = []
    for name, tenths in positions:
        inst = parse_instrument(name)
        size = Decimal(tenths) / 10
        quote = 0 if inst.is_option else -int(size * 60_000 * U) if inst.underlying == "BTC" else -int(size * 3_000 * U)
        views.append(PositionView(inst, size, quote))
    view = AccountView("p", mode, {"USDC": cash * U}, tuple(views))
    found = liquidation_prices(view, MARKETS, profile, NOW_S, "BTC")
    if found.now:
        assert _gap_at(view, profile, "BTC", 60_000.0) <= 0
        return
    for price, inside in ((found.below, 1 + 1e-9), (found.above, 1 - 1e-9)):
        if price is None:
            continue
        assert abs(_gap_at(view, profile, "BTC", price)) <= 2
        assert _gap_at(view, profile, "BTC", price * inside) >= -2

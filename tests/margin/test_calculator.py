"""Account-level margin: cross and isolated sums, haircuts, the Derive spread rule, Greeks."""

import math
from decimal import Decimal

import pytest

from margin_engine.files.portfolio import parse_portfolio
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile

DAY = 86400
UNIT = 1_000_000  # USDC units


def bs_call(s, k, t, vol):
    """Black-Scholes call with r = 0, written with math.erf: independent of the engine's pricer."""
    n = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    d1 = (math.log(s / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
    return s * n(d1) - k * n(d1 - vol * math.sqrt(t))


def margins(doc, profile="deribit"):
    prof = load_profile(profile)
    p = parse_portfolio(doc, prof)
    return {m.id: m for m in compute_margins(p.accounts, p.markets, prof, p.valuation_s)}


def doc(accounts, index=60000, vol=0.6, extra_markets=None):
    market = {"BTC": {"index": index, "vol": vol, "rate": 0.0}}
    market.update(extra_markets or {})
    return {"valuation_time": "2026-11-25T08:00:00Z", "market": market, "accounts": accounts}


def test_issue_example_cross_account():
    m = margins(
        doc(
            [
                {
                    "id": "alice",
                    "mode": "cross",
                    "collateral": {"USDC": "100000"},
                    "positions": [
                        {"instrument": "BTC-PERP", "size": "-2", "entry_price": "61000"},
                        {"instrument": "BTC-25DEC26-60000-C", "size": "-1", "entry_price": "3000"},
                    ],
                }
            ]
        )
    )["alice"]
    call = bs_call(60000, 60000, 30 / 365, 0.6)  # 30 days to 25DEC26 08:00
    # equity = 100,000 + perp (-2*60,000 + 122,000 = 2,000) - call
    assert m.equity == math.floor((102000 - call) * UNIT + 1e-6)
    # perp: 120,000 notional * (2% + 2*0.005%) = 2,412 IM; * 1.01% = 1,212 MM
    # call ATM: IM 9,000 + mark; MM 4,500 + mark
    assert m.initial_margin == math.ceil((2412 + 9000 + call) * UNIT - 1e-6)
    assert m.maintenance_margin == math.ceil((1212 + 4500 + call) * UNIT - 1e-6)
    assert m.free_collateral == m.equity - m.initial_margin
    assert not m.liquidatable
    # delta: -2 (perp) - N(d1) of the short call
    d1 = 0.5 * 0.6 * math.sqrt(30 / 365)
    assert m.greeks["delta"] == pytest.approx(-2 - 0.5 * (1 + math.erf(d1 / math.sqrt(2))), rel=1e-12)
    assert m.greeks["vega"] < 0 and m.greeks["theta"] > 0  # short option: short vega, earns decay


def test_liquidatable_when_equity_below_maintenance():
    # short 10 perps entered at 60,000, index 66,000: equity = 5,000 - 60,000 = -55,000? no: use 66,000:
    # value = -10*66,000 + 600,000 = -60,000; collateral 66,000 -> equity 6,000
    # MM = 660,000 * (1% + 10*0.005%) = 6,930 > 6,000 -> liquidatable
    m = margins(
        doc(
            [
                {
                    "id": "a",
                    "collateral": {"USDC": "66000"},
                    "positions": [{"instrument": "BTC-PERP", "size": "-10", "entry_price": "60000"}],
                }
            ],
            index=66000,
        )
    )["a"]
    assert m.equity == 6000 * UNIT
    assert m.maintenance_margin == 6930 * UNIT
    assert m.liquidatable
    assert m.margin_ratio == pytest.approx(6930 / 6000)


def test_btc_collateral_haircut():
    # 2 BTC at 60,000 = 120,000; deribit weights IM 0.90 / MM 0.95 -> haircuts 12,000 / 6,000
    m = margins(doc([{"id": "a", "collateral": {"BTC": "2"}}]))["a"]
    assert m.equity == 120000 * UNIT
    assert m.initial_margin == 12000 * UNIT
    assert m.maintenance_margin == 6000 * UNIT
    assert m.free_collateral == 108000 * UNIT


def test_isolated_positions_stand_alone():
    # perp A: 1 BTC long at 60,000 with 1,500 collateral: IM 1,203 (2.005%), MM 603: fine
    # perp on ETH: 10 ETH long entered 3,000, index 2,700: value -3,000, collateral 3,100 -> equity 100
    #   MM = 27,000 * (1% + 10*0.0004%) = 271.08 > 100 -> this position is liquidatable
    m = margins(
        doc(
            [
                {
                    "id": "iso",
                    "mode": "isolated",
                    "collateral": {"USDC": "5000"},
                    "positions": [
                        {"instrument": "BTC-PERP", "size": "1", "entry_price": "60000", "collateral": "1500"},
                        {"instrument": "ETH-PERP", "size": "10", "entry_price": "3000", "collateral": "3100"},
                    ],
                }
            ],
            extra_markets={"ETH": {"index": 2700, "vol": 0.7}},
        )
    )["iso"]
    btc, eth = m.positions
    assert btc.liquidatable is False and eth.liquidatable is True
    assert eth.maintenance_margin == pytest.approx(271.08)
    assert m.liquidatable
    assert m.free_collateral == 5000 * UNIT  # only the free pool backs new risk
    assert m.equity == (5000 + 1500 + 3100 - 3000) * UNIT


def test_cross_would_not_liquidate_same_book():
    # the same two perps in one cross pool: equity 6,600, MM 603 + 271.08 -> safe
    m = margins(
        doc(
            [
                {
                    "id": "x",
                    "mode": "cross",
                    "collateral": {"USDC": "9600"},
                    "positions": [
                        {"instrument": "BTC-PERP", "size": "1", "entry_price": "60000"},
                        {"instrument": "ETH-PERP", "size": "10", "entry_price": "3000"},
                    ],
                }
            ],
            extra_markets={"ETH": {"index": 2700, "vol": 0.7}},
        )
    )["x"]
    assert not m.liquidatable
    assert m.maintenance_margin == math.ceil((603 + 271.08) * UNIT - 1e-6)


def test_derive_call_spread_needs_its_width():
    # ETH at 1,550; short 1500 call, long 1600 call: max loss 100, so margin surplus = cash - 100.
    accounts = [
        {
            "id": "s",
            "collateral": {"USDC": "1000"},
            "positions": [
                {"instrument": "ETH-25DEC26-1500-C", "size": "-1"},
                {"instrument": "ETH-25DEC26-1600-C", "size": "1"},
            ],
        }
    ]
    m = margins(doc(accounts, extra_markets={"ETH": {"index": 1550, "vol": 0.5}}), profile="derive")["s"]
    assert m.free_collateral == pytest.approx(900 * UNIT, abs=2)  # IM: requirement + equity = cash - 100
    assert m.equity - m.maintenance_margin == pytest.approx(900 * UNIT, abs=2)
    assert [a.kind for a in m.adjustments] == ["max_loss"]
    assert m.adjustments[0].scope == "ETH-25DEC26"


def test_long_option_alone_needs_no_margin_beyond_its_value():
    # deribit: a long option's value counts for maintenance but does not fund new risk
    accounts = [
        {"id": "l", "collateral": {"USDC": "10000"}, "positions": [{"instrument": "BTC-25DEC26-60000-C", "size": "1"}]}
    ]
    m = margins(doc(accounts))["l"]
    call = bs_call(60000, 60000, 30 / 365, 0.6)
    assert m.maintenance_margin == 0
    assert m.initial_margin == math.ceil(call * UNIT - 1e-6)
    assert m.free_collateral == pytest.approx(10000 * UNIT, abs=2)


def test_greeks_by_underlying_and_totals():
    accounts = [
        {
            "id": "g",
            "collateral": {"USDC": "100000"},
            "positions": [{"instrument": "BTC-PERP", "size": "1"}, {"instrument": "ETH-PERP", "size": "-3"}],
        }
    ]
    m = margins(doc(accounts, extra_markets={"ETH": {"index": 3000, "vol": 0.7}}))["g"]
    assert m.greeks_by_underlying["BTC"][0] == 1.0 and m.greeks_by_underlying["ETH"][0] == -3.0
    assert m.greeks["delta"] is None  # BTC and ETH deltas do not add up
    j = m.to_json()
    assert j["greeks_by_underlying"]["ETH"]["delta"] == "-3"
    assert Decimal(j["equity"]) == Decimal("100000.000000")

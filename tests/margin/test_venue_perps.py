"""Perp margin from the venues' tables, through the engine's calculator: Hyperliquid's tiers with
their deduction, Drift's size premium, dYdX's flat Large-Cap fractions."""

from decimal import Decimal

import pytest

from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW = 1_795_593_600
MARKETS = {u: parse_market(u, {"index": i, "vol": 0.6}, u) for u, i in (("BTC", 100_000), ("ETH", 4_000))}


def perp_margin(profile, name, size):
    view = AccountView("a", "cross", {"USDC": 10**15}, (PositionView(parse_instrument(name), Decimal(size), 0, 0),))
    m = compute_margins([view], MARKETS, profile, NOW)[0]
    return m.initial_margin / 1e6, m.maintenance_margin / 1e6


def test_hyperliquid_btc_tiers_in_the_calculator():
    hl = load_profile("hyperliquid")
    # 1,000 BTC at 100,000 = 100M USD: first tier, IM 2.5%, MM 1.25%
    assert perp_margin(hl, "BTC-PERP", "1000") == pytest.approx((2_500_000, 1_250_000))
    # 2,000 BTC = 200M: IM 5% - 150M x 2.5% = 6.25M; MM 2.5% - 1.875M = 3.125M
    assert perp_margin(hl, "BTC-PERP", "-2000") == pytest.approx((6_250_000, 3_125_000))
    # ETH 30,000 at 4,000 = 120M, past 100M: MM 120M / 30 - 100M x (1/30 - 1/50) = 2.667M
    assert perp_margin(hl, "ETH-PERP", "30000")[1] == pytest.approx(120e6 / 30 - 100e6 * (1 / 30 - 1 / 50))


def test_dydx_large_cap_fractions():
    assert perp_margin(load_profile("dydx"), "BTC-PERP", "2") == pytest.approx((10_000, 6_000))  # 5% and 3%


def test_drift_size_premium_in_the_calculator():
    base = load_profile("dydx")
    btc = base.underlyings["BTC"]
    drift = base.model_copy(
        update={
            "underlyings": {
                **base.underlyings,
                "BTC": btc.model_copy(update={"perp": btc.perp.model_copy(update={"imf_factor": 0.0005})}),
            }
        }
    )
    # 1,600 BTC: IM ratio max(5%, 4% + 0.0005 x 40) = 6%; MM max(3%, 2.4% + 2%) = 4.4%
    assert perp_margin(drift, "BTC-PERP", "1600") == pytest.approx((160e6 * 0.06, 160e6 * 0.044))
    assert perp_margin(drift, "BTC-PERP", "1") == pytest.approx((5_000, 3_000))  # small: no premium


def test_tiers_must_match_the_flat_ratios():
    from margin_engine.errors import InputError
    from margin_engine.margin.profile import parse_profile, profile_text

    text = profile_text("hyperliquid").replace("im_ratio = 0.025", "im_ratio = 0.03")
    with pytest.raises(InputError, match="first tier"):
        parse_profile(text)

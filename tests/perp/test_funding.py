"""Each venue's funding rule by hand, with its clamp."""

import pytest

from margin_engine.perp.errors import PerpInputError
from margin_engine.perp.funding import (
    drift_rate_hourly,
    dydx_rate_8h,
    dydx_rate_hourly,
    hyperliquid_rate_8h,
    hyperliquid_rate_hourly,
    premium,
)


def test_premium_is_how_far_the_impact_prices_stand_outside_the_index():
    assert premium(60_030, 60_060, 60_000) == pytest.approx(30 / 60_000)  # bid above: longs pay
    assert premium(59_940, 59_970, 60_000) == pytest.approx(-30 / 60_000)  # ask below: shorts pay
    assert premium(59_990, 60_010, 60_000) == 0.0  # the index inside the spread
    with pytest.raises(PerpInputError, match="impact bid"):
        premium(60_100, 60_000, 60_000)


def test_dydx_mean_premium_plus_one_basis_point_within_600_percent_of_imf_less_mmf():
    # Large-Cap (v4-chain genesis): IMF 5%, maintenance fraction 60% -> MMF 3%; bound 6 x 2% = 12% per 8 h
    assert dydx_rate_8h([0.0002, 0.0004], 0.05, 0.03) == pytest.approx(0.0003 + 0.0001)
    assert dydx_rate_hourly([0.0002, 0.0004], 0.05, 0.03) == pytest.approx(0.0004 / 8)
    assert dydx_rate_8h([0.20, 0.30], 0.05, 0.03) == pytest.approx(0.12)
    assert dydx_rate_8h([-0.5], 0.05, 0.03) == pytest.approx(-0.12)
    with pytest.raises(PerpInputError, match="no premium samples"):
        dydx_rate_8h([], 0.05, 0.03)


def test_hyperliquid_interest_clamp_and_hourly_cap():
    # P = 0.03%: I - P = -0.02% inside +/-0.05%, so F = I = 0.01% per 8 h: 0.00125% an hour
    assert hyperliquid_rate_8h([0.0003]) == pytest.approx(0.0001)
    assert hyperliquid_rate_hourly([0.0003]) == pytest.approx(0.0000125)
    # P = 0.2%: I - P = -0.19% clamped to -0.05%: F = 0.15%, hourly 0.01875%
    assert hyperliquid_rate_8h([0.001, 0.003]) == pytest.approx(0.0015)
    assert hyperliquid_rate_hourly([0.002]) == pytest.approx(0.0001875)
    # a 50% premium: 49.95% / 8 = 6.2% an hour, capped at 4%
    assert hyperliquid_rate_hourly([0.5]) == 0.04
    assert hyperliquid_rate_hourly([-0.5]) == -0.04


def test_drift_twap_spread_over_24_clamped_by_contract_tier():
    assert drift_rate_hourly(60_300, 60_000) == pytest.approx(300 / 60_000 / 24)
    # 3,000 USD of spread, tier A clamps at 60,000 / 33 = 1,818.18
    assert drift_rate_hourly(63_000, 60_000, "A") == pytest.approx(60_000 / 33 / 60_000 / 24)
    assert drift_rate_hourly(63_000, 60_000, "C") == pytest.approx(3_000 / 60_000 / 24)  # 5%: inside
    assert drift_rate_hourly(50_000, 60_000, "speculative") == pytest.approx(-6_000 / 60_000 / 24)
    with pytest.raises(PerpInputError, match="contract tier"):
        drift_rate_hourly(60_000, 60_000, "Z")

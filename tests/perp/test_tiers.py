"""Margin that grows with size, from each venue's published table."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.perp.errors import PerpInputError
from margin_engine.perp.tiers import (
    Tier,
    check_tiers,
    deductions,
    drift_size_premium_ratio,
    dydx_initial_fraction,
    tiered_initial_usd,
    tiered_maintenance_usd,
)

# Hyperliquid's BTC table (docs, margin tiers; meta table 56): 40x from 0, 20x from 150M USD
BTC = check_tiers([Tier(0, 40), Tier(150_000_000, 20)])


def test_hyperliquid_btc_tiers_by_hand():
    # MM rates 1.25% and 2.5%; deduction of tier 2 = 150M x (2.5% - 1.25%) = 1.875M
    assert deductions(BTC) == pytest.approx((0.0, 1_875_000.0))
    assert tiered_maintenance_usd(BTC, 100_000_000) == pytest.approx(1_250_000)
    assert tiered_maintenance_usd(BTC, 200_000_000) == pytest.approx(200e6 * 0.025 - 1_875_000)  # 3.125M
    assert tiered_maintenance_usd(BTC, -200_000_000) == pytest.approx(3_125_000)  # a short counts its size
    assert tiered_initial_usd(BTC, 200_000_000) == pytest.approx(200e6 * 0.05 - 150e6 * 0.025)  # 6.25M


@given(st.floats(1, 1e10))
def test_tiered_requirements_are_continuous_and_rise_with_size(notional):
    tiers = check_tiers([Tier(0, 50), Tier(1e6, 25), Tier(2e7, 10), Tier(1e9, 5)])
    for f in (tiered_maintenance_usd, tiered_initial_usd):
        for bound in (1e6, 2e7, 1e9):
            assert f(tiers, bound) == pytest.approx(f(tiers, bound * (1 - 1e-12)), rel=1e-9)
        assert f(tiers, notional * 1.01) >= f(tiers, notional)


def test_tiers_must_rise():
    with pytest.raises(PerpInputError, match="rise"):
        check_tiers([Tier(0, 20), Tier(1e6, 40)])
    with pytest.raises(PerpInputError, match="starts at 0"):
        check_tiers([Tier(10, 20)])


def test_dydx_initial_fraction_scales_with_open_interest():
    # v4-chain genesis Large-Cap: IMF 5%, open interest caps 25M and 50M USDC
    assert dydx_initial_fraction(0.05, 10e6, 25e6, 50e6) == 0.05
    assert dydx_initial_fraction(0.05, 37.5e6, 25e6, 50e6) == pytest.approx(0.05 + 0.5 * 0.95)  # 52.5%
    assert dydx_initial_fraction(0.05, 80e6, 25e6, 50e6) == 1.0
    with pytest.raises(PerpInputError, match="caps"):
        dydx_initial_fraction(0.05, 1, 50e6, 25e6)


def test_drift_size_premium():
    # r = 5%, imf_factor 0.0005 per sqrt(base): 100 BTC -> 0.8 x 5% + 0.0005 x 10 = 4.5% < 5%; 1,600 -> 6%
    assert drift_size_premium_ratio(0.05, 100, 0.0005) == 0.05
    assert drift_size_premium_ratio(0.05, -1_600, 0.0005) == pytest.approx(0.04 + 0.0005 * 40)


@given(st.lists(st.floats(-1e10, 1e10), min_size=1, max_size=20))
def test_tiers_on_arrays_equal_the_scalar_formulas(notionals):
    import numpy as np

    from margin_engine.perp.tiers import tiered_requirements

    tiers = check_tiers([Tier(0, 50), Tier(1e6, 25), Tier(2e7, 10)])
    im, mm = tiered_requirements(tiers, np.array(notionals))
    assert im.tolist() == pytest.approx([tiered_initial_usd(tiers, n) for n in notionals])
    assert mm.tolist() == pytest.approx([tiered_maintenance_usd(tiers, n) for n in notionals])

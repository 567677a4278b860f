"""Implied volatility: round trips through black76 and every way a quote can fail."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from margin_engine.pricing import (
    ImpliedVolError,
    ImpliedVolResult,
    PricingInputError,
    black76,
    implied_vol,
    implied_vol_result,
)


def _random_book(n, seed):
    rng = np.random.default_rng(seed)
    forward = rng.uniform(1_000.0, 100_000.0, n)
    strike = forward / rng.uniform(0.5, 2.0, n)
    time_years = rng.uniform(1.0 / 365.0, 3.0, n)
    vol = rng.uniform(0.05, 2.0, n)
    rate = rng.uniform(0.0, 0.1, n)
    is_call = rng.random(n) < 0.5
    return forward, strike, time_years, vol, rate, is_call


def test_round_trip_on_random_book():
    forward, strike, time_years, vol, rate, is_call = _random_book(20_000, seed=11)
    g = black76(forward, strike, time_years, vol, rate, is_call)

    result = implied_vol_result(g.price, forward, strike, time_years, rate, is_call)

    assert isinstance(result, ImpliedVolResult)
    assert result.ok.all(), np.unique(result.reason)
    assert result.iterations <= 12
    # Volatility is only pinned down where the price moves with it.
    identifiable = g.vega > 1e-6 * forward
    assert identifiable.mean() > 0.9
    np.testing.assert_allclose(result.vol[identifiable], vol[identifiable], rtol=0, atol=1e-8)
    # Elsewhere any answer must at least reprice the quote to rounding level.
    repriced = black76(forward, strike, time_years, result.vol, rate, is_call).price
    assert np.all(np.abs(repriced - g.price) <= 1e-13 * np.maximum(forward, strike))
    np.testing.assert_array_equal(implied_vol(g.price, forward, strike, time_years, rate, is_call), result.vol)


@settings(max_examples=300, deadline=None)
@given(
    forward=st.floats(1.0, 1e6),
    moneyness=st.floats(0.25, 4.0),
    time_years=st.floats(1.0 / (365 * 24), 10.0),
    vol=st.floats(0.01, 4.0),
    rate=st.floats(-0.05, 0.2),
    is_call=st.booleans(),
)
def test_round_trip_property(forward, moneyness, time_years, vol, rate, is_call):
    strike = forward / moneyness
    g = black76(forward, strike, time_years, vol, rate, is_call)
    assume(g.vega > 1e-6 * forward)
    assert abs(float(implied_vol(g.price, forward, strike, time_years, rate, is_call)) - vol) < 1e-8


def test_tiny_out_of_the_money_prices_are_inverted():
    # Prices far below the forward's rounding level still carry full relative precision.
    forward = np.array([100.0, 100.0, 100.0])
    strike = np.array([200.0, 300.0, 50.0])
    time_years = np.array([1.0, 1.0, 0.01])
    vol = np.array([0.05, 0.05, 0.3])
    is_call = np.array([True, True, False])
    price = black76(forward, strike, time_years, vol, 0.03, is_call).price
    assert price.max() < 1e-40
    np.testing.assert_allclose(implied_vol(price, forward, strike, time_years, 0.03, is_call), vol, rtol=1e-12)


def test_price_at_intrinsic_gives_zero_vol():
    forward = np.array([120.0, 80.0, 100.0, 80.0, 120.0])
    is_call = np.array([True, True, True, False, False])
    rate, t = 0.05, 0.5
    price = black76(forward, 100.0, t, 0.0, rate, is_call).price
    np.testing.assert_array_equal(implied_vol(price, forward, 100.0, t, rate, is_call), 0.0)


def test_expiry_at_intrinsic_gives_zero_vol():
    price = np.array([20.0, 0.0, 0.0])
    forward = np.array([120.0, 80.0, 100.0])
    np.testing.assert_array_equal(implied_vol(price, forward, 100.0, 0.0, 0.05, True), 0.0)


@pytest.mark.parametrize(
    "price, forward, time_years, is_call, reason",
    [
        (19.0, 120.0, 0.5, True, "price below intrinsic value"),
        (15.0, 80.0, 0.5, False, "price below intrinsic value"),
        (120.5, 120.0, 0.5, True, "price above the no-arbitrage upper bound"),
        (100.5, 80.0, 0.5, False, "price above the no-arbitrage upper bound"),
        (21.0, 120.0, 0.0, True, "time_years is 0 but price is above intrinsic value"),
        (0.5, 100.0, 0.0, False, "time_years is 0 but price is above intrinsic value"),
        (19.0, 120.0, 0.0, True, "price below intrinsic value"),
    ],
)
def test_unreachable_prices_fail_with_reason(price, forward, time_years, is_call, reason):
    prices = np.array([5.0, price])  # element 0 is fine: an at-the-money option with time value
    forwards = np.array([100.0, forward])
    times = np.array([0.5, time_years])
    result = implied_vol_result(prices, forwards, 100.0, times, 0.0, is_call)
    assert result.ok.tolist() == [True, False]
    assert result.reason.tolist() == ["", reason]
    assert np.isfinite(result.vol[0]) and np.isnan(result.vol[1])

    with pytest.raises(ImpliedVolError, match=rf"^no implied volatility at index 1: {reason}$") as info:
        implied_vol(prices, forwards, 100.0, times, 0.0, is_call)
    assert info.value.reasons.tolist() == ["", reason]
    assert isinstance(info.value, ValueError)


def test_upper_bound_is_discounted():
    # With r > 0 a call is worth at most F exp(-rT): F itself is already too much.
    result = implied_vol_result(100.0 * math.exp(-0.1) + 1e-9, 100.0, 100.0, 1.0, 0.1, True)
    assert not result.ok and result.reason == "price above the no-arbitrage upper bound"


def test_invalid_inputs_are_reported_per_element():
    result = implied_vol_result(
        [np.nan, 5.0, 5.0, 5.0, -1.0, 5.0],
        [100.0, -100.0, 100.0, 100.0, 100.0, 100.0],
        [100.0, 100.0, 0.0, 100.0, 100.0, 100.0],
        [0.5, 0.5, 0.5, -0.5, 0.5, 0.5],
        [0.0, 0.0, 0.0, 0.0, 0.0, np.inf],
        True,
    )
    assert result.reason.tolist() == [
        "price must be finite and >= 0",
        "forward must be finite and > 0",
        "strike must be finite and > 0",
        "time_years must be finite and >= 0",
        "price must be finite and >= 0",
        "rate must be finite",
    ]
    assert not result.ok.any() and np.isnan(result.vol).all()


def test_not_converging_is_reported():
    result = implied_vol_result(5.0, 100.0, 100.0, 0.5, 0.0, True, max_iter=1)
    assert not result.ok and result.reason == "did not converge" and np.isnan(result.vol)
    with pytest.raises(ImpliedVolError, match=r"^no implied volatility: did not converge$"):
        implied_vol(5.0, 100.0, 100.0, 0.5, 0.0, True, max_iter=1)


def test_shape_is_preserved_and_error_index_is_a_tuple():
    forward = np.full((2, 3), 100.0)
    price = black76(forward, 100.0, 0.5, 0.7, 0.0, True).price.copy()
    assert implied_vol(price, forward, 100.0, 0.5, 0.0, True).shape == (2, 3)
    price[1, 2] = 200.0
    result = implied_vol_result(price, forward, 100.0, 0.5, 0.0, True)
    assert result.vol.shape == result.ok.shape == result.reason.shape == (2, 3)
    with pytest.raises(ImpliedVolError, match=r"at index \(1, 2\): price above"):
        implied_vol(price, forward, 100.0, 0.5, 0.0, True)


def test_structural_errors_still_raise_pricing_input_error():
    with pytest.raises(PricingInputError, match="is_call"):
        implied_vol_result(5.0, 100.0, 100.0, 0.5, 0.0, "c")
    with pytest.raises(PricingInputError, match="broadcast"):
        implied_vol_result(np.ones(2), np.ones(3) * 100, 100.0, 0.5, 0.0, True)

"""black76: published values, Greek conventions, degenerate cases and input validation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_engine.pricing import SECONDS_PER_YEAR, Greeks, PricingInputError, black76, year_fraction

CALL_PUT = np.array([True, False])


def test_hull_black_scholes_example():
    # Hull, "Options, Futures and Other Derivatives": S=42, K=40, r=10%, sigma=20%, T=0.5
    # gives c = 4.76 and p = 0.81.  Our input is the forward, F = S exp(rT).
    spot, rate, t = 42.0, 0.10, 0.5
    g = black76(spot * math.exp(rate * t), 40.0, t, 0.20, rate, CALL_PUT)
    assert np.round(g.price, 2).tolist() == [4.76, 0.81]


def test_hull_greek_letters_example():
    # Hull's running Greeks example: S=49, K=50, r=5%, sigma=20%, T=0.3846 (20 weeks):
    # delta 0.522, gamma 0.066, vega 12.1 per unit of vol, theta -4.31 per year = -0.0118 per day.
    spot, rate, t = 49.0, 0.05, 0.3846
    g = black76(spot * math.exp(rate * t), 50.0, t, 0.20, rate, True)
    assert round(float(g.delta), 3) == 0.522
    assert round(float(g.gamma), 3) == 0.066
    assert round(float(g.vega), 3) == 0.121
    assert round(float(g.theta), 4) == -0.0118


def test_haug_black76_example():
    # Haug, "The Complete Guide to Option Pricing Formulas", Black-76 example:
    # F=19, K=19, T=0.75, r=10%, sigma=28% gives a put worth 1.7011.
    g = black76(19.0, 19.0, 0.75, 0.28, 0.10, False)
    assert round(float(g.price), 4) == 1.7011


def test_greeks_match_finite_differences_of_the_promised_conventions():
    """delta/gamma in S with F = S exp(rT), vega per vol point, theta per day holding S fixed."""
    spot, strike, t, vol, rate = 30_000.0, 32_000.0, 0.25, 0.65, 0.04

    def price(s=spot, tt=t, v=vol):
        return black76(s * math.exp(rate * tt), strike, tt, v, rate, CALL_PUT).price

    g = black76(spot * math.exp(rate * t), strike, t, vol, rate, CALL_PUT)
    ds, dt, dv = 1.0, 1e-5, 1e-5
    np.testing.assert_allclose(g.delta, (price(s=spot + ds) - price(s=spot - ds)) / (2 * ds), rtol=1e-7)
    np.testing.assert_allclose(g.gamma, (price(s=spot + ds) - 2 * price() + price(s=spot - ds)) / ds**2, rtol=1e-4)
    np.testing.assert_allclose(g.vega, (price(v=vol + dv) - price(v=vol - dv)) / (2 * dv) * 0.01, rtol=1e-7)
    np.testing.assert_allclose(g.theta, -(price(tt=t + dt) - price(tt=t - dt)) / (2 * dt) / 365, rtol=1e-6)


def test_result_is_frozen_float64_arrays_with_broadcast_shape():
    g = black76(np.full((2, 1), 100.0), np.array([90.0, 100.0, 110.0]), 0.5, 0.6, 0.01, True)
    assert isinstance(g, Greeks)
    for field in ("price", "delta", "gamma", "vega", "theta"):
        value = getattr(g, field)
        assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (2, 3)
    with pytest.raises(AttributeError):
        g.price = g.delta
    scalar = black76(100.0, 100.0, 0.5, 0.6, 0.01, True)
    assert isinstance(scalar.price, np.ndarray) and scalar.price.shape == ()


def test_year_fraction():
    assert SECONDS_PER_YEAR == 31_536_000
    np.testing.assert_array_equal(year_fraction([0, 86_400 * 365, 43_200]), [0.0, 1.0, 0.5 / 365])


@pytest.mark.parametrize("time_years, vol", [(0.0, 0.8), (0.5, 0.0), (0.0, 0.0)])
def test_no_time_or_no_vol_gives_discounted_intrinsic(time_years, vol):
    forward = np.array([120.0, 80.0, 100.0, 120.0, 80.0, 100.0])
    is_call = np.array([True, True, True, False, False, False])
    rate = 0.05
    g = black76(forward, 100.0, time_years, vol, rate, is_call)
    discount = math.exp(-rate * time_years)
    np.testing.assert_allclose(g.price, discount * np.array([20.0, 0, 0, 0, 20.0, 0]), rtol=1e-15)
    np.testing.assert_array_equal(g.delta, [1.0, 0, 0, 0, -1.0, 0])
    np.testing.assert_array_equal(g.gamma, 0.0)
    np.testing.assert_array_equal(g.vega, 0.0)
    # The only time dependence left is the carry of the strike, -r K exp(-rT) per year
    # for an in-the-money call (positive for a put): the vol -> 0 limit of theta.
    carry = rate * 100.0 * discount / 365
    np.testing.assert_allclose(g.theta, [-carry, 0, 0, 0, carry, 0], rtol=1e-15)


def test_vol_to_zero_limit_is_continuous_away_from_the_money():
    forward = np.array([70.0, 130.0, 70.0, 130.0])
    is_call = np.array([True, True, False, False])
    at_zero = black76(forward, 100.0, 0.7, 0.0, 0.08, is_call)
    nearly_zero = black76(forward, 100.0, 0.7, 1e-9, 0.08, is_call)
    for field in ("price", "delta", "gamma", "vega", "theta"):
        np.testing.assert_allclose(getattr(at_zero, field), getattr(nearly_zero, field), rtol=1e-15, atol=1e-300)


def test_deep_out_of_the_money_put_delta_keeps_relative_precision():
    # -N(-d1) computed directly (no 1 - N cancellation), compared with an erfc reference.
    forward, strike, t, vol = 1000.0, 500.0, 0.1, 0.3
    g = black76(forward, strike, t, vol, 0.0, False)
    d1 = math.log(forward / strike) / (vol * math.sqrt(t)) + 0.5 * vol * math.sqrt(t)
    assert float(g.delta) == pytest.approx(-0.5 * math.erfc(d1 / math.sqrt(2)), rel=1e-13)
    assert float(g.delta) < -1e-30


def test_put_call_parity_on_random_inputs():
    rng = np.random.default_rng(7)
    n = 10_000
    forward = rng.uniform(10.0, 100_000.0, n)
    strike = forward / rng.uniform(0.3, 3.0, n)
    time_years = rng.uniform(0.0, 5.0, n)
    vol = rng.uniform(0.0, 3.0, n)
    rate = rng.uniform(-0.02, 0.2, n)
    call = black76(forward, strike, time_years, vol, rate, True)
    put = black76(forward, strike, time_years, vol, rate, False)
    discount = np.exp(-rate * time_years)
    scale = np.maximum(forward, strike)
    # C - P is a difference of numbers up to max(F, K): a few ulps of that is all rounding allows.
    assert np.all(np.abs(call.price - put.price - discount * (forward - strike)) <= 1e-14 * scale)
    live = vol * np.sqrt(time_years) > 0
    np.testing.assert_allclose((call.delta - put.delta)[live], 1.0, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(call.gamma, put.gamma)
    np.testing.assert_array_equal(call.vega, put.vega)
    np.testing.assert_allclose(
        (call.theta - put.theta)[live], (-rate * strike * discount / 365)[live], rtol=0, atol=1e-14 * scale.max()
    )


@settings(max_examples=300, deadline=None)
@given(
    forward=st.floats(1e-6, 1e9),
    strike=st.floats(1e-6, 1e9),
    time_years=st.one_of(st.just(0.0), st.floats(1e-9, 50.0)),
    vol=st.one_of(st.just(0.0), st.floats(1e-6, 10.0)),
    rate=st.floats(-0.2, 0.5),
    is_call=st.booleans(),
)
def test_valid_inputs_never_give_nan_or_inf(forward, strike, time_years, vol, rate, is_call):
    g = black76(forward, strike, time_years, vol, rate, is_call)
    for field in ("price", "delta", "gamma", "vega", "theta"):
        assert np.isfinite(getattr(g, field)), field
    assert g.price >= 0.0


GOOD = {"forward": 100.0, "strike": 100.0, "time_years": 0.5, "vol": 0.6, "rate": 0.01}


@pytest.mark.parametrize(
    "field, bad",
    [
        ("forward", np.nan),
        ("forward", 0.0),
        ("forward", -5.0),
        ("forward", np.inf),
        ("strike", 0.0),
        ("strike", np.nan),
        ("time_years", -1.0),
        ("time_years", np.inf),
        ("vol", -0.1),
        ("vol", np.nan),
        ("rate", np.nan),
        ("rate", -np.inf),
    ],
)
def test_invalid_input_raises_naming_field_and_index(field, bad):
    args = dict(GOOD, **{field: np.array([GOOD[field], GOOD[field], bad, GOOD[field]])})
    with pytest.raises(PricingInputError, match=rf"^{field} must be .*, got {bad!r} at index 2$"):
        black76(**args, is_call=True)


def test_invalid_scalar_message():
    with pytest.raises(PricingInputError, match=r"^vol must be finite and >= 0, got nan$"):
        black76(100.0, 100.0, 0.5, float("nan"), 0.0, True)


def test_is_call_must_be_boolean():
    with pytest.raises(PricingInputError, match="is_call must be a boolean array"):
        black76(100.0, 100.0, 0.5, 0.6, 0.0, np.array(["c", "p"]))
    with pytest.raises(PricingInputError, match="is_call"):
        black76(100.0, 100.0, 0.5, 0.6, 0.0, 1)


def test_shapes_that_do_not_broadcast_raise():
    with pytest.raises(PricingInputError, match="broadcast"):
        black76(np.ones(2) * 100, np.ones(3) * 100, 0.5, 0.6, 0.0, True)


def test_pricing_input_error_is_a_value_error():
    assert issubclass(PricingInputError, ValueError)

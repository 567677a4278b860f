"""Cross-check black76 against QuantLib's BlackCalculator on a random grid."""

import math

import numpy as np
import pytest

from margin_engine.pricing import black76

ql = pytest.importorskip("QuantLib")

N_OPTIONS = 6000
RTOL = 1e-9
# QuantLib's lower-tail normal CDF is accurate in absolute rather than relative terms
# (0.5 * (1 + erf) down to 1e-8, then an asymptotic series), and BlackCalculator forms
# put prices and deltas as N(d1) - 1 and 1 - N(d2).  Values that are tiny next to their
# natural scale (S for price, vega and theta, 1 for delta, 1/S for gamma) therefore carry
# QuantLib errors of order 1e-16 * scale.  The floor below is 1e-14 * scale, so it only
# matters for values under 1e-5 of their scale; everything else is held to RTOL.
ATOL_PER_SCALE = 1e-14


def _grid():
    rng = np.random.default_rng(20240607)
    forward = rng.uniform(1_000.0, 100_000.0, N_OPTIONS)
    strike = forward / rng.uniform(0.5, 2.0, N_OPTIONS)  # moneyness F/K in [0.5, 2]
    time_years = rng.uniform(1.0 / 365.0, 3.0, N_OPTIONS)
    vol = rng.uniform(0.05, 2.0, N_OPTIONS)
    rate = rng.uniform(0.0, 0.1, N_OPTIONS)
    is_call = rng.random(N_OPTIONS) < 0.5
    return forward, strike, time_years, vol, rate, is_call


def _quantlib(forward, strike, time_years, vol, rate, is_call):
    """Price, delta, gamma, vega per point, theta per day from BlackCalculator, one option at a time."""
    out = np.empty((5, forward.size))
    for i, (f, k, t, v, r, call) in enumerate(zip(forward, strike, time_years, vol, rate, is_call, strict=True)):
        discount = math.exp(-r * t)
        spot = f * discount
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if call else ql.Option.Put, k)
        calc = ql.BlackCalculator(payoff, f, v * math.sqrt(t), discount)
        # QuantLib's theta is dV/dt (calendar time), the same sign as ours;
        # vega(T) is dV/dsigma, so scale to one volatility point.
        out[:, i] = (
            calc.value(),
            calc.delta(spot),
            calc.gamma(spot),
            calc.vega(t) * 0.01,
            calc.thetaPerDay(spot, t),
        )
    return out


@pytest.fixture(scope="module")
def grid_and_quantlib():
    grid = _grid()
    return grid, _quantlib(*grid)


def test_quantlib_theta_per_day_is_theta_over_365():
    calc = ql.BlackCalculator(ql.PlainVanillaPayoff(ql.Option.Call, 100.0), 105.0, 0.3, 0.97)
    assert calc.thetaPerDay(101.85, 0.5) == pytest.approx(calc.theta(101.85, 0.5) / 365.0, rel=1e-15)


@pytest.mark.parametrize("field", ["price", "delta", "gamma", "vega", "theta"])
def test_matches_quantlib(grid_and_quantlib, field):
    (forward, strike, time_years, vol, rate, is_call), expected = grid_and_quantlib
    ours = getattr(black76(forward, strike, time_years, vol, rate, is_call), field)
    reference = expected[["price", "delta", "gamma", "vega", "theta"].index(field)]

    spot = forward * np.exp(-rate * time_years)
    scale = {"delta": 1.0, "gamma": 1.0 / spot}.get(field, spot)
    error = np.abs(ours - reference)
    allowed = RTOL * np.abs(reference) + ATOL_PER_SCALE * scale
    worst = int(np.argmax(error / allowed))
    assert np.all(error <= allowed), (
        f"{field}: ours {ours[worst]!r} vs QuantLib {reference[worst]!r} "
        f"(F={forward[worst]}, K={strike[worst]}, T={time_years[worst]}, vol={vol[worst]}, "
        f"r={rate[worst]}, call={is_call[worst]})"
    )


def test_grid_covers_both_tails(grid_and_quantlib):
    """The floor must not hide a grid that never leaves the region where it is inactive."""
    (forward, strike, time_years, vol, rate, is_call), expected = grid_and_quantlib
    spot = forward * np.exp(-rate * time_years)
    relative_price = expected[0] / spot
    assert (relative_price > 1e-5).mean() > 0.9
    assert np.any(is_call & (relative_price > 0.5)) and np.any(~is_call & (relative_price > 0.5))

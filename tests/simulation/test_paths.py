"""Price and implied-vol paths: moments within statistical tolerance (fixed seeds, so deterministic),
jump frequency, GARCH-t persistence and fat tails against a plain twin, bit-for-bit determinism."""

import numpy as np
import pytest
from scipy import stats

from margin_engine.simulation.errors import SimulationInputError
from margin_engine.simulation.paths import (
    BTC_CRASH_SPOT_VOL_BETA,
    GarchParams,
    JumpParams,
    ewma_realized_vol,
    garch_t_paths,
    gbm_paths,
    implied_vol_path,
    merton_paths,
)

DAY_S = 86400
YEAR_S = 365 * DAY_S
GARCH = GarchParams(omega_daily=1e-5, alpha=0.10, beta=0.85, nu=8.0)  # h_bar = 1e-5 / 0.05 = 2e-4 (1.41% a day)


def rng(seed=7):
    return np.random.default_rng(seed)


def test_gbm_log_return_moments():
    # 20,000 paths of 10 daily steps, vol 80%, drift 10%: T = 10/365
    # ln(S_T/S_0) ~ Normal((0.1 - 0.32) T, 0.64 T) = Normal(-0.0060274, 0.0175342)
    n, t = 20_000, 10 / 365
    paths = gbm_paths(50_000.0, 0.8, 0.1, 10, DAY_S, n, rng())
    assert paths.shape == (n, 11) and np.all(paths[:, 0] == 50_000.0)
    log_t = np.log(paths[:, -1] / paths[:, 0])
    sd = 0.8 * np.sqrt(t)
    assert log_t.mean() == pytest.approx((0.1 - 0.32) * t, abs=4 * sd / np.sqrt(n))
    assert log_t.var(ddof=1) == pytest.approx(0.64 * t, abs=4 * 0.64 * t * np.sqrt(2 / n))
    # each daily step has variance sigma^2 dt and the steps are uncorrelated
    steps = np.diff(np.log(paths), axis=1)
    assert steps.var(ddof=1) == pytest.approx(0.64 / 365, rel=0.02)
    assert abs(np.corrcoef(steps[:, 0], steps[:, 1])[0, 1]) < 4 / np.sqrt(n)
    # E[S_T] = S_0 exp(mu T)
    gross = paths[:, -1] / 50_000.0
    assert gross.mean() == pytest.approx(np.exp(0.1 * t), abs=4 * gross.std() / np.sqrt(n))


def test_gbm_is_exact_at_any_step_size():
    # one year in 1 step or in 365: the same law of ln S_T, Normal(-0.125, 0.25) (standard error 0.0035)
    one = gbm_paths(1.0, 0.5, 0.0, 1, YEAR_S, 20_000, rng(1))[:, -1]
    many = gbm_paths(1.0, 0.5, 0.0, 365, DAY_S, 20_000, rng(2))[:, -1]
    assert np.log(one).mean() == pytest.approx(-0.125, abs=0.015)
    assert np.log(many).mean() == pytest.approx(-0.125, abs=0.015)


def test_merton_jump_frequency():
    # no diffusion: a step moves off the compensated drift only when it holds a jump.
    # lambda = 50 a year, daily steps: P(at least one jump) = 1 - exp(-50/365) = 0.128018
    jumps = JumpParams(intensity_annual=50.0, mean_log=-0.05, vol_log=0.05)
    paths = merton_paths(100.0, 0.0, 0.0, jumps, 365, DAY_S, 200, rng())
    steps = np.diff(np.log(paths), axis=1)
    drift = -50.0 * jumps.mean_jump_fraction / 365
    share = np.mean(np.abs(steps - drift) > 1e-12)
    n = steps.size  # 73,000 steps: standard error sqrt(p (1 - p) / n) = 0.00124
    assert share == pytest.approx(1 - np.exp(-50 / 365), abs=4 * np.sqrt(0.128 * 0.872 / n))
    # jumps are down on average: most jump steps are below the drift
    assert np.mean(steps[np.abs(steps - drift) > 1e-12] < drift) > 0.8


def test_merton_drift_is_compensated():
    # k = exp(-0.1 + 0.15^2 / 2) - 1 = -0.0849; without -lambda k, E[S_1]/S_0 would be exp(10 k) = 0.43
    jumps = JumpParams(intensity_annual=10.0, mean_log=-0.1, vol_log=0.15)
    assert jumps.mean_jump_fraction == pytest.approx(np.expm1(-0.1 + 0.5 * 0.15**2))
    gross = merton_paths(1.0, 0.5, 0.05, jumps, 52, 7 * DAY_S, 20_000, rng())[:, -1]
    assert gross.mean() == pytest.approx(np.exp(0.05 * 364 / 365), abs=4 * gross.std() / np.sqrt(20_000))


def garch_twin(z, params, h0):
    """The daily GARCH recursion written out plainly, path by path, for the same unit-variance shocks."""
    out = np.empty(z.shape)
    for i in range(z.shape[0]):
        h = h0
        for k in range(z.shape[1]):
            out[i, k] = np.sqrt(h) * z[i, k]
            h = params.omega_daily + params.alpha * out[i, k] ** 2 + params.beta * h
    return out


def test_garch_daily_steps_match_the_plain_recursion():
    paths = garch_t_paths(100.0, GARCH, 30, DAY_S, 5, rng(3), variance0_daily=4e-4)
    z = rng(3).standard_t(8.0, (5, 30)) * np.sqrt(6 / 8)  # the same draws, scaled to unit variance
    assert np.diff(np.log(paths), axis=1) == pytest.approx(garch_twin(z, GARCH, 4e-4), rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("dt_s", [DAY_S, 3600])
def test_garch_variance_shock_decays_by_persistence_per_day(dt_s):
    # start at 10 x h_bar: E[h after d days] = h_bar + 0.95^d (h0 - h_bar), whatever the step;
    # a step's squared return has mean f * E[h], f = dt_s / 86400
    h_bar, h0, f = 2e-4, 2e-3, dt_s / DAY_S
    per_day = round(1 / f)
    paths = garch_t_paths(100.0, GARCH, 10 * per_day, dt_s, 40_000, rng(11), variance0_daily=h0)
    r2 = np.diff(np.log(paths), axis=1) ** 2
    for day in (0, 4, 9):
        expected = h_bar + 0.95**day * (h0 - h_bar)
        # one step's squared return, averaged over paths, in daily units
        assert r2[:, day * per_day].mean() / f == pytest.approx(expected, rel=0.05)


def test_garch_t_has_fat_tails_and_clustered_volatility():
    daily = np.diff(np.log(garch_t_paths(100.0, GARCH, 500, DAY_S, 400, rng(5))), axis=1)
    calm = np.diff(np.log(gbm_paths(100.0, 0.27, 0.0, 500, DAY_S, 400, rng(5))), axis=1)
    # t(8) shocks alone have kurtosis 3 + 6 / (8 - 4) = 4.5; GARCH mixing adds more
    assert stats.kurtosis(daily.ravel(), fisher=False) > 4.5
    assert stats.kurtosis(calm.ravel(), fisher=False) == pytest.approx(3.0, abs=0.1)

    def lag1_autocorrelation_of_squares(r):
        s = r**2 - (r**2).mean()
        return np.sum(s[:, 1:] * s[:, :-1]) / np.sum(s * s)

    assert lag1_autocorrelation_of_squares(daily) > 0.1  # volatility clusters
    assert abs(lag1_autocorrelation_of_squares(calm)) < 0.01


def test_integrated_garch_needs_a_starting_variance():
    igarch = GarchParams(omega_daily=1e-5, alpha=0.1, beta=0.9, nu=4.0)
    assert igarch.variance_daily is None
    with pytest.raises(SimulationInputError) as err:
        garch_t_paths(100.0, igarch, 10, 3600, 10, rng())
    assert err.value.field == "variance0_daily"
    paths = garch_t_paths(100.0, igarch, 10, 3600, 10, rng(), variance0_daily=1e-3)
    assert np.all(np.isfinite(paths))


@pytest.mark.parametrize(
    "make",
    [
        lambda r: gbm_paths(100.0, 0.6, 0.0, 50, 3600, 64, r),
        lambda r: merton_paths(100.0, 0.6, 0.0, JumpParams(20.0, -0.05, 0.1), 50, 3600, 64, r),
        lambda r: garch_t_paths(100.0, GARCH, 50, 3600, 64, r),
    ],
)
def test_same_seed_same_paths_bit_for_bit(make):
    assert np.array_equal(make(rng(42)), make(rng(42)))
    assert not np.array_equal(make(rng(42)), make(rng(43)))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"spot0": 0.0}, "spot0"),
        ({"vol_annual": -0.1}, "vol_annual"),
        ({"n_steps": 0}, "n_steps"),
        ({"dt_s": float("nan")}, "dt_s"),
        ({"n_paths": 2.5}, "n_paths"),
        ({"rng": [np.random.default_rng(1)]}, "rng"),
        ({"rng": 42}, "rng"),
    ],
)
def test_gbm_names_the_bad_argument(kwargs, field):
    args = {"spot0": 1.0, "vol_annual": 0.5, "drift_annual": 0.0, "n_steps": 5, "dt_s": 60, "n_paths": 3}
    args["rng"] = np.random.default_rng(1)
    with pytest.raises(SimulationInputError) as err:
        gbm_paths(**(args | kwargs))
    assert err.value.field == field


def test_garch_rejects_steps_longer_than_a_day_and_bad_params():
    with pytest.raises(SimulationInputError) as err:
        garch_t_paths(100.0, GARCH, 5, 2 * DAY_S, 3, rng())
    assert err.value.field == "dt_s"
    with pytest.raises(SimulationInputError) as err:
        GarchParams(omega_daily=1e-5, alpha=0.2, beta=0.85, nu=5.0)
    assert err.value.field == "beta"
    with pytest.raises(SimulationInputError) as err:
        GarchParams(omega_daily=1e-5, alpha=0.1, beta=0.85, nu=2.0)
    assert err.value.field == "nu"


def test_implied_vol_rises_as_price_falls():
    spot = np.array([[100.0, 90.0, 50.0, 20.0, 120.0]])
    vol = implied_vol_path(spot, 0.5, vol_floor_annual=0.2, vol_cap_annual=3.0)
    # 0.5 * (S/100)^-2.5: 0.5, 0.5 * 0.9^-2.5 = 0.6503, 0.5 * 2^2.5 = 2.8284, cap 3.0, 0.5 * 1.2^-2.5 = 0.3044
    assert vol[0] == pytest.approx([0.5, 0.5 * 0.9**-2.5, 0.5 * 2**2.5, 3.0, 0.5 * 1.2**-2.5])
    assert BTC_CRASH_SPOT_VOL_BETA == 2.5
    floor = implied_vol_path(np.array([100.0, 400.0]), 0.5, vol_floor_annual=0.2, vol_cap_annual=3.0)
    assert floor[1] == 0.2  # 0.5 * 4^-2.5 = 0.0156, floored


def test_implied_vol_follows_realized_vol_above_the_spot_vol_level():
    spot = np.array([100.0, 100.0, 100.0])
    realized = np.array([0.4, 1.5, 0.5])
    vol = implied_vol_path(
        spot, 0.5, vol_floor_annual=0.1, vol_cap_annual=3.0, realized_vol_annual=realized, realized_weight=0.5
    )
    # base 0.5 everywhere; only realized above it counts: 0.5, 0.5 + 0.5 * (1.5 - 0.5) = 1.0, 0.5
    assert vol.tolist() == pytest.approx([0.5, 1.0, 0.5])


def test_ewma_realized_vol_by_hand():
    # one hourly move of 1%: r^2 annualized = 0.01^2 * 8760 = 0.876; half-life 1 h: keep 1/2
    # var = 0.5 * 0.5^2 + 0.5 * 0.876 = 0.563, vol = 0.75033
    spot = np.array([100.0, 100.0 * np.exp(0.01)])
    rv = ewma_realized_vol(spot, 3600, 3600, 0.5)
    assert rv.tolist() == pytest.approx([0.5, np.sqrt(0.5 * 0.25 + 0.5 * 0.876)])


def test_crash_paths_feel_vega():
    # whichever paths end below their start end with implied vol above vol0
    paths = gbm_paths(100.0, 0.6, -5.0, 48, 3600, 100, rng())
    vol = implied_vol_path(paths, 0.6, vol_floor_annual=0.2, vol_cap_annual=3.0)
    fell = paths[:, -1] < paths[:, 0]
    assert np.all(vol[fell, -1] > 0.6)

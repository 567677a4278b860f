"""Price and implied-volatility paths for the stress simulator.

Every price path is an array of shape (n_paths, n_steps + 1) that starts at `spot0`, one column per
`dt_s` seconds; years are seconds / (365 * 86400), as in the pricer. Pure: no I/O, and randomness
only from the generator(s) passed as `rng`:
- one `numpy.random.Generator` draws all paths at once (fastest);
- a sequence of one Generator per path (`seeds.path_rngs`) makes each path depend on its own seed
  only, so splitting paths across workers does not change a single number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from margin_engine.pricing.black76 import SECONDS_PER_YEAR
from margin_engine.simulation._checks import (
    count,
    finite,
    fraction,
    non_negative,
    positive,
    positive_array,
    same_shape,
)
from margin_engine.simulation.errors import SimulationInputError

SECONDS_PER_DAY = 86400

# d ln(implied vol) / d ln(spot) = -beta in a crypto crash. FTX, November 2022: BTC short-dated ATM
# implied vol went from 50% to about 90% once it settled (Kaiko chart of 2022-11-10, reported by
# Finbold) while BTC fell from about 20,900 (2022-11-07) to 16,300-16,700 (2022-11-10 closes in
# examples/data/btc-usd-1h-2022-11.csv): ln(90/50) / ln(20900/16500) = 0.588 / 0.236 = 2.5. The peak
# (130% against the 15,588 low) gives 3.3. The venues' own stress corners agree: Deribit PM pairs
# -16% with vol x1.5 (ln 1.5 / -ln 0.84 = 2.3), Lyra PMRM -20% with vol x1.6 (2.1).
BTC_CRASH_SPOT_VOL_BETA = 2.5

Rng = np.random.Generator | Sequence[np.random.Generator]
Draw = Callable[[np.random.Generator, int | tuple[int, int]], np.ndarray]


@dataclass(frozen=True)
class JumpParams:
    """Merton (1976) jumps: a Poisson count with `intensity_annual` jumps a year, each multiplying the
    price by exp(Y), Y ~ Normal(mean_log, vol_log^2)."""

    intensity_annual: float
    mean_log: float
    vol_log: float

    def __post_init__(self) -> None:
        non_negative(self.intensity_annual, "intensity_annual")
        finite(self.mean_log, "mean_log")
        non_negative(self.vol_log, "vol_log")

    @property
    def mean_jump_fraction(self) -> float:
        """k = E[exp(Y) - 1], the average relative jump the drift must compensate."""
        return float(np.expm1(self.mean_log + 0.5 * self.vol_log**2))


@dataclass(frozen=True)
class GarchParams:
    """GARCH(1,1) on daily log returns (Bollerslev 1986) with unit-variance Student-t shocks:
    h_{t+1} = omega_daily + alpha * r_t^2 + beta * h_t, r_t = sqrt(h_t) * z_t, z_t ~ t(nu) scaled
    to variance 1. omega_daily is in (daily log return)^2, not percent^2. alpha + beta = 1 is
    allowed: fits to BTC and ETH daily returns land there (integrated GARCH, Engle & Bollerslev
    1986), which is strictly stationary but has no long-run variance (Nelson 1990)."""

    omega_daily: float
    alpha: float
    beta: float
    nu: float

    def __post_init__(self) -> None:
        positive(self.omega_daily, "omega_daily")
        non_negative(self.alpha, "alpha")
        non_negative(self.beta, "beta")
        if self.alpha + self.beta > 1:
            raise SimulationInputError("beta", f"alpha + beta must be <= 1, got {self.alpha + self.beta}")
        if finite(self.nu, "nu") <= 2:
            raise SimulationInputError("nu", f"must be > 2 so the shocks have a variance, got {self.nu!r}")

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def variance_daily(self) -> float | None:
        """The unconditional daily variance omega / (1 - alpha - beta); None when integrated."""
        return self.omega_daily / (1.0 - self.persistence) if self.persistence < 1 else None


def gbm_paths(
    spot0: float, vol_annual: float, drift_annual: float, n_steps: int, dt_s: float, n_paths: int, rng: Rng
) -> np.ndarray:
    """Geometric Brownian motion, sampled exactly: ln S steps by (mu - sigma^2/2) dt + sigma sqrt(dt) Z,
    so E[S_t] = spot0 * exp(drift_annual * t) at any step size."""
    spot0, dt_years = _check_grid(spot0, n_steps, dt_s, n_paths, rng)
    non_negative(vol_annual, "vol_annual")
    finite(drift_annual, "drift_annual")
    z = _draw(rng, n_paths, n_steps, _normal)
    log_returns = (drift_annual - 0.5 * vol_annual**2) * dt_years + vol_annual * np.sqrt(dt_years) * z
    return _from_log_returns(spot0, log_returns)


def merton_paths(
    spot0: float,
    vol_annual: float,
    drift_annual: float,
    jumps: JumpParams,
    n_steps: int,
    dt_s: float,
    n_paths: int,
    rng: Rng,
) -> np.ndarray:
    """Merton (1976) jump-diffusion: GBM plus N ~ Poisson(lambda dt) jumps per step. The sum of N
    normal log-jumps is Normal(N m, N v^2), so each step is exact. The drift is compensated by
    -lambda k, so E[S_t] = spot0 * exp(drift_annual * t) as for GBM."""
    spot0, dt_years = _check_grid(spot0, n_steps, dt_s, n_paths, rng)
    non_negative(vol_annual, "vol_annual")
    finite(drift_annual, "drift_annual")
    lam = jumps.intensity_annual
    z = _draw(rng, n_paths, n_steps, _normal)
    n_jumps = _draw(rng, n_paths, n_steps, lambda g, size: g.poisson(lam * dt_years, size).astype(np.float64))
    z_jump = _draw(rng, n_paths, n_steps, _normal)
    drift = (drift_annual - lam * jumps.mean_jump_fraction - 0.5 * vol_annual**2) * dt_years
    diffusion = vol_annual * np.sqrt(dt_years) * z
    jump = n_jumps * jumps.mean_log + np.sqrt(n_jumps) * jumps.vol_log * z_jump
    return _from_log_returns(spot0, drift + diffusion + jump)


def garch_t_paths(
    spot0: float,
    params: GarchParams,
    n_steps: int,
    dt_s: float,
    n_paths: int,
    rng: Rng,
    variance0_daily: float | None = None,
) -> np.ndarray:
    """GARCH(1,1)-t log returns with zero mean (as fitted by `history.fit_garch_t`), at a step of
    dt_s <= 1 day, starting from `variance0_daily` (default: the unconditional variance; required
    when alpha + beta = 1).

    Scaling from daily to a step of f = dt_s / 86400 days (a GARCH is not closed under temporal
    disaggregation, Drost & Nijman 1993, so this is a choice, exact at f = 1), with p = alpha + beta:
      r_k = sqrt(f h_k) z_k                    h: the daily-equivalent variance
      h_{k+1} = omega_f + alpha_f (r_k^2 / f) + beta_f h_k
      alpha_f + beta_f = p^f                   a shock decays per day as in the daily model
      alpha_f = alpha f                        a day's news (r^2 / f over 1/f steps) weighs alpha
      omega_f = omega (1 - p^f) / (1 - p)      keeps the long-run variance omega / (1 - p), so a
                                               day's variance is that and a step's f times it
                                               (omega f when p = 1)
    """
    spot0, _ = _check_grid(spot0, n_steps, dt_s, n_paths, rng)
    if dt_s > SECONDS_PER_DAY:
        raise SimulationInputError("dt_s", f"must be <= {SECONDS_PER_DAY} (one day) for the GARCH scaling, got {dt_s}")
    if variance0_daily is None and params.variance_daily is None:
        raise SimulationInputError("variance0_daily", "is required when alpha + beta = 1 (no long-run variance)")
    h0 = params.variance_daily if variance0_daily is None else positive(variance0_daily, "variance0_daily")
    f = dt_s / SECONDS_PER_DAY
    p = params.persistence
    persistence_f = p**f
    alpha_f = params.alpha * f
    beta_f = persistence_f - alpha_f
    omega_f = params.omega_daily * ((1.0 - persistence_f) / (1.0 - p) if p < 1 else f)
    t_scale = np.sqrt((params.nu - 2.0) / params.nu)  # standard_t has variance nu / (nu - 2)
    z = _draw(rng, n_paths, n_steps, lambda g, size: g.standard_t(params.nu, size)) * t_scale
    log_returns = np.empty((n_paths, n_steps))
    h = np.full(n_paths, h0)
    for k in range(n_steps):  # a recursion: each step's variance needs the previous return
        r = np.sqrt(f * h) * z[:, k]
        log_returns[:, k] = r
        h = omega_f + alpha_f * (r * r / f) + beta_f * h
    return _from_log_returns(spot0, log_returns)


def ewma_realized_vol(spot_path, dt_s: float, half_life_s: float, vol0_annual: float) -> np.ndarray:
    """Annualized realized vol along each path: an EWMA of squared log returns (RiskMetrics 1996
    style, weight halving every `half_life_s`), starting at vol0_annual; same shape as spot_path."""
    spot = positive_array(spot_path, "spot_path")
    dt_years = positive(dt_s, "dt_s") / SECONDS_PER_YEAR
    keep = 2.0 ** (-dt_s / positive(half_life_s, "half_life_s"))
    variance = np.empty_like(spot)
    variance[..., 0] = positive(vol0_annual, "vol0_annual") ** 2
    r2_annual = np.diff(np.log(spot), axis=-1) ** 2 / dt_years
    for k in range(r2_annual.shape[-1]):  # a recursion, like the EWMA in calibration.price_range
        variance[..., k + 1] = keep * variance[..., k] + (1.0 - keep) * r2_annual[..., k]
    return np.sqrt(variance)


def implied_vol_path(
    spot_path,
    vol0_annual: float,
    *,
    vol_floor_annual: float,
    vol_cap_annual: float,
    spot_vol_beta: float = BTC_CRASH_SPOT_VOL_BETA,
    realized_vol_annual=None,
    realized_weight: float = 0.5,
) -> np.ndarray:
    """ATM implied vol that rises as the price falls, so option books feel vega in a crash:
      base_t = vol0 * (S_t / S_0)^(-beta)                   log-linear spot-vol relation
      vol_t  = clip(base_t + w * max(rv_t - base_t, 0), floor, cap)
    The optional realized term (rv from `ewma_realized_vol`) pulls implied vol a share w of the way
    up to realized vol when realized runs above it, as in March 2020 (1-month ATM 184% against
    10-day realized above 300% on 16 March, Skew data). Time runs along the last axis."""
    spot = positive_array(spot_path, "spot_path")
    vol0 = positive(vol0_annual, "vol0_annual")
    floor = positive(vol_floor_annual, "vol_floor_annual")
    if positive(vol_cap_annual, "vol_cap_annual") < floor:
        raise SimulationInputError("vol_cap_annual", f"must be >= vol_floor_annual {floor}, got {vol_cap_annual}")
    rv = None
    if realized_vol_annual is not None:
        rv = positive_array(realized_vol_annual, "realized_vol_annual")
        same_shape(rv, "realized_vol_annual", spot.shape, "spot_path")
    return spot_vol(spot / spot[..., :1], vol0, floor, vol_cap_annual, spot_vol_beta, rv, realized_weight)


def spot_vol(spot_ratio, vol0_annual, vol_floor_annual, vol_cap_annual, spot_vol_beta, realized_vol_annual, weight):
    """The relation of `implied_vol_path` at given points: spot_ratio = S_t / S_0, realized vol
    or None (checked by the caller; the simulator calls it step by step on the traded mid)."""
    base = vol0_annual * spot_ratio ** (-finite(spot_vol_beta, "spot_vol_beta"))
    if realized_vol_annual is not None:
        base = base + fraction(weight, "realized_weight") * np.maximum(realized_vol_annual - base, 0.0)
    return np.clip(base, vol_floor_annual, vol_cap_annual)


def _normal(generator: np.random.Generator, size) -> np.ndarray:
    return generator.standard_normal(size)


def _check_grid(spot0: float, n_steps: int, dt_s: float, n_paths: int, rng: Rng) -> tuple[float, float]:
    """Checks the arguments every generator shares; returns spot0 and the step in years."""
    positive(spot0, "spot0")
    count(n_steps, "n_steps")
    count(n_paths, "n_paths")
    positive(dt_s, "dt_s")
    if not isinstance(rng, np.random.Generator):
        if isinstance(rng, str | bytes) or not isinstance(rng, Sequence):
            raise SimulationInputError("rng", f"must be a numpy Generator or one per path, got {type(rng).__name__}")
        if len(rng) != n_paths or not all(isinstance(g, np.random.Generator) for g in rng):
            raise SimulationInputError("rng", f"needs exactly one numpy Generator per path ({n_paths}), got {len(rng)}")
    return float(spot0), dt_s / SECONDS_PER_YEAR


def _draw(rng: Rng, n_paths: int, n_steps: int, draw: Draw) -> np.ndarray:
    """(n_paths, n_steps) variates: all at once from one generator, or row by row from one per path
    (each path's generator then draws the same kinds of variates in the same order)."""
    if isinstance(rng, np.random.Generator):
        return draw(rng, (n_paths, n_steps))
    return np.stack([draw(generator, n_steps) for generator in rng])


def _from_log_returns(spot0: float, log_returns: np.ndarray) -> np.ndarray:
    path = np.empty((log_returns.shape[0], log_returns.shape[1] + 1))
    path[:, 0] = spot0
    path[:, 1:] = spot0 * np.exp(np.cumsum(log_returns, axis=1))
    return path


def ohlc_bridge(start: float, high, low, close, open_, steps_per_bar: int, rng: np.random.Generator) -> np.ndarray:
    """A path through OHLC bars that keeps their wicks: 1 + n_bars * steps_per_bar prices, from
    `start` (the close before the first bar) through each bar's high and low to its close.

    Each bar visits its extremes in the order of the shorter path (a bar that closes above its open
    goes open, low, high, close; else open, high, low, close: the usual intra-bar convention, the
    two orders' lengths differ by 2 |close - open|), at times drawn uniformly inside the bar; between
    these knots the log price is a Brownian bridge (pinned at both ends) with the bar's Parkinson
    (1980) variance ln(high / low)^2 / (4 ln 2) spread over its steps, kept within [low, high] so
    the wick is hit and never exceeded."""
    n = count(steps_per_bar, "steps_per_bar")
    if n < 3:
        raise SimulationInputError("steps_per_bar", f"a bar needs >= 3 steps to visit its high and low, got {n}")
    hi, lo, cl, op = (
        positive_array(v, k) for v, k in ((high, "high"), (low, "low"), (close, "close"), (open_, "open"))
    )
    for v, k in ((lo, "low"), (cl, "close"), (op, "open")):
        same_shape(v, k, hi.shape, "high")
    if np.any(lo > np.minimum(op, cl)) or np.any(hi < np.maximum(op, cl)):
        raise SimulationInputError("bars", "each bar needs low <= open, close <= high")
    bars = len(hi)
    out = np.empty(1 + bars * n)
    out[0] = positive(start, "start")
    grid = np.arange(n + 1, dtype=float)
    before = float(start)
    first_knot = rng.integers(1, n - 1, size=bars)  # in [1, n - 2]
    u = rng.random(bars)
    walks = np.concatenate([np.zeros((bars, 1)), np.cumsum(rng.standard_normal((bars, n)), axis=1)], axis=1)
    for i in range(bars):
        a = int(first_knot[i])
        b = a + 1 + int(u[i] * (n - 1 - a))  # in [a + 1, n - 1]
        extremes = (lo[i], hi[i]) if cl[i] >= op[i] else (hi[i], lo[i])
        knots = np.array([0, a, b, n], dtype=float)
        levels = np.log([before, *extremes, cl[i]])
        w = walks[i]
        pinned = w - np.interp(grid, knots, w[knots.astype(int)])  # zero at every knot
        sigma_step = math.log(hi[i] / lo[i]) / math.sqrt(4.0 * math.log(2.0) * n)
        log_path = np.interp(grid, knots, levels) + sigma_step * pinned
        floor, cap = math.log(min(lo[i], before)), math.log(max(hi[i], before))
        out[1 + i * n : 1 + (i + 1) * n] = np.exp(np.clip(log_path[1:], floor, cap))
        before = float(cl[i])
    return out

"""Margin backtests: does the maintenance margin cover one-day losses as often as it claims?

A day is an exceedance when a reference portfolio loses more than the maintenance margin required
at the start of that day. With a target coverage c (0.99: margin should cover 99% of days) the
exceedances should be rare (rate 1 - c) and should not cluster:
- Kupiec (1995) proportion of failures: LR = -2 ln[(1-p)^(T-x) p^x / ((1-x/T)^(T-x) (x/T)^x)],
  p = 1 - c, chi-square with 1 degree of freedom under the null that the rate is p;
- Christoffersen (1998) independence: a first-order Markov chain of exceedances against an
  independent one, chi-square(1); conditional coverage LR_cc = LR_pof + LR_ind, chi-square(2);
- the Basel Committee's (1996) traffic light for the count.
Arrays may hold several portfolios: days run along the last axis, the results keep the leading ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import xlogy

from margin_engine.simulation._checks import float_array, non_negative_array, same_shape
from margin_engine.simulation.errors import SimulationInputError

# Basel Committee (1996), "Supervisory framework for the use of backtesting": yellow from the count
# whose cumulative binomial probability reaches 95%, red from 99.99% (0-4 / 5-9 / 10+ of 250 at 99%).
YELLOW_FROM_CUMULATIVE = 0.95
RED_FROM_CUMULATIVE = 0.9999


@dataclass(frozen=True)
class Kupiec:
    n_obs: np.ndarray
    n_exceed: np.ndarray
    expected: np.ndarray  # n_obs * (1 - coverage)
    rate: np.ndarray  # n_exceed / n_obs
    lr: np.ndarray
    p_value: np.ndarray


@dataclass(frozen=True)
class Independence:
    n00: np.ndarray  # no exceedance followed by none
    n01: np.ndarray  # none followed by one
    n10: np.ndarray
    n11: np.ndarray  # an exceedance followed by another
    lr: np.ndarray
    p_value: np.ndarray


@dataclass(frozen=True)
class MarginBacktest:
    coverage: float
    exceeded: np.ndarray  # bool, one per portfolio and day
    kupiec: Kupiec
    independence: Independence
    conditional_coverage_lr: np.ndarray
    conditional_coverage_p_value: np.ndarray
    zone: np.ndarray  # "green", "yellow" or "red"

    def summary(self) -> str:
        """One line per portfolio: count against expected, rate, both tests and the zone."""
        header = "portfolio  exceed  expected  rate     Kupiec LR  p      indep LR  p      cc p   zone"
        lines = [f"margin backtest at {self.coverage:.2%} coverage", header]
        k, ind = self.kupiec, self.independence
        for i in np.ndindex(k.n_exceed.shape):
            label = ",".join(map(str, i)) or "0"
            lines.append(
                f"{label:<9}  {int(k.n_exceed[i]):>6}  {float(k.expected[i]):>8.2f}  {float(k.rate[i]):>7.3%}  "
                f"{float(k.lr[i]):>9.3f}  {float(k.p_value[i]):.3f}  {float(ind.lr[i]):>8.3f}  "
                f"{float(ind.p_value[i]):.3f}  {float(self.conditional_coverage_p_value[i]):.3f}  {self.zone[i]}"
            )
        return "\n".join(lines)


def exceedances(pnl_usd, margin_usd) -> np.ndarray:
    """True on days when the loss (-P&L) is larger than the margin held at the start of the day."""
    pnl = float_array(pnl_usd, "pnl_usd")
    margin = non_negative_array(margin_usd, "margin_usd")
    same_shape(margin, "margin_usd", pnl.shape, "pnl_usd")
    return -pnl > margin


def kupiec_pof(n_exceed, n_obs, coverage: float) -> Kupiec:
    """Kupiec's proportion-of-failures likelihood ratio; 0 ln 0 = 0, so x = 0 and x = T are defined."""
    p = _failure_probability(coverage)
    x, t = _counts(n_exceed, n_obs)
    rate = x / t
    log_null = xlogy(t - x, 1.0 - p) + xlogy(x, p)
    log_alt = xlogy(t - x, 1.0 - rate) + xlogy(x, rate)
    lr = np.maximum(-2.0 * (log_null - log_alt), 0.0)  # >= 0 in exact arithmetic
    return Kupiec(t, x, t * p, rate, lr, stats.chi2.sf(lr, 1))


def christoffersen_independence(exceeded) -> Independence:
    """Christoffersen's test that an exceedance today does not change the chance of one tomorrow:
    pi0 = n01 / (n00 + n01), pi1 = n11 / (n10 + n11) against one pi for both (days on the last axis)."""
    hit = np.asarray(exceeded)
    if hit.dtype != np.bool_ or hit.ndim < 1 or hit.shape[-1] < 2:
        raise SimulationInputError("exceeded", "must be a bool array with at least 2 days on the last axis")
    before, after = hit[..., :-1], hit[..., 1:]
    n00 = np.sum(~before & ~after, axis=-1)
    n01 = np.sum(~before & after, axis=-1)
    n10 = np.sum(before & ~after, axis=-1)
    n11 = np.sum(before & after, axis=-1)
    pi = (n01 + n11) / (n00 + n01 + n10 + n11)
    pi0 = np.divide(n01, n00 + n01, out=np.zeros(n01.shape), where=(n00 + n01) > 0)
    pi1 = np.divide(n11, n10 + n11, out=np.zeros(n11.shape), where=(n10 + n11) > 0)
    log_null = xlogy(n00 + n10, 1.0 - pi) + xlogy(n01 + n11, pi)
    log_alt = xlogy(n00, 1.0 - pi0) + xlogy(n01, pi0) + xlogy(n10, 1.0 - pi1) + xlogy(n11, pi1)
    lr = np.maximum(-2.0 * (log_null - log_alt), 0.0)
    return Independence(n00, n01, n10, n11, lr, stats.chi2.sf(lr, 1))


def basel_zone(n_exceed, n_obs, coverage: float) -> np.ndarray:
    """ "green", "yellow" or "red" by the cumulative binomial probability of the count."""
    x, t = _counts(n_exceed, n_obs)
    cumulative = stats.binom.cdf(x, t, _failure_probability(coverage))
    return np.where(
        cumulative >= RED_FROM_CUMULATIVE, "red", np.where(cumulative >= YELLOW_FROM_CUMULATIVE, "yellow", "green")
    )


TEST_SIZE = 0.05  # the tests' significance level for the verdict


def coverage_verdict(kupiec: Kupiec, coverage: float, test_size: float = TEST_SIZE) -> np.ndarray:
    """What Kupiec says in words: "too many exceedances" or "too few (conservative)" when it
    rejects at `test_size` (its test is two-sided), else "consistent". The Basel zone counts
    exceedances only, so a green zone beside "too few" is no contradiction: the margin is larger
    than its coverage claims, not smaller."""
    p = _failure_probability(coverage)
    rejected = kupiec.p_value < test_size
    return np.where(
        rejected & (kupiec.rate > p), "too many exceedances", np.where(rejected, "too few (conservative)", "consistent")
    )


def backtest_margin(pnl_usd, margin_usd, coverage: float) -> MarginBacktest:
    """All of the above for one-day P&L against start-of-day maintenance margin."""
    hit = exceedances(pnl_usd, margin_usd)
    n_obs = np.full(hit.shape[:-1], hit.shape[-1])
    kupiec = kupiec_pof(hit.sum(axis=-1), n_obs, coverage)
    independence = christoffersen_independence(hit)
    cc_lr = kupiec.lr + independence.lr  # common practice: Kupiec on all T days (Jorion, Value at Risk, 3rd ed.)
    zone = basel_zone(kupiec.n_exceed, n_obs, coverage)
    return MarginBacktest(coverage, hit, kupiec, independence, cc_lr, stats.chi2.sf(cc_lr, 2), zone)


def _failure_probability(coverage: float) -> float:
    if isinstance(coverage, bool) or not isinstance(coverage, float | int) or not 0 < coverage < 1:
        raise SimulationInputError("coverage", f"must be in (0, 1), e.g. 0.99, got {coverage!r}")
    return 1.0 - float(coverage)


def _counts(n_exceed, n_obs) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(n_exceed)
    t = np.asarray(n_obs)
    if not (np.issubdtype(x.dtype, np.integer) and np.issubdtype(t.dtype, np.integer)):
        raise SimulationInputError("n_exceed", "counts must be integers")
    if np.any(t < 1):
        raise SimulationInputError("n_obs", "must be >= 1")
    if np.any((x < 0) | (x > t)):
        raise SimulationInputError("n_exceed", "must be in [0, n_obs]")
    x, t = np.broadcast_arrays(x, t)
    return x.astype(np.int64), t.astype(np.int64)

"""Vectorized Black-76 implied volatility.

The margin engine backs volatilities out of whole option chains, so the solver
runs Newton's method on all options at once.  Every element keeps a bracket
[lo, hi] around its root and falls back to bisection whenever a Newton step
leaves it, so a bad step can slow an element down but never send it astray.

The solver works on the out-of-the-money side: an in-the-money option is
replaced by its time value, which put-call parity (Hull; Black 1976) turns into
the price of the out-of-the-money option on the same strike.  Its undiscounted
value g(s), with s = vol * sqrt(T) the total standard deviation, rises from 0
at s = 0 to min(F, K) as s -> infinity and has its inflection point at
s_c = sqrt(2 |ln(F/K)|) (Manaster and Koehler, J. Finance 37, 1982), where the
search starts.  Below g(s_c) Newton runs on ln g as a function of 1/s**2, above
it on -ln(min(F, K) - g) as a function of s**2; both are close to linear in
those variables, so Newton converges in a few steps even for prices many orders
of magnitude below the forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .black76 import _as_float, _broadcast, _checked_flag, _index, _invalid, _requirement

BELOW_INTRINSIC = "price below intrinsic value"
ABOVE_UPPER_BOUND = "price above the no-arbitrage upper bound"
EXPIRED_WITH_TIME_VALUE = "time_years is 0 but price is above intrinsic value"
NOT_CONVERGED = "did not converge"

_SQRT_2PI = np.sqrt(2.0 * np.pi)
_EPS = np.finfo(np.float64).eps
_INPUT_NAMES = ("price", "forward", "strike", "time_years", "rate")
_ALL_REASONS = (BELOW_INTRINSIC, ABOVE_UPPER_BOUND, EXPIRED_WITH_TIME_VALUE, NOT_CONVERGED) + tuple(
    _requirement(name) for name in _INPUT_NAMES
)
_REASON_DTYPE = f"<U{max(map(len, _ALL_REASONS))}"


class ImpliedVolError(ValueError):
    """Raised by implied_vol when some element has no implied volatility.

    ``reasons`` has the shape of the broadcast inputs, "" where the element was fine.
    """

    def __init__(self, message: str, reasons: np.ndarray):
        super().__init__(message)
        self.reasons = reasons


@dataclass(frozen=True)
class ImpliedVolResult:
    """Per-element outcome, for callers that must keep going when some quotes are bad.

    ``iterations`` is the number of solver rounds the slowest element needed.
    """

    vol: np.ndarray
    ok: np.ndarray
    reason: np.ndarray
    iterations: int


def implied_vol_result(
    price, forward, strike, time_years, rate, is_call, *, tol=1e-12, max_iter=100
) -> ImpliedVolResult:
    """Black-76 implied volatility of discounted option prices, element by element.

    ``tol`` is an absolute tolerance on the volatility; where the price itself
    pins the volatility down less tightly (tiny vega), the solver stops once its
    steps fall to what rounding of the price alone would cause.  A price equal to
    the discounted intrinsic value up to that rounding has implied volatility 0.
    Failed elements get vol NaN, ok False and a reason instead of raising.
    """
    inputs = (price, forward, strike, time_years, rate)
    arrays = _broadcast(*(_as_float(n, a) for n, a in zip(_INPUT_NAMES, inputs, strict=True)), _checked_flag(is_call))
    shape = arrays[0].shape
    p, f, k, t, r, call = (a.ravel() for a in arrays)

    reason = np.full(p.size, "", dtype=_REASON_DTYPE)
    for name, arr in zip(_INPUT_NAMES, (p, f, k, t, r), strict=True):
        reason[(reason == "") & _invalid(name, arr)] = _requirement(name)

    vol = np.full(p.size, np.nan)
    valid = np.flatnonzero(reason == "")
    p, f, k, t, r, call = (a[valid] for a in (p, f, k, t, r, call))
    intrinsic = np.maximum(np.where(call, f - k, k - f), 0.0)
    time_value = p * np.exp(r * t) - intrinsic
    upper = np.minimum(f, k)  # undiscounted ceiling of the out-of-the-money option
    # How well any pricer can know the undiscounted price: an in-the-money price comes
    # from cancelling terms of size F and K, an out-of-the-money one only rounds itself.
    price_noise = 4 * _EPS * np.where(intrinsic > 0, np.maximum(f, k), time_value)
    at_intrinsic = np.abs(time_value) <= price_noise

    verdict = np.full(valid.size, "", dtype=_REASON_DTYPE)
    verdict[(time_value < 0) & ~at_intrinsic] = BELOW_INTRINSIC
    verdict[time_value >= upper] = ABOVE_UPPER_BOUND
    verdict[(t == 0) & (verdict == "") & ~at_intrinsic] = EXPIRED_WITH_TIME_VALUE
    vol[valid[(verdict == "") & at_intrinsic]] = 0.0

    solve = (verdict == "") & ~at_intrinsic
    sqrt_t = np.sqrt(t[solve])
    total_std, converged, iterations = _solve_total_std(
        time_value[solve], f[solve], k[solve], upper[solve], tol * sqrt_t, price_noise[solve], max_iter
    )
    vol[valid[solve]] = np.where(converged, total_std / sqrt_t, np.nan)
    verdict[np.flatnonzero(solve)[~converged]] = NOT_CONVERGED
    reason[valid] = verdict

    return ImpliedVolResult(
        vol=vol.reshape(shape),
        ok=(reason == "").reshape(shape),
        reason=reason.reshape(shape),
        iterations=iterations,
    )


def implied_vol(price, forward, strike, time_years, rate, is_call, *, tol=1e-12, max_iter=100) -> np.ndarray:
    """Like implied_vol_result, but raise ImpliedVolError instead of returning NaN."""
    result = implied_vol_result(price, forward, strike, time_years, rate, is_call, tol=tol, max_iter=max_iter)
    if not result.ok.all():
        flat = int(np.flatnonzero(~result.ok)[0])
        where = "" if result.ok.ndim == 0 else f" at index {_index(flat, result.ok.shape)}"
        raise ImpliedVolError(f"no implied volatility{where}: {result.reason.flat[flat]}", result.reason)
    return result.vol


def _solve_total_std(target, f, k, upper, tol_std, price_noise, max_iter):
    """Solve g(s) = target for the total standard deviation s of the out-of-the-money option.

    An element stops when its Newton step is below ``tol_std``, machine precision
    of s, or ``price_noise`` divided by vega (the step rounding noise alone would
    cause), or when its bracket is narrower than ``tol_std``.
    Returns (s, converged mask, iterations used).  Requires 0 < target < upper.
    """
    s_out = np.full(target.size, np.nan)
    converged = np.zeros(target.size, dtype=bool)
    x = np.log(f / k)
    side = np.where(x > 0, -1.0, 1.0)  # +1: out-of-the-money call, -1: out-of-the-money put
    s_c = np.sqrt(2.0 * np.abs(x))
    # At the money s_c = 0 and g(0) = 0, so every target lies on the high side.
    high = (s_c == 0) | (target >= _otm_value(x, np.where(s_c > 0, s_c, 1.0), f, k, side))
    # Brenner and Subrahmanyam (Financial Analysts J. 44, 1988): g(s) <= F s / sqrt(2 pi),
    # so this is a lower bound on the root for every strike.
    lo = np.maximum(target * _SQRT_2PI / f, np.where(high, s_c, 0.0))
    hi = np.where(high, np.inf, s_c)
    s = np.where(high, lo, s_c)

    # Objective h = sign * (ln value(s) - ln goal), increasing in s, with
    # value = g (low side) or upper - g = F N(-d1) + K N(d2) (high side, no cancellation).
    sign = np.where(high, -1.0, 1.0)
    a1 = np.where(high, -1.0, side)
    a2 = np.where(high, 1.0, side)
    m = np.where(high, 1.0, side)
    log_goal = np.log(np.where(high, upper - target, target))

    lanes = np.arange(target.size)
    iterations = 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        while lanes.size and iterations < max_iter:
            iterations += 1
            d1 = x / s + 0.5 * s
            d2 = d1 - s
            value = m * (f * ndtr(a1 * d1) - sign * k * ndtr(a2 * d2))
            # A value rounded to <= 0 is below any goal: ln -> -inf keeps the bracket right.
            h = sign * (np.log(np.maximum(value, 0.0)) - log_goal)
            lo = np.where(h < 0, s, lo)
            hi = np.where(h > 0, s, hi)
            # Newton in w = s**-2 (low side) or u = s**2 (high side), where the objective
            # is close to linear: ln g ~ -x**2 / (2 s**2) and ln(upper - g) ~ -s**2 / 8.
            vega = f * np.exp(-0.5 * d1 * d1) / _SQRT_2PI
            newton_ds = h * value / vega
            newton = s * (1.0 + 2.0 * sign * newton_ds / s) ** (-0.5 * sign)
            inside = (newton > lo) & (newton < hi)
            bisection = np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * s)
            limit = np.maximum(np.maximum(tol_std, 4 * _EPS * s), price_noise / vega)
            small = np.abs(newton - s) <= limit
            s = np.where(small | inside, newton, bisection)
            done = small | (hi - lo <= tol_std)

            s_out[lanes[done]] = s[done]
            converged[lanes[done]] = True
            keep = ~done
            lanes, s, lo, hi, x, f, k, sign, a1, a2, m, log_goal, tol_std, price_noise = (
                arr[keep] for arr in (lanes, s, lo, hi, x, f, k, sign, a1, a2, m, log_goal, tol_std, price_noise)
            )
    return s_out, converged, iterations


def _otm_value(x, s, f, k, side):
    """Undiscounted Black value of the out-of-the-money option at total std s > 0."""
    d1 = x / s + 0.5 * s
    return side * (f * ndtr(side * d1) - k * ndtr(side * (d1 - s)))

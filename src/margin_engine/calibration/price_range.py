"""A portfolio-margin price range that follows realized volatility, within bounds.

range_t = clip(quantile * sigma_t * sqrt(horizon_days), floor, cap), then limited to move at most
`max_change_per_day` from one day to the next, so margin rises ahead of stress without jumping.

sigma_t is a one-day-ahead forecast of daily return volatility: EWMA (RiskMetrics, lambda 0.94)
or GARCH(1,1) with Student-t shocks fitted by the `arch` package. The quantile is that of a
unit-variance Student-t with the fitted degrees of freedom (fat tails), or the empirical quantile
of the returns standardized by sigma (filtered historical simulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats

from margin_engine.errors import InputError

RISKMETRICS_LAMBDA = 0.94  # J.P. Morgan RiskMetrics Technical Document (1996), daily data


@dataclass(frozen=True)
class RangeSettings:
    model: Literal["ewma", "garch"] = "garch"
    tail: Literal["student-t", "historical"] = "student-t"
    confidence: float = 0.99  # one-sided: the move the range must cover with this probability
    horizon_days: float = 1.0  # how long closing out takes (liquidation horizon)
    floor: float = 0.05
    cap: float = 0.50
    max_change_per_day: float = 0.01
    ewma_lambda: float = RISKMETRICS_LAMBDA

    def check(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise InputError("confidence", f"must be in (0.5, 1), got {self.confidence}")
        if not 0 < self.horizon_days <= 365:  # NaN and inf fail too
            raise InputError("horizon_days", f"must be in (0, 365] days, got {self.horizon_days}")
        if not 0 < self.floor <= self.cap < 1:
            raise InputError("floor", f"need 0 < floor <= cap < 1, got floor {self.floor}, cap {self.cap}")
        if not 0 < self.max_change_per_day <= 1:
            raise InputError("max_change_per_day", f"must be in (0, 1], got {self.max_change_per_day}")
        if not 0 < self.ewma_lambda < 1:
            raise InputError("ewma_lambda", "must be in (0, 1)")


@dataclass(frozen=True)
class RangeCalibration:
    sigma: np.ndarray  # daily vol forecast for each day after the first return
    raw_range: np.ndarray  # quantile * sigma * sqrt(h), before bounds
    bounded: np.ndarray  # clipped to [floor, cap]
    smoothed: np.ndarray  # rate-limited: the range to use
    quantile: float
    dof: float | None  # Student-t degrees of freedom, when fitted

    @property
    def recommended(self) -> float:
        return float(self.smoothed[-1])


def ewma_sigma(returns: np.ndarray, lam: float) -> np.ndarray:
    """sigma_t^2 = lam * sigma_{t-1}^2 + (1 - lam) * r_{t-1}^2: the forecast for day t uses data to t-1,
    seeded with the variance of the first 30 returns."""
    var = np.empty(len(returns) + 1)
    var[0] = np.var(returns[:30])
    for t, r in enumerate(returns):  # a recursion: each step needs the previous one
        var[t + 1] = lam * var[t] + (1 - lam) * r * r
    return np.sqrt(var[1:])


def garch_sigma(returns: np.ndarray) -> tuple[np.ndarray, float]:
    """GARCH(1,1) with Student-t innovations (arch), in percent for numerical stability; returns
    the one-step-ahead daily vol for each day and the fitted degrees of freedom."""
    from arch import arch_model

    model = arch_model(returns * 100, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    fit = model.fit(disp="off", show_warning=False)
    if fit.convergence_flag != 0:
        raise InputError("model", "GARCH(1,1) did not converge on these prices; try --model ewma")
    params = fit.params
    omega, alpha, beta = params["omega"], params["alpha[1]"], params["beta[1]"]
    cond = fit.conditional_volatility  # sigma_t given data to t-1, for t = 0..n-1
    last = np.sqrt(omega + alpha * returns[-1] ** 2 * 1e4 + beta * cond[-1] ** 2)  # forecast for day n
    return np.append(cond[1:], last) / 100, float(params["nu"])


def rate_limited(values: np.ndarray, max_step: float) -> np.ndarray:
    out = np.empty_like(values)
    out[0] = values[0]
    for t in range(1, len(values)):  # a recursion, like the EWMA
        out[t] = out[t - 1] + np.clip(values[t] - out[t - 1], -max_step, max_step)
    return out


def calibrate_range(returns: np.ndarray, settings: RangeSettings) -> RangeCalibration:
    settings.check()
    if len(returns) < 60:
        raise InputError("file", f"{len(returns)} returns; calibration needs at least 60")
    dof = None
    if settings.model == "garch":
        sigma, dof = garch_sigma(returns)
    else:
        sigma = ewma_sigma(returns, settings.ewma_lambda)
    # sigma[t] forecasts the return after returns[t]; standardize each return by its own forecast
    z = returns[1:] / sigma[:-1]
    if settings.tail == "student-t":
        if dof is None:
            dof, _, _ = stats.t.fit(z, floc=0)
        dof = max(dof, 2.05)
        quantile = float(stats.t.ppf(settings.confidence, dof) * np.sqrt((dof - 2) / dof))
    else:
        quantile = float(np.quantile(np.abs(z), 2 * settings.confidence - 1))
    raw = quantile * sigma * np.sqrt(settings.horizon_days)
    bounded = np.clip(raw, settings.floor, settings.cap)
    return RangeCalibration(
        sigma,
        raw,
        bounded,
        rate_limited(bounded, settings.max_change_per_day),
        quantile,
        None if dof is None else float(dof),
    )

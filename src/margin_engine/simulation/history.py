"""Real prices as simulator input: a crash window replayed as a path, and GARCH-t fitted to history.

The thin I/O shell beside the pure generators in `paths`: CSVs with the header
`time,open,high,low,close,volume` (as in examples/data, see its SOURCES.md), read with
`calibration.prices.read_prices`. A path is made of bar closes (wicks inside a bar are lost), or,
with `intrabar="bridge"`, of steps inside each bar that visit its high and low (`paths.ohlc_bridge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from margin_engine.calibration.prices import read_bars, read_prices
from margin_engine.clock import parse_time
from margin_engine.simulation._checks import count, float_array, positive
from margin_engine.simulation.errors import PriceWindowError, SimulationInputError
from margin_engine.simulation.paths import SECONDS_PER_DAY, GarchParams, ohlc_bridge

MIN_FIT_RETURNS = 250  # about a year of daily returns: fewer leave alpha, beta and nu poorly determined


@dataclass(frozen=True)
class HistoricalPath:
    """spot[0, k] is the close of the bar that opens at time_s[k] (bridge: the price k steps after
    the first close); one path, in the shape of the generators'. `start_s`: when spot[0, 0] was
    the price (the first bar's close), for plots in UTC."""

    time_s: np.ndarray  # Unix seconds, evenly spaced by dt_s
    spot: np.ndarray  # shape (1, len(time_s))
    dt_s: int
    start_s: int = 0


@dataclass(frozen=True)
class GarchFit:
    params: GarchParams
    variance_next_daily: float  # the fitted model's forecast for the day after the data: a start in today's regime
    log_likelihood: float


def historical_path(
    csv_path: Path | str,
    start: str | int | None = None,
    end: str | int | None = None,
    dt_s: int | None = None,
    spot0: float | None = None,
    intrabar: Literal["close", "bridge"] = "close",
    rng: np.random.Generator | None = None,
) -> HistoricalPath:
    """Closes of the bars that open in [start, end] (ISO 8601 with zone, or Unix seconds; inclusive),
    every `dt_s` seconds (a multiple of the bar length; default: every bar), optionally rescaled so the
    path starts at `spot0` (the 2020-03 crash replayed from today's price).

    `intrabar="bridge"`: `dt_s` divides the bar instead, and the path runs from the first bar's close
    through every later bar's low and high (`ohlc_bridge`, drawn from `rng`) at that step."""
    bridge = intrabar == "bridge"
    series = (read_bars if bridge else read_prices)(Path(csv_path))
    lo = series.time_s[0] if start is None else parse_time(start, "start")
    hi = series.time_s[-1] if end is None else parse_time(end, "end")
    keep = (series.time_s >= lo) & (series.time_s <= hi)
    time_s, close = series.time_s[keep], series.close[keep]
    if len(time_s) < 2:
        raise PriceWindowError("start", f"{csv_path} has {len(time_s)} bar(s) in [{start}, {end}]; a path needs 2")
    bar_s = int(time_s[1] - time_s[0])
    gaps = np.flatnonzero(np.diff(time_s) != bar_s)
    if gaps.size:
        raise PriceWindowError("file", f"{csv_path}: bars are not {bar_s} s apart after time {int(time_s[gaps[0]])}")
    step_s = bar_s if dt_s is None else count(dt_s, "dt_s")
    scale = 1.0 if spot0 is None else positive(spot0, "spot0") / close[0]
    if bridge:
        if rng is None:
            raise SimulationInputError("rng", "an intra-bar bridge draws its path: pass a Generator")
        if bar_s % step_s or bar_s // step_s < 3:
            raise PriceWindowError("dt_s", f"must divide the bar length {bar_s} s at least 3 times, got {step_s}")
        high, low, shut, opens = (getattr(series, k)[keep][1:] * scale for k in ("high", "low", "close", "open"))
        spot = ohlc_bridge(close[0] * scale, high, low, shut, opens, bar_s // step_s, rng)
        times = time_s[0] + step_s * np.arange(len(spot))
        return HistoricalPath(times, spot[np.newaxis, :], step_s, int(time_s[0]) + bar_s)
    if step_s % bar_s:
        raise PriceWindowError("dt_s", f"must be a multiple of the bar length {bar_s} s, got {step_s}")
    every = step_s // bar_s
    time_s, close = time_s[::every], close[::every]
    if len(time_s) < 2:
        raise PriceWindowError("dt_s", f"{step_s} s leaves fewer than 2 points in the window")
    return HistoricalPath(time_s, (close * scale)[np.newaxis, :], step_s, int(time_s[0]) + bar_s)


def daily_log_returns(csv_path: Path | str, start: str | int | None = None, end: str | int | None = None) -> np.ndarray:
    """Log returns of daily closes (an hourly file is sampled every 24th bar), for `fit_garch_t`."""
    path = historical_path(csv_path, start, end, dt_s=SECONDS_PER_DAY)
    return np.diff(np.log(path.spot[0]))


def fit_garch_t(returns_daily) -> GarchFit:
    """Zero-mean GARCH(1,1) with Student-t shocks fitted by maximum likelihood with `arch`
    (Bollerslev 1986; Bollerslev 1987 for the t), in percent for numerical stability, as
    `calibration.price_range.garch_sigma` does; parameters returned in decimal units."""
    from arch import arch_model

    returns = float_array(returns_daily, "returns_daily")
    if returns.ndim != 1 or len(returns) < MIN_FIT_RETURNS:
        raise SimulationInputError("returns_daily", f"need a 1-D array of >= {MIN_FIT_RETURNS} returns")
    model = arch_model(returns * 100, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    fit = model.fit(disp="off", show_warning=False)
    if fit.convergence_flag != 0:
        raise SimulationInputError("returns_daily", "GARCH(1,1)-t did not converge on these returns")
    p = fit.params
    alpha = float(p["alpha[1]"])
    beta = min(float(p["beta[1]"]), 1.0 - alpha)  # arch bounds alpha + beta by 1, up to float rounding
    params = GarchParams(float(p["omega"]) / 1e4, alpha, beta, float(p["nu"]))
    variance_next = float(fit.forecast(horizon=1, reindex=False).variance.iloc[-1, 0]) / 1e4
    return GarchFit(params, variance_next, float(fit.loglikelihood))

"""The fundamental price path of a run (a crash window replayed, or a generator) and the implied
vol path that follows it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from margin_engine.calibration.prices import read_prices
from margin_engine.errors import InputError
from margin_engine.simulation.history import historical_path
from margin_engine.simulation.paths import (
    GarchParams,
    JumpParams,
    ewma_realized_vol,
    garch_t_paths,
    gbm_paths,
    implied_vol_path,
    merton_paths,
)
from margin_engine.simulation.scenario import Scenario, Underlying, VolModel


def price_path(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, str, int]:
    """The fundamental path (n_steps + 1 prices), where it came from and the Unix time of its first
    price (a replay's real time; a generated path starts at the scenario's clock)."""
    p = scenario.price
    source = p.kind
    if p.kind == "historical":
        csv = scenario.csv_path()
        if csv is None or not csv.is_file():
            raise InputError("scenario.price.csv", f"no price file at {csv}: a historical replay needs its data")
        hist = historical_path(csv, p.start, p.end, scenario.dt_s, p.spot0_usd, p.intrabar, rng)
        spot = hist.spot[0, : scenario.steps + 1]
        how = f", {scenario.dt_s} s steps through each bar's high and low" if p.intrabar == "bridge" else ", bar closes"
        return _shocked(spot, scenario), f"historical {csv.name} [{p.start}, {p.end}]{how}", hist.start_s
    note = f"generated ({source})"
    spot0 = p.spot0_usd or 60_000.0
    args = (scenario.steps, scenario.dt_s, 1, rng)
    if source == "gbm":
        spot = gbm_paths(spot0, p.vol_annual, p.drift_annual, *args)
    elif source == "merton":
        jumps = JumpParams(p.jump_intensity_annual, p.jump_mean_log, p.jump_vol_log)
        spot = merton_paths(spot0, p.vol_annual, p.drift_annual, jumps, *args)
    else:
        params = GarchParams(p.garch_omega_daily, p.garch_alpha, p.garch_beta, p.garch_nu)
        spot = garch_t_paths(spot0, params, *args)
    return _shocked(spot[0], scenario), note, scenario.start_time_s


def _shocked(spot: np.ndarray, scenario: Scenario) -> np.ndarray:
    p = scenario.price
    out = np.array(spot, dtype=float)
    if p.shock_step is not None and p.shock_step < len(out):
        end = None if p.shock_steps is None else p.shock_step + p.shock_steps
        out[p.shock_step : end] *= 1.0 + p.shock_pct / 100.0
    return out


def underlying_path(scenario: Scenario, u: Underlying, btc: np.ndarray, rng: np.random.Generator):
    """The fundamental path of another underlying (as long as BTC's `btc`) and where it came from:
    its file over the same window (a length that differs is an error: the files must hold the
    same bars), or a GBM path correlated with BTC's log returns (Underlying's docstring)."""
    p = scenario.price
    where = f"scenario.underlyings.{u.name}.csv"
    if p.kind == "historical":
        csv = u.csv_path(scenario.base_dir)
        if csv is None or not csv.is_file():
            raise InputError(where, f"no price file at {csv}: a historical replay needs its data")
        spot = historical_path(csv, p.start, p.end, scenario.dt_s, u.spot0_usd, p.intrabar, rng).spot[0]
        spot = spot[: scenario.steps + 1]
        if len(spot) != len(btc):
            raise InputError(where, f"{csv.name} gives {len(spot)} prices in the window, BTC's file {len(btc)}")
        return spot, f"historical {csv.name} [{p.start}, {p.end}]"
    own = gbm_paths(float(u.spot0_usd or 0.0), u.vol_annual, 0.0, len(btc) - 1, scenario.dt_s, 1, rng)[0]
    shock = _shocked(np.ones(len(btc)), scenario)  # [price]'s shock hits every underlying alike
    beta = u.correlation * u.vol_annual / p.vol_annual if p.vol_annual > 0 else 0.0
    btc_returns = np.diff(np.log(btc)) - np.diff(np.log(shock))
    returns = beta * btc_returns + math.sqrt(1.0 - u.correlation**2) * np.diff(np.log(own))
    spot = own[0] * np.exp(np.concatenate([[0.0], np.cumsum(returns)])) * shock
    return spot, f"generated (GBM, correlation {u.correlation:g} with BTC)"


BASIS_MAX = 0.2  # [market] perp_basis_ratio's bound: a basis beyond it is a bad print, not a market


def basis_path(scenario: Scenario, spot_csv: Path | None, perp_csv: Path | None, start_s: int) -> np.ndarray | None:
    """The perp's basis at each step (perp close / spot close - 1 of the hourly bar the step falls
    in, held through the bar, within +/- BASIS_MAX), from the two files of a replay; None without
    a perp file. Both files must hold every bar of the window."""
    if perp_csv is None:
        return None
    where = "scenario.market.perp_csv"
    if scenario.price.kind != "historical" or spot_csv is None:
        raise InputError(where, "a perp file gives the basis of a historical replay only")
    if not perp_csv.is_file():
        raise InputError(where, f"no perp price file at {perp_csv}: the mark's basis needs its data")
    spot, perp = read_prices(spot_csv), read_prices(perp_csv)
    closes = dict(zip(perp.time_s.tolist(), perp.close.tolist(), strict=True))
    times = start_s + scenario.dt_s * np.arange(scenario.steps + 1)
    bar = np.searchsorted(spot.time_s, times, side="right") - 1  # the bar each step falls in
    out = np.empty(len(times))
    for k, i in enumerate(bar.tolist()):
        t = int(spot.time_s[max(i, 0)])
        if t not in closes:
            raise InputError(where, f"{perp_csv.name} has no bar at {t} (Unix s), which {spot_csv.name} has")
        out[k] = closes[t] / float(spot.close[max(i, 0)]) - 1.0
    return np.clip(out, -BASIS_MAX, BASIS_MAX)


def vol_path(scenario: Scenario, spot: np.ndarray, v: VolModel | None = None) -> np.ndarray:
    v = scenario.vol if v is None else v
    realized = ewma_realized_vol(spot, scenario.dt_s, v.realized_half_life_s, v.vol0_annual)
    return implied_vol_path(
        spot,
        v.vol0_annual,
        vol_floor_annual=v.vol_floor_annual,
        vol_cap_annual=max(v.vol_cap_annual, v.vol_floor_annual),
        spot_vol_beta=v.spot_vol_beta,
        realized_vol_annual=realized,
        realized_weight=v.realized_weight,
    )

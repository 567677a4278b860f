"""Price CSVs (`time,open,high,low,close,volume`), read and checked line by line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from margin_engine.clock import parse_time
from margin_engine.errors import InputError
from margin_engine.ledger.units import parse_decimal
from margin_engine.reading import csv_rows

REQUIRED = ("time", "close")
OHLC = ("time", "open", "high", "low", "close")
PRICE_MAX_USD = 1e9  # as the profiles' limits.price_max_usd


@dataclass(frozen=True)
class PriceSeries:
    time_s: np.ndarray  # Unix seconds, strictly increasing
    close: np.ndarray  # > 0

    def log_returns(self) -> np.ndarray:
        return np.diff(np.log(self.close))


def read_prices(path: Path) -> PriceSeries:
    times: list[int] = []
    closes: list[float] = []
    _, rows = csv_rows(path, REQUIRED, "expected header time,open,high,low,close,volume")
    for line, row in rows:
        t = parse_time(row["time"], f"line {line}: time")
        close = float(parse_decimal(row["close"], f"line {line}: close", positive=True))
        if close > PRICE_MAX_USD:
            raise InputError(f"line {line}: close", f"above {PRICE_MAX_USD:,.0f} USD: a unit error?")
        if times and t <= times[-1]:
            raise InputError(f"line {line}: time", "times must be strictly increasing")
        times.append(t)
        closes.append(close)
    if len(closes) < 30:
        raise InputError("file", f"{path} has {len(closes)} prices; calibration needs at least 30")
    return PriceSeries(np.asarray(times, dtype=np.int64), np.asarray(closes))


@dataclass(frozen=True)
class Bars(PriceSeries):
    """OHLC bars, each checked low <= open, close <= high: what an intra-bar path is built through."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray


def read_bars(path: Path) -> Bars:
    series = read_prices(path)
    _, rows = csv_rows(path, OHLC, "expected header time,open,high,low,close,volume")
    cols: dict[str, list[float]] = {"open": [], "high": [], "low": []}
    for line, row in rows:
        bar = {k: float(parse_decimal(row[k], f"line {line}: {k}", positive=True)) for k in (*cols, "close")}
        if not bar["low"] <= min(bar["open"], bar["close"]) <= max(bar["open"], bar["close"]) <= bar["high"]:
            raise InputError(f"line {line}", f"a bar needs low <= open, close <= high; got {bar}")
        for k in cols:
            cols[k].append(bar[k])
    return Bars(series.time_s, series.close, *(np.asarray(cols[k]) for k in ("open", "high", "low")))

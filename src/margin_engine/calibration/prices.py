"""Price CSVs (`time,open,high,low,close,volume`), read and checked line by line."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from margin_engine.clock import parse_time
from margin_engine.errors import InputError

REQUIRED = ("time", "close")


@dataclass(frozen=True)
class PriceSeries:
    time_s: np.ndarray  # Unix seconds, strictly increasing
    close: np.ndarray  # > 0

    def log_returns(self) -> np.ndarray:
        return np.diff(np.log(self.close))


def read_prices(path: Path) -> PriceSeries:
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise InputError("file", f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(
                "file", f"{path} lacks column(s) {missing}; expected header time,open,high,low,close,volume"
            )
        times, closes = [], []
        for line, row in enumerate(reader, start=2):
            t = parse_time(row["time"], f"line {line}: time")
            try:
                close = float(row["close"])
            except (TypeError, ValueError):
                raise InputError(f"line {line}: close", f"not a number: {row['close']!r}") from None
            if not np.isfinite(close) or close <= 0:
                raise InputError(f"line {line}: close", f"must be a finite price > 0, got {row['close']!r}")
            if times and t <= times[-1]:
                raise InputError(f"line {line}: time", "times must be strictly increasing")
            times.append(t)
            closes.append(close)
    if len(closes) < 30:
        raise InputError("file", f"{path} has {len(closes)} prices; calibration needs at least 30")
    return PriceSeries(np.asarray(times, dtype=np.int64), np.asarray(closes))

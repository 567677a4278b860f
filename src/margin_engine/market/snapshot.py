"""Market snapshot per underlying: index price, rate and an implied-volatility surface.

The forward to an expiry is F = S * exp(r * T) with T in years of 365 days. Volatility is flat,
per expiry, or per expiry and strike; between strikes it is linear in strike and flat beyond the
outer strikes; between listed expiries it is linear in total variance (sigma^2 * T), the usual
arbitrage-aware choice, and flat in vol beyond the first and last expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from margin_engine.errors import InputError
from margin_engine.instruments.names import format_expiry, parse_expiry
from margin_engine.ledger.units import parse_decimal
from margin_engine.pricing.black76 import SECONDS_PER_YEAR

VOL_MAX = 10.0  # 1000% annualized: anything above is a unit error (percent given as a number)


@dataclass(frozen=True)
class Smile:
    """Implied vol by strike for one expiry; a single strike-less point means flat."""

    strikes: tuple[float, ...]
    vols: tuple[float, ...]

    def at(self, strike: np.ndarray) -> np.ndarray:
        if len(self.strikes) == 1:
            return np.full(np.shape(strike), self.vols[0])
        return np.interp(strike, self.strikes, self.vols)


@dataclass(frozen=True)
class VolSurface:
    expiries_s: tuple[int, ...]  # sorted; empty means flat (one smile for all expiries)
    smiles: tuple[Smile, ...]

    def vols(self, expiry_s: np.ndarray, strike: np.ndarray, now_s: int) -> np.ndarray:
        """Implied vol for each (expiry, strike); vectorized over options."""
        expiry_s = np.asarray(expiry_s, dtype=np.int64)
        strike = np.asarray(strike, dtype=float)
        if not self.expiries_s:
            return self.smiles[0].at(strike)
        grid = np.stack([smile.at(strike) for smile in self.smiles])  # expiries x options
        listed = np.asarray(self.expiries_s, dtype=np.int64)
        right = (
            np.clip(np.searchsorted(listed, expiry_s), 1, len(listed) - 1)
            if len(listed) > 1
            else np.zeros(len(expiry_s), dtype=int)
        )
        left = np.maximum(right - 1, 0)
        cols = np.arange(len(expiry_s))
        vol_left, vol_right = grid[left, cols], grid[right, cols]
        t = (expiry_s - now_s) / SECONDS_PER_YEAR
        t_left = (listed[left] - now_s) / SECONDS_PER_YEAR
        t_right = (listed[right] - now_s) / SECONDS_PER_YEAR
        span = np.where(t_right > t_left, t_right - t_left, 1.0)
        w = np.clip((t - t_left) / span, 0.0, 1.0)
        var_left, var_right = vol_left**2 * t_left, vol_right**2 * t_right
        variance_ok = (t_left > 0) & (t > 0)
        total_var = var_left + w * (var_right - var_left)
        by_variance = np.sqrt(np.maximum(total_var, 0.0) / np.where(t > 0, t, 1.0))
        by_vol = vol_left + w * (vol_right - vol_left)
        inside = np.where(variance_ok, by_variance, by_vol)
        return np.where(t <= t_left, vol_left, np.where(t >= t_right, vol_right, inside))

    def to_json(self) -> Any:
        def smile_json(smile: Smile) -> Any:
            if len(smile.strikes) == 1 and math.isnan(smile.strikes[0]):
                return smile.vols[0]
            return {_fmt(k): v for k, v in zip(smile.strikes, smile.vols, strict=True)}

        if not self.expiries_s:
            return smile_json(self.smiles[0])
        from datetime import UTC, datetime

        return {
            format_expiry(datetime.fromtimestamp(e, UTC)): smile_json(s)
            for e, s in zip(self.expiries_s, self.smiles, strict=True)
        }


@dataclass(frozen=True)
class MarketSnapshot:
    underlying: str
    index: float
    rate: float
    vol: VolSurface
    confidence: float = 1.0  # oracle confidence in [0, 1]; low confidence raises portfolio IM

    def to_json(self) -> dict[str, Any]:
        out = {"index": _fmt(self.index), "rate": _fmt(self.rate), "vol": self.vol.to_json()}
        if self.confidence != 1.0:
            out["confidence"] = _fmt(self.confidence)
        return out


def _fmt(x: float) -> str:
    return format(float(x), ".15g")


def _vol(value: object, field: str) -> float:
    vol = float(parse_decimal(value, field))
    if not 0 < vol <= VOL_MAX:
        raise InputError(field, f"implied vol must be in (0, {VOL_MAX}] as a fraction (0.6 = 60%), got {value}")
    return vol


def _smile(value: object, field: str) -> Smile:
    if isinstance(value, dict):
        if not value:
            raise InputError(field, "a smile needs at least one strike: vol pair")
        points = sorted(
            (float(parse_decimal(k, f"{field}.{k}", positive=True)), _vol(v, f"{field}.{k}")) for k, v in value.items()
        )
        return Smile(tuple(p[0] for p in points), tuple(p[1] for p in points))
    return Smile((math.nan,), (_vol(value, field),))


def parse_vol_surface(value: object, field: str) -> VolSurface:
    """`0.6`, `{"25DEC26": 0.6}` or `{"25DEC26": {"50000": 0.65, "60000": 0.6}}`."""
    if isinstance(value, dict):
        if not value:
            raise InputError(field, "needs a flat vol or at least one expiry")
        items = sorted((parse_expiry(k, f"{field}.{k}"), _smile(v, f"{field}.{k}")) for k, v in value.items())
        return VolSurface(tuple(int(e.timestamp()) for e, _ in items), tuple(s for _, s in items))
    return VolSurface((), (_smile(value, field),))


def parse_market(underlying: str, value: object, field: str) -> MarketSnapshot:
    if not isinstance(value, dict):
        raise InputError(field, f"expected an object with index, vol and rate, got {value!r}")
    unknown = set(value) - {"index", "vol", "rate", "confidence"}
    if unknown:
        raise InputError(field, f"unknown field(s) {sorted(unknown)}; expected index, vol, rate, confidence")
    if "index" not in value:
        raise InputError(f"{field}.index", "missing: the index price in USD")
    index = float(parse_decimal(value["index"], f"{field}.index", positive=True))
    rate = float(parse_decimal(value.get("rate", 0), f"{field}.rate"))
    if abs(rate) > 1:
        raise InputError(f"{field}.rate", f"rate is a fraction per year (0.05 = 5%), got {rate}")
    if "vol" not in value:
        raise InputError(f"{field}.vol", "missing: implied vol, flat (0.6) or per expiry")
    confidence = float(parse_decimal(value.get("confidence", 1), f"{field}.confidence", non_negative=True))
    if confidence > 1:
        raise InputError(f"{field}.confidence", f"must be in [0, 1], got {confidence}")
    return MarketSnapshot(underlying, index, rate, parse_vol_surface(value["vol"], f"{field}.vol"), confidence)

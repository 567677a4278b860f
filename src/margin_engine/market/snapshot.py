"""Market model per underlying: spot index, a forward per expiry, the perp's mark, an implied-vol
surface, a rate per expiry and a confidence per feed; and price-only markets for collateral
assets without options (a stablecoin: the settlement asset's own USD price).

The venues price with more than an index: Derive reads a forward feed per expiry (a fixed part
that scenarios do not shock plus a variable part that they do), a perp price apart from the index,
a rate per expiry, a stablecoin price and a confidence per feed (v2-core `PMRM.sol`,
`StandardManager.sol`); Deribit marks perps at index plus basis. Each field is optional and falls
back to what the index says: forward F = S * exp(r_T * T) with T in years of 365 days, perp mark =
index, confidence 1. A market that lists forwards must list one for every expiry priced (Derive
reverts without one, `SRM_NoForwardPrice`); rates between listed expiries are linear in time and
flat beyond. Volatility is flat, per expiry, or per expiry and strike; between strikes it is linear
in strike and flat beyond the outer strikes; between listed expiries it is linear in total variance
(sigma^2 * T), the usual arbitrage-aware choice, and flat in vol beyond the first and last expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from margin_engine.errors import InputError, MarketMissing
from margin_engine.instruments.names import format_expiry, parse_expiry
from margin_engine.ledger.units import parse_decimal
from margin_engine.pricing.black76 import SECONDS_PER_YEAR

VOL_MAX = 10.0  # 1000% annualized: anything above is a unit error (percent given as a number)
RATE_MAX = 1.0  # 100% a year: a rate above is a unit error (percent given as a number)
FEEDS = ("spot", "perp", "forward", "vol", "rate")  # the feeds a confidence may be given for
MARKET_FIELDS = ("index", "vol", "rate", "forward", "perp", "confidence")
PRICE_ONLY_FIELDS = ("index", "confidence")


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
        return {_expiry_name(e): smile_json(s) for e, s in zip(self.expiries_s, self.smiles, strict=True)}


@dataclass(frozen=True)
class ByExpiry:
    """A number per listed expiry (a forward, a rate, a feed's confidence) and a default for the
    expiries not listed; `None` as default means every expiry asked for must be listed."""

    points: tuple[tuple[int, float], ...] = ()
    default: float | None = None

    def at(self, expiry_s: np.ndarray, what: str) -> np.ndarray:
        expiry_s = np.asarray(expiry_s, dtype=np.int64)
        out = np.full(expiry_s.shape, np.nan if self.default is None else self.default)
        for e, v in self.points:
            out[expiry_s == e] = v
        if self.default is None and np.isnan(out).any():
            missing = int(expiry_s[np.isnan(out)][0])
            raise MarketMissing(what, f"no {what} for expiry {_expiry_name(missing)}; list one for every expiry held")
        return out

    def interpolated(self, expiry_s: np.ndarray) -> np.ndarray:
        """Linear in expiry time between the listed points, flat beyond (rates)."""
        if not self.points:
            return np.full(np.shape(expiry_s), 0.0 if self.default is None else self.default)
        xs = np.array([e for e, _ in self.points], dtype=float)
        ys = np.array([v for _, v in self.points], dtype=float)
        return np.interp(np.asarray(expiry_s, dtype=float), xs, ys)

    def to_json(self) -> Any:
        if not self.points:
            return None if self.default is None else _fmt(self.default)
        return {_expiry_name(e): _fmt(v) for e, v in self.points}


@dataclass(frozen=True)
class MarketSnapshot:
    underlying: str
    index: float
    rate: float  # the flat rate (per year); `rates` per expiry, when given, win
    vol: VolSurface | None  # None for a price-only market (a stablecoin)
    confidence: float = 1.0  # the spot feed's confidence in [0, 1]; low confidence raises IM
    rates: ByExpiry = ByExpiry()  # per expiry; empty: `rate` for all
    forwards: ByExpiry | None = None  # given forwards per expiry; None: index * e^(rT)
    forward_fixed: ByExpiry = ByExpiry(default=0.0)  # the part of each forward no spot shock moves
    perp: float | None = None  # the perp's mark price; None: the index
    perp_confidence: float = 1.0
    forward_confidence: ByExpiry = ByExpiry(default=1.0)
    vol_confidence: ByExpiry = ByExpiry(default=1.0)
    rate_confidence: ByExpiry = ByExpiry(default=1.0)
    # the perp's open interest (its longs, base units) as the engine counts it, kept only where the
    # profile scales initial margin with it (dYdX's open-interest caps); never from set_market
    open_interest: float = 0.0

    @property
    def price_only(self) -> bool:
        return self.vol is None

    @property
    def perp_mark(self) -> float:
        return self.index if self.perp is None else self.perp

    @property
    def surface(self) -> VolSurface:
        if self.vol is None:
            raise MarketMissing(f"market.{self.underlying}.vol", f"{self.underlying} has a price but no vol surface")
        return self.vol

    def linear_mark(self, expiry_s: int, now_s: int) -> float:
        """A perp's mark (expiry 0), or a dated future's: its expiry's forward."""
        return self.perp_mark if not expiry_s else float(self.forwards_at(np.array([expiry_s]), now_s)[0][0])

    def rates_at(self, expiry_s: np.ndarray) -> np.ndarray:
        return self.rates.interpolated(expiry_s) if self.rates.points else np.full(np.shape(expiry_s), self.rate)

    def forwards_at(self, expiry_s: np.ndarray, now_s: int) -> tuple[np.ndarray, np.ndarray]:
        """(forward, its fixed part) per expiry: the given forwards, or index * e^(r_T T)."""
        expiry_s = np.asarray(expiry_s, dtype=np.int64)
        if self.forwards is None:
            years = np.maximum(expiry_s - now_s, 0) / SECONDS_PER_YEAR
            return self.index * np.exp(self.rates_at(expiry_s) * years), np.zeros(expiry_s.shape)
        what = f"market.{self.underlying}.forward"
        return self.forwards.at(expiry_s, what), self.forward_fixed.at(expiry_s, what)

    def option_confidence(self, expiry_s: np.ndarray) -> np.ndarray:
        """Per expiry: the lowest confidence of the feeds an option's price reads (spot, forward,
        vol, rate), as Derive's `expiry.minConfidence`."""
        expiry_s = np.asarray(expiry_s, dtype=np.int64)
        feeds = (self.forward_confidence, self.vol_confidence, self.rate_confidence)
        return np.minimum.reduce([np.full(expiry_s.shape, self.confidence), *(f.at(expiry_s, "") for f in feeds)])

    def moved_to(self, index: float, confidence: float) -> MarketSnapshot:
        """The market after the oracle moves the index: the perp mark and the shocked part of each
        given forward move in proportion (the basis stays as a ratio), the rest stays."""
        ratio = index / self.index
        forwards = self.forwards
        if forwards is not None:
            fixed = dict(self.forward_fixed.points)
            base = self.forward_fixed.default or 0.0
            forwards = ByExpiry(
                tuple((e, fixed.get(e, base) + (f - fixed.get(e, base)) * ratio) for e, f in forwards.points)
            )
        perp = None if self.perp is None else self.perp * ratio
        return replace(self, index=index, confidence=confidence, forwards=forwards, perp=perp)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": _fmt(self.index)}
        if self.vol is not None:
            out["rate"] = self.rates.to_json() if self.rates.points else _fmt(self.rate)
            out["vol"] = self.vol.to_json()
        if self.forwards is not None:
            fixed = dict(self.forward_fixed.points)
            out["forward"] = {
                _expiry_name(e): {"price": _fmt(f), "fixed": _fmt(fixed[e])} if fixed.get(e) else _fmt(f)
                for e, f in self.forwards.points
            }
        if self.perp is not None:
            out["perp"] = _fmt(self.perp)
        feeds = {
            "perp": None if self.perp_confidence == 1.0 else _fmt(self.perp_confidence),
            **{
                name: curve.to_json()
                for name, curve in (
                    ("forward", self.forward_confidence),
                    ("vol", self.vol_confidence),
                    ("rate", self.rate_confidence),
                )
                if curve != ByExpiry(default=1.0)
            },
        }
        feeds = {k: v for k, v in feeds.items() if v is not None}
        if feeds:
            out["confidence"] = {"spot": _fmt(self.confidence), **feeds}
        elif self.confidence != 1.0:
            out["confidence"] = _fmt(self.confidence)
        return out


def _fmt(x: float) -> str:
    return format(float(x), ".15g")


def _expiry_name(expiry_s: int) -> str:
    return format_expiry(datetime.fromtimestamp(expiry_s, UTC))


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


def _by_expiry(value: object, field: str, parse, default: float | None) -> ByExpiry:
    """A number for all expiries, or `{"27DEC26": x, ...}`."""
    if isinstance(value, dict):
        if not value:
            raise InputError(field, "needs a number or at least one expiry")
        items = sorted(
            (int(parse_expiry(k, f"{field}.{k}").timestamp()), parse(v, f"{field}.{k}")) for k, v in value.items()
        )
        return ByExpiry(tuple(items), default)
    return ByExpiry((), parse(value, field))


def _rate(value: object, field: str) -> float:
    rate = float(parse_decimal(value, field))
    if abs(rate) > RATE_MAX:
        raise InputError(field, f"rate is a fraction per year (0.05 = 5%), got {rate}")
    return rate


def _confidence(value: object, field: str) -> float:
    c = float(parse_decimal(value, field, non_negative=True))
    if c > 1:
        raise InputError(field, f"must be in [0, 1], got {c}")
    return c


def _price(value: object, field: str) -> float:
    return float(parse_decimal(value, field, positive=True))


def _forwards(value: object, field: str) -> tuple[ByExpiry, ByExpiry]:
    """`{"27DEC26": 61000, "26MAR27": {"price": 62000, "fixed": 500}}`: a forward per expiry and
    the part of it that spot shocks leave alone (Derive's forwardFixedPortion)."""
    if not isinstance(value, dict) or not value:
        raise InputError(field, 'expected an object of expiry: forward price, e.g. {"27DEC26": 61000}')
    prices, fixed = [], []
    for k, v in value.items():
        e = int(parse_expiry(k, f"{field}.{k}").timestamp())
        if isinstance(v, dict):
            unknown = set(v) - {"price", "fixed"}
            if unknown or "price" not in v:
                raise InputError(f"{field}.{k}", 'expected a price, or {"price": F, "fixed": part not shocked}')
            price = _price(v["price"], f"{field}.{k}.price")
            part = float(parse_decimal(v.get("fixed", 0), f"{field}.{k}.fixed", non_negative=True))
            if part >= price:
                raise InputError(f"{field}.{k}.fixed", f"the fixed part {part} must be below the forward {price}")
            fixed.append((e, part))
        else:
            price = _price(v, f"{field}.{k}")
        prices.append((e, price))
    return ByExpiry(tuple(sorted(prices))), ByExpiry(tuple(sorted(fixed)), 0.0)


def _feed_confidences(value: object, field: str) -> dict[str, Any]:
    """`0.9` (the spot feed), or `{"spot": 0.9, "perp": 0.8, "forward": 0.7 | {expiry: c}, ...}`."""
    if not isinstance(value, dict):
        return {"confidence": _confidence(value, field)}
    unknown = set(value) - set(FEEDS)
    if unknown:
        raise InputError(field, f"unknown feed(s) {sorted(unknown)}; confidences are given for {', '.join(FEEDS)}")
    out: dict[str, Any] = {}
    if "spot" in value:
        out["confidence"] = _confidence(value["spot"], f"{field}.spot")
    if "perp" in value:
        out["perp_confidence"] = _confidence(value["perp"], f"{field}.perp")
    for feed in ("forward", "vol", "rate"):
        if feed in value:
            out[f"{feed}_confidence"] = _by_expiry(value[feed], f"{field}.{feed}", _confidence, 1.0)
    return out


def parse_market(underlying: str, value: object, field: str, price_only: bool = False) -> MarketSnapshot:
    """A market object: `index` and `vol` required (only `index` for a price-only market), the
    rest optional (see the module docstring and docs/formats.md)."""
    allowed = PRICE_ONLY_FIELDS if price_only else MARKET_FIELDS
    what = "a collateral asset's price" if price_only else "a market"
    if not isinstance(value, dict):
        raise InputError(field, f"expected {what}: an object with {', '.join(allowed)}, got {value!r}")
    unknown = set(value) - set(allowed)
    if unknown:
        raise InputError(field, f"unknown field(s) {sorted(unknown)} for {what}; expected {', '.join(allowed)}")
    if "index" not in value:
        raise InputError(f"{field}.index", "missing: the index price in USD")
    index = _price(value["index"], f"{field}.index")
    extra = _feed_confidences(value["confidence"], f"{field}.confidence") if "confidence" in value else {}
    if price_only:
        return MarketSnapshot(underlying, index, 0.0, None, **extra)
    if "vol" not in value:
        raise InputError(f"{field}.vol", "missing: implied vol, flat (0.6) or per expiry")
    rates = _by_expiry(value.get("rate", 0), f"{field}.rate", _rate, None)
    if "forward" in value:
        extra["forwards"], extra["forward_fixed"] = _forwards(value["forward"], f"{field}.forward")
    if "perp" in value:
        extra["perp"] = _price(value["perp"], f"{field}.perp")
    flat = rates.default if not rates.points else rates.points[0][1]
    return MarketSnapshot(
        underlying,
        index,
        float(flat if flat is not None else 0.0),
        parse_vol_surface(value["vol"], f"{field}.vol"),
        rates=ByExpiry(rates.points) if rates.points else ByExpiry(),
        **extra,
    )

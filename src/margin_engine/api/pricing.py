"""Black-76 prices and Greeks as DataFrames: `price_options` values instruments by name on a market
exactly as the margin does (same vol surface lookup, same pricer); `price_black76` takes raw inputs.

Units: price, vega and theta in USD per one unit of the underlying (vega per vol point, theta per
calendar day), delta in units of the underlying, gamma per 1 USD of the index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from margin_engine.api import _tables
from margin_engine.api.inputs import _plain, _time
from margin_engine.clock import parse_time
from margin_engine.errors import InputError
from margin_engine.files.portfolio import read_structured
from margin_engine.instruments.names import Future, Option, parse_instrument
from margin_engine.market.snapshot import parse_market
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76

GREEK_COLUMNS = ("price", "delta", "gamma", "vega", "theta")
INSTRUMENT_COLUMNS = (
    "instrument",
    "underlying",
    "kind",
    "strike_usd",
    "expiry",
    "time_years",
    "index_usd",
    "forward_usd",
    "vol",
    "rate",
    *GREEK_COLUMNS,
)


def price_options(instruments: str | Sequence[str], market: Any, valuation_time: Any = None):
    """Price and Greeks of each instrument (options and perps, by name), one row per instrument.

    `market` is a portfolio file's market section (`{"BTC": {"index": 60000, "vol": 0.6}}`, vol flat,
    per expiry or per strike) or a whole portfolio (dict or path), whose valuation time is used when
    `valuation_time` is not given. Options are priced with Black-76 on each expiry's forward (the
    market's `forward`, else index x e^(rT)), discounted at the expiry's rate; a perp is worth its
    mark (`perp`, else the index) and a dated future its expiry's forward (delta 1, no other Greeks).
    """
    names = [instruments] if isinstance(instruments, str) else list(instruments)
    section, when = _market_section(market)
    when = valuation_time if valuation_time is not None else when
    if when is None:
        raise InputError("valuation_time", "missing: options are valued at a time, e.g. '2026-11-25T08:00:00Z'")
    now_s = parse_time(_time(when), "valuation_time")
    if not isinstance(section, Mapping):
        raise InputError("market", f"expected {{underlying: {{index, vol, rate}}}}, got {type(section).__name__}")
    markets = {str(u): parse_market(str(u), _plain(v), f"market.{u}") for u, v in section.items()}
    rows = []
    for i, name in enumerate(names):
        field = f"instruments[{i}]"
        inst = parse_instrument(_plain(name), field)
        snap = markets.get(inst.underlying)
        if snap is None:
            raise InputError(field, f"no market for {inst.underlying}; give market={{{inst.underlying!r}: {{...}}}}")
        if isinstance(inst, Option):
            if inst.expiry_s <= now_s:
                raise InputError(field, f"{inst.name} expired before the valuation time")
            t = (inst.expiry_s - now_s) / SECONDS_PER_YEAR
            strike = float(inst.strike)
            expiry_s = np.array([inst.expiry_s])
            vol = float(snap.surface.vols(expiry_s, np.array([strike]), now_s)[0])
            forward = float(snap.forwards_at(expiry_s, now_s)[0][0])
            rate = float(snap.rates_at(expiry_s)[0])
            g = black76(forward, strike, t, vol, rate, np.bool_(inst.is_call))
            greeks = [float(x) for x in (g.price, g.delta, g.gamma, g.vega, g.theta)]
            kind, expiry = ("call" if inst.is_call else "put"), _timestamp(inst.expiry_s)
        elif isinstance(inst, Future):
            if inst.expiry_s <= now_s:
                raise InputError(field, f"{inst.name} expired before the valuation time")
            forward = snap.linear_mark(inst.expiry_s, now_s)
            t, strike, vol, kind = (inst.expiry_s - now_s) / SECONDS_PER_YEAR, None, None, "future"
            expiry = _timestamp(inst.expiry_s)
            rate = float(snap.rates_at(np.array([inst.expiry_s]))[0])
            greeks = [forward, 1.0, 0.0, 0.0, 0.0]
        else:
            t, strike, vol, forward, expiry, kind = None, None, None, snap.perp_mark, None, "perp"
            rate = snap.rate
            greeks = [snap.perp_mark, 1.0, 0.0, 0.0, 0.0]
        rows.append((inst.name, inst.underlying, kind, strike, expiry, t, snap.index, forward, vol, rate, *greeks))
    df = _tables.frame(INSTRUMENT_COLUMNS, rows, index="instrument")
    df["expiry"] = _tables.pandas().to_datetime(df["expiry"], utc=True)
    return df


def price_black76(forward, strike, time_years, vol, rate=0.0, is_call=True):
    """Black-76 on raw inputs, broadcast together (scalars or arrays; `is_call` booleans or
    'C'/'P'): one row per option with the inputs and price, delta, gamma, vega, theta."""
    flags = np.asarray(is_call)
    if flags.dtype.kind in "US":
        upper = np.char.upper(flags.astype(str))
        bad = ~np.isin(upper, ["C", "P", "CALL", "PUT"])
        if bad.any():
            raise InputError("is_call", f"expected True/False or 'C'/'P', got {flags[bad].flat[0]!r}")
        flags = np.isin(upper, ["C", "CALL"])
    g = black76(forward, strike, time_years, vol, rate, flags)
    arrays = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (forward, strike, time_years, vol, rate)), flags, g.price
    )
    columns = ("forward_usd", "strike_usd", "time_years", "vol", "rate", "is_call")
    data = {c: a.ravel() for c, a in zip(columns, arrays, strict=False)}
    data.update({c: np.ravel(getattr(g, c)) for c in GREEK_COLUMNS})
    return _tables.pandas().DataFrame(data)


def _market_section(market: Any) -> tuple[Any, Any]:
    """(market section, the portfolio's valuation time or None) of a section or a whole portfolio."""
    if isinstance(market, str | Path):
        market = read_structured(Path(market))
    if isinstance(market, Mapping) and "market" in market:
        return market["market"], market.get("valuation_time")
    return market, None


def _timestamp(seconds: int):
    return _tables.pandas().Timestamp(seconds, unit="s", tz="UTC")

"""Margin results: immutable, explain themselves, render as JSON with decimal-string amounts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from margin_engine.ledger.units import format_units
from margin_engine.margin.portfolio import CONTINGENCIES

GREEK_NAMES = ("delta", "gamma", "vega", "theta")


class Greeks(NamedTuple):
    """First-order risk in USD (delta in units of the underlying, gamma per 1 USD of it, vega per
    vol point, theta per calendar day): named, and still a tuple, so `d, g, v, t = greeks` works."""

    delta: float
    gamma: float
    vega: float
    theta: float


def _num(x: float, places: int) -> str:
    """A float as a plain decimal string with fixed places (amounts, prices)."""
    return format(Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-places)), "f")


def _sig(x: float, digits: int = 12) -> str:
    """A float as a plain decimal string with significant digits (Greeks: BTC gamma is ~1e-5);
    below 1e-15 in size it is noise and prints as 0."""
    return format(Decimal(format(float(x), f".{digits}g")), "f") if abs(x) >= 1e-15 else "0"


@dataclass(frozen=True)
class PositionMargin:
    """One position's share: standalone requirements and Greeks (per position, in USD)."""

    instrument: str
    size: Decimal
    mark_price: float
    value: float  # mark-to-market, incl. a perp's unrealized P&L
    initial_margin: float | None  # standalone; None in portfolio margin (see the explain)
    maintenance_margin: float | None
    greeks: Greeks
    allocation_units: int | None = None  # isolated only
    liquidatable: bool | None = None  # isolated only
    basis: float | None = None  # perps: the mark less the index (USD)

    def to_json(self, decimals: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "instrument": self.instrument,
            "size": format(self.size, "f"),
            "mark_price": _num(self.mark_price, decimals),
            "value": _num(self.value, decimals),
            "initial_margin": None if self.initial_margin is None else _num(self.initial_margin, decimals),
            "maintenance_margin": None if self.maintenance_margin is None else _num(self.maintenance_margin, decimals),
            "greeks": {n: _sig(g) for n, g in zip(GREEK_NAMES, self.greeks, strict=True)},
        }
        if self.allocation_units is not None:
            out["collateral"] = format_units(self.allocation_units, decimals)
            out["liquidatable"] = self.liquidatable
        if self.basis is not None:
            out["basis"] = _num(self.basis, decimals)
        return out


@dataclass(frozen=True)
class CollateralLine:
    asset: str
    balance: Decimal
    value: float  # USD
    im_haircut: float
    mm_haircut: float

    def to_json(self, decimals: int) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "balance": format(self.balance, "f"),
            "value": _num(self.value, decimals),
            "im_haircut": _num(self.im_haircut, decimals),
            "mm_haircut": _num(self.mm_haircut, decimals),
        }


@dataclass(frozen=True)
class Adjustment:
    """A change to the sum of standalone requirements, e.g. Lyra's max-loss cap on a spread."""

    kind: str
    scope: str
    initial_margin: float
    maintenance_margin: float

    def to_json(self, decimals: int) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "initial_margin": _num(self.initial_margin, decimals),
            "maintenance_margin": _num(self.maintenance_margin, decimals),
        }


@dataclass(frozen=True)
class AccountMargin:
    """Margin of one account, in integer settlement units (equity rounded down, requirements up)."""

    id: str
    mode: str
    decimals: int
    equity: int
    initial_margin: int
    maintenance_margin: int
    free_collateral: int
    liquidatable: bool
    positions: tuple[PositionMargin, ...]
    collateral: tuple[CollateralLine, ...]
    adjustments: tuple[Adjustment, ...]
    greeks_by_underlying: dict[str, Greeks]
    portfolio: dict | None = None  # portfolio margin: worst scenarios, contributions, contingencies

    @property
    def margin_ratio(self) -> float | None:
        """MM / equity (Deribit's maintenance margin ratio): 1 or more is liquidatable.
        None when equity <= 0 while something is required (infinitely under water)."""
        if self.maintenance_margin == 0:
            return 0.0
        return self.maintenance_margin / self.equity if self.equity > 0 else None

    @property
    def greeks(self) -> dict[str, float | None]:
        """Account totals; delta and gamma only when one underlying (they do not add across)."""
        rows = list(self.greeks_by_underlying.values())
        totals = [math.fsum(r[i] for r in rows) for i in range(4)]
        single = len(rows) <= 1
        return {
            "delta": totals[0] if single else None,
            "gamma": totals[1] if single else None,
            "vega": totals[2],
            "theta": totals[3],
        }

    def to_json(self) -> dict[str, Any]:
        d = self.decimals
        ratio = self.margin_ratio
        return {
            "id": self.id,
            "mode": self.mode,
            "equity": format_units(self.equity, d),
            "initial_margin": format_units(self.initial_margin, d),
            "maintenance_margin": format_units(self.maintenance_margin, d),
            "free_collateral": format_units(self.free_collateral, d),
            "equity_units": self.equity,
            "initial_margin_units": self.initial_margin,
            "maintenance_margin_units": self.maintenance_margin,
            "free_collateral_units": self.free_collateral,
            "margin_ratio": None if ratio is None else _num(ratio, 6),
            "liquidatable": self.liquidatable,
            "greeks": {k: None if v is None else _sig(v) for k, v in self.greeks.items()},
            "greeks_by_underlying": {
                u: {n: _sig(g) for n, g in zip(GREEK_NAMES, gs, strict=True)}
                for u, gs in sorted(self.greeks_by_underlying.items())
            },
            "positions": [p.to_json(d) for p in self.positions],
            "collateral": [c.to_json(d) for c in self.collateral],
            "adjustments": [a.to_json(d) for a in self.adjustments],
            **({"portfolio": _portfolio_json(self.portfolio, d)} if self.portfolio is not None else {}),
        }


def _portfolio_json(explain, decimals: int, key: str = ""):
    """USD figures of the explain (P&L, losses, contingencies) as decimal strings, like every amount."""
    if isinstance(explain, dict):
        return {k: _portfolio_json(v, decimals, k) for k, v in explain.items()}
    if isinstance(explain, list):
        return [_portfolio_json(v, decimals, key) for v in explain]
    if isinstance(explain, float) and key in _USD_KEYS:
        return _num(explain, decimals)
    return explain


_USD_KEYS = {"worst_pnl", "loss", "base", "pnl", *CONTINGENCIES}

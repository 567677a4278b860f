"""Liquidation prices: the index level of one underlying at which an account's equity falls to its
maintenance margin, everything else held (what Hyperliquid, Deribit and Binance show traders).

- One perp on cash: closed form, Hyperliquid's published rule (docs, "Liquidations"):
  liq = mark - side x margin_available / |size| / (1 - l x side), with l the maintenance ratio,
  side +1 long / -1 short and margin_available = equity - maintenance at the mark.
- Any account (cross or portfolio mode, options, crypto collateral, tiers): found on the margin
  maths itself. The underlying's market is moved (`MarketSnapshot.moved_to`: the perp's basis and
  the forwards' shocked part move with the index) over a grid of moves down to -99% and up to
  +900%; the first sign change of equity - maintenance on each side is bracketed and refined by
  Brent's method (scipy.optimize.brentq). An option book can have a liquidation price on either
  side, so both are returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from margin_engine.errors import InputError
from margin_engine.margin.book import AccountView
from margin_engine.margin.calculator import margin_totals
from margin_engine.margin.flat import flatten
from margin_engine.margin.profile import Profile
from margin_engine.market.snapshot import MarketSnapshot

# index moves tried on each side before refining: finest near the current index (a book whose
# equity dips below maintenance and recovers between two of them is not seen)
_DOWN = -np.geomspace(1e-3, 0.99, 16)
_UP = np.geomspace(1e-3, 9.0, 16)


def perp_liquidation_price(mark: float, size: float, equity_usd: float, maintenance_ratio: float) -> float | None:
    """Hyperliquid's closed form for one perp; None when no positive price liquidates it."""
    if size == 0 or not (0 <= maintenance_ratio < 1):
        raise InputError("size", "a liquidation price needs a position (size != 0) and a ratio in [0, 1)")
    side = 1.0 if size > 0 else -1.0
    available = equity_usd - abs(size) * mark * maintenance_ratio
    price = mark - side * available / abs(size) / (1 - maintenance_ratio * side)
    return price if price > 0 else None


@dataclass(frozen=True)
class LiquidationPrices:
    """Index levels of `underlying` at which the account reaches maintenance: the nearest below and
    above the current index (None: none within -99% / +900%); `now` when it is liquidatable already."""

    underlying: str
    index: float
    below: float | None
    above: float | None
    now: bool

    def to_json(self) -> dict:
        def fmt(x: float | None) -> str | None:
            return None if x is None else f"{x:.6f}"

        return {"underlying": self.underlying, "index": fmt(self.index), "below": fmt(self.below),
                "above": fmt(self.above), "liquidatable_now": self.now}  # fmt: skip


def liquidation_prices(
    view: AccountView, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int, underlying: str
) -> LiquidationPrices:
    """The account's liquidation prices in `underlying`, the other markets held where they are."""
    if underlying not in markets:
        raise InputError("underlying", f"no market for {underlying}")
    book = flatten([view], profile)
    base = markets[underlying]

    def gap(move: float) -> float:
        """equity - maintenance (settlement units) with the index moved by `move`."""
        moved = dict(markets)
        moved[underlying] = base.moved_to(base.index * (1.0 + move), base.confidence)
        totals = margin_totals(book, moved, profile, now_s)
        return float(totals.equity[0] - totals.maintenance_margin[0])

    start = gap(0.0)
    if start <= 0:
        return LiquidationPrices(underlying, base.index, base.index, base.index, True)
    return LiquidationPrices(
        underlying, base.index, _crossing(gap, _DOWN, base.index), _crossing(gap, _UP, base.index), False
    )


def _crossing(gap, moves: np.ndarray, index: float) -> float | None:
    """The index level of the first move (outward from 0) at which gap turns <= 0, refined."""
    inner = 0.0
    for move in moves:
        if gap(float(move)) <= 0:
            root = brentq(gap, inner, float(move), xtol=1e-12, maxiter=100)  # 1e-12 of the index
            return index * (1.0 + root)
        inner = float(move)
    return None

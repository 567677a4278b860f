"""The book liquidators sell into during a run, as it behaves in a crash: depth that thins as
volatility rises and the price falls from its peak, is consumed by each fill and refills with a
half-life, and a market maker that withdraws as its inventory nears its limit.

Depth within 1% of the mid on one side at a time t:

    depth(t) = depth0 * (vol0 / vol(t))^vol_elasticity * (mid(t) / peak mid)^drawdown_elasticity
                      * max(0, 1 - inventory(t) / inventory_max)

- Volatility: Kyle (1985)'s price impact is proportional to the asset's volatility (lambda =
  sigma_v / 2 sigma_u), so depth ~ 1 / vol: elasticity 1.
- Drawdown: in the 2025-10-10 cascade book depth fell by more than 90% on key venues while BTC fell
  about 15% and its vol doubled (FTI Consulting, as reported; Kaiko's Data Debrief of 2025-10-13:
  "almost nothing near the mid"): 0.5 * 0.85^e = 0.1 gives e = ln 0.2 / ln 0.85 = 9.9.
- Resilience: what a fill takes stays taken and refills with `refill_half_life_s` (Obizhaeva &
  Wang 2013); a later fill walks on from there (`DepthBook.fill(consumed_usd=...)`).
- The market maker buys what liquidators sell; as its inventory from those fills reaches
  `inventory_max_usd` it quotes less and then nothing: the book is gone and the unwinds stop.

State lives here, the maths in `impact.DepthBook`; every input comes from the run (no clock, no rng).
"""

from __future__ import annotations

from dataclasses import dataclass

from margin_engine.simulation.errors import BookExhaustedError
from margin_engine.simulation.impact import PCT, DepthBook


@dataclass(frozen=True)
class LiquidityParams:
    vol_elasticity: float = 0.0
    drawdown_elasticity: float = 0.0
    refill_half_life_s: float | None = None  # None: every fill finds the book whole again
    inventory_max_usd: float | None = None  # None: a market maker without limit


class Liquidity:
    """One run's book: `quote` prices a trade without taking anything; `fill` takes it."""

    def __init__(self, book: DepthBook, params: LiquidityParams, vol0: float, mid0: float, t0_s: int):
        self.base, self.p, self.vol0 = book, params, vol0
        self.peak_mid, self.clock_s = mid0, t0_s
        self.consumed_usd = {1: 0.0, -1: 0.0}  # +1: the asks (buys take them), -1: the bids
        self.inventory_base = 0.0  # the market maker's position from liquidators' unwinds (> 0: long)

    def advance(self, now_s: int, mid: float) -> None:
        """Refill what earlier fills consumed and remember the peak the drawdown is measured from."""
        h = self.p.refill_half_life_s
        if h is not None and now_s > self.clock_s:
            keep = 2.0 ** (-(now_s - self.clock_s) / h)
            self.consumed_usd = {side: used * keep for side, used in self.consumed_usd.items()}
        self.clock_s = max(self.clock_s, now_s)
        self.peak_mid = max(self.peak_mid, mid)

    def depth_usd_per_pct(self, side: int, mid: float, vol: float) -> float:
        """Depth within 1% of `mid` on the side a trade of sign `side` takes (> 0 buys take the asks)."""
        p = self.p
        depth = self.base.depth_usd_per_pct
        if p.vol_elasticity:
            depth *= (self.vol0 / vol) ** p.vol_elasticity
        if p.drawdown_elasticity:
            depth *= min(mid / self.peak_mid, 1.0) ** p.drawdown_elasticity
        if p.inventory_max_usd is not None:
            held = max(-side * self.inventory_base, 0.0) * mid  # a sale adds to a long inventory
            depth *= max(0.0, 1.0 - held / p.inventory_max_usd)
        return depth

    def _depth(self, side: int, mid: float, vol: float) -> float:
        depth = self.depth_usd_per_pct(side, mid, vol)
        if depth <= 0:
            raise BookExhaustedError("size_base", "the market maker has withdrawn: its inventory is at its limit")
        return depth

    def _used(self, side: int) -> float:
        return self.consumed_usd[side] if self.p.refill_half_life_s is not None else 0.0

    def quote(self, size_signed_base: float, mid: float, vol: float) -> tuple[float, float]:
        """(average fill price, mid after) of a trade, taking nothing from the book."""
        side = 1 if size_signed_base > 0 else -1
        return self.base.fill_one(size_signed_base, mid, self._used(side), self._depth(side, mid, vol))

    def fill(self, size_signed_base: float, mid: float, vol: float) -> tuple[float, float]:
        """As `quote`, and the trade consumes depth and moves into the market maker's inventory."""
        avg, new_mid = self.quote(size_signed_base, mid, vol)
        side = 1 if size_signed_base > 0 else -1
        self.consumed_usd[side] += abs(size_signed_base) * mid
        self.inventory_base -= size_signed_base  # the market maker takes the other side
        return avg, new_mid

    def capacity_base(self, side: int, mid: float, vol: float, walk_max: float) -> float:
        """The largest trade of sign `side` that walks the book at most `walk_max` (fraction of
        the mid) past what is already consumed; 0 once the market maker has withdrawn."""
        depth = self.depth_usd_per_pct(side, mid, vol)
        if depth <= 0:
            return 0.0
        within = depth * (walk_max / PCT) ** self.base.depth_exponent
        return max(within - self._used(side), 0.0) / mid

"""Liquidators sell what they took into the book (liquidity.Liquidity); the market maker takes
the other side and the mid moves by the permanent impact: the cascade."""

from __future__ import annotations

import numpy as np

from margin_engine.engine import Rejection
from margin_engine.instruments.names import parse_instrument
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76
from margin_engine.simulation.errors import BookExhaustedError
from margin_engine.simulation.population import (
    BACKSTOP,
    MARKET_MAKER,
)

UNWIND_WALK_MAX = 0.5  # a liquidator sells at most what walks the book half-way to zero per round


class Unwinds:
    """The `_Sim` methods that unwind liquidators' positions."""

    def _unwind_cap(self, leg, side: int) -> float:
        """The largest trade (base units) of sign `side` in `leg`'s perp that walks its book at most
        UNWIND_WALK_MAX past what earlier fills consumed (0 once the market maker has withdrawn)."""
        return leg.liq.capacity_base(side, leg.mid, leg.vol_now, UNWIND_WALK_MAX)

    def _unwind(self, step: int, rnd: int) -> bool:
        """Searchers, then keepers, then the backstop sell (buy back) the perps they took into each
        perp's book; the market maker books the other side at the average fill, and that mid moves
        by the permanent impact."""
        moved = False
        spread = self.sc.keepers.option_unwind_spread_ratio
        for keeper in self.searchers.ids + self.keepers.ids + ([self.backstop] if self.backstop else []):
            positions = self.engine.state.accounts[keeper].positions
            for leg in self.legs:
                pos = positions.get(leg.perp)
                if pos is not None and pos.size != 0:
                    moved = self._unwind_one(keeper, leg, float(pos.size), step, rnd) or moved
            if spread is not None:
                for name, pos in list(positions.items()):
                    if pos.size != 0 and name not in self.perp_leg:
                        moved = self._unwind_option(keeper, name, pos.size, spread, step, rnd) or moved
        return moved

    def _unwind_option(self, keeper: str, name: str, held, spread: float, step: int, rnd: int) -> bool:
        """Sell (buy back) a taken-over option to the market maker at its Black-76 value on the
        published smile, less (plus) `spread` of it: the cost of unwinding in a crash."""
        s = self.engine.state
        size = float(held)  # held: the position's exact Decimal size, traded as it is
        inst = parse_instrument(name)
        market = s.markets[inst.underlying]
        vol = float(market.surface.vols(np.array([inst.expiry_s]), np.array([float(inst.strike)]), s.now_s)[0])
        years = max(inst.expiry_s - s.now_s, 0) / SECONDS_PER_YEAR
        value = float(
            np.ravel(black76(float(market.index), float(inst.strike), years, vol, 0.0, inst.is_call).price)[0]
        )
        price = max(round(value * (1.0 - spread) if size > 0 else value * (1.0 + spread), 2), 0.01)
        buyer, seller = (MARKET_MAKER, keeper) if size > 0 else (keeper, MARKET_MAKER)
        cmd = {"type": "trade", "buyer": buyer, "seller": seller, "instrument": name, "size": str(abs(held))}
        out = self.submit({**cmd, "price": f"{price:.2f}"}, step, rnd)
        if isinstance(out, Rejection):
            return False
        self.option_unwinds += 1
        self.option_unwind_cost_usd += abs(size) * abs(value - price)
        return True

    def _unwind_one(self, keeper: str, leg, size: float, step: int, rnd: int) -> bool:
        signed_side = -1 if size > 0 else 1
        if keeper == BACKSTOP:  # a TWAP within its slippage limit
            bk = self.sc.backstop
            room = leg.liq.capacity_base(signed_side, leg.mid, leg.vol_now, bk.unwind_walk_max_ratio)
            qty = round(min(abs(size), bk.unwind_usd_per_round / leg.mid, room), 4)
        else:
            qty = round(min(abs(size), self._unwind_cap(leg, signed_side)), 4)
        if qty <= 0:
            return False
        signed = signed_side * qty
        try:
            avg, new_mid = leg.liq.quote(signed, leg.mid, leg.vol_now)
        except BookExhaustedError:
            return False
        price = max(round(avg, 2), 0.01)
        buyer, seller = (MARKET_MAKER, keeper) if size > 0 else (keeper, MARKET_MAKER)
        cmd = {"type": "trade", "buyer": buyer, "seller": seller, "instrument": leg.perp, "size": f"{qty:.4f}"}
        out = self.submit({**cmd, "price": f"{price:.2f}"}, step, rnd)
        if isinstance(out, Rejection):
            return False  # e.g. the oracle is halted: the liquidator holds on
        leg.liq.fill(signed, leg.mid, leg.vol_now)
        leg.mid = new_mid
        leg.min_mid = min(leg.min_mid, new_mid)
        return True

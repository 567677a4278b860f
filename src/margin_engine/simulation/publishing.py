"""What the venue is told during a run: the mid by signed oracle updates (guards on) or set_market
(off), the vol, and the volatility-driven price range of the portfolio scenarios."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from margin_engine.engine import Rejection
from margin_engine.errors import InputError
from margin_engine.instruments.names import format_expiry
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import sign_update
from margin_engine.pricing.black76 import SECONDS_PER_YEAR
from margin_engine.simulation.design import _key, _sources
from margin_engine.simulation.paths import (
    spot_vol,
)

SMILE_MONEYNESS = tuple(round(-1.0 + 0.1 * i, 1) for i in range(18))  # ln(K / spot): -1.0 .. +0.7


class Publishing:
    """The `_Sim` methods that publish prices and parameters."""

    def _check_listed(self, leg) -> None:
        if leg.underlying not in self.d.profile.underlyings:
            raise InputError(
                f"scenario.underlyings.{leg.underlying}",
                f"the profile has no [underlyings.{leg.underlying}]; it lists {', '.join(self.d.profile.underlyings)}",
            )

    def _set_market(self, leg, index: float, vol: float) -> None:
        cmd = {
            "type": "set_market",
            "underlying": leg.underlying,
            "index": repr(index),
            "vol": self._vols(leg, index, vol),
        }
        basis = self.sc.market.perp_basis_ratio if leg.basis is None else leg.basis_now
        if basis:
            cmd["perp"] = repr(round(index * (1.0 + basis), 2))
        self.ok(cmd)

    def _vols(self, leg, index: float, atm: float):
        """The vol field of set_market: flat, or the sticky-moneyness smile on a grid of strikes
        around the index for each expiry the book holds (the engine interpolates between them)."""
        v = leg.vol_model
        if not (v.smile_skew or v.smile_curvature) or not leg.option_expiries:
            return repr(atm)
        cap = max(v.vol_cap_annual, v.vol_floor_annual)
        smile = {}
        for m in SMILE_MONEYNESS:
            vol = min(max(atm + v.smile_skew * m + v.smile_curvature * m * m, v.vol_floor_annual), cap)
            smile[repr(round(index * math.exp(m), 2))] = repr(round(vol, 6))
        return {format_expiry(datetime.fromtimestamp(e, UTC)): smile for e in sorted(leg.option_expiries)}

    def _publish(self, leg, t: int, step: int | None = None, rnd: int = 0) -> None:
        """Guards on: the vol by set_market (index unchanged), the mid by signed updates from the
        sources whose push is due (`_due`); off: both by set_market."""
        mid, vol, under = leg.mid, leg.vol_now, leg.underlying
        leg.history.append((t, mid))
        if not self.d.guards:
            self._set_market(leg, mid, vol)
            return
        self._set_market(leg, self.engine.state.markets[under].index, vol)
        o = self.sc.oracle
        noise = self.noise_rng.standard_normal(o.sources) * o.noise_ratio  # drawn every round: pushes change no draw
        for i, (source, z) in enumerate(zip(_sources(o.sources), noise, strict=True)):
            seen = self._seen(leg, t - (o.source_latency_s[i] if i < len(o.source_latency_s) else 0))
            price = round(seen * (1.0 + float(z)), 2)
            if not self._due(leg, source, price, t):
                continue
            update = PriceUpdate(under, source, price, None, t)
            sig = sign_update(_key(source), update).hex()
            cmd = {
                "type": "oracle_update",
                "underlying": under,
                "source": source,
                "price": repr(price),
                "timestamp": t,
                "signature": sig,
            }
            out = self.submit(cmd, step, rnd)  # a rejected update (the guards' call) changes nothing
            if not isinstance(out, Rejection):
                leg.pushed[source] = (price, t)
                self.oracle_pushes += 1

    def _seen(self, leg, at_s: int) -> float:
        """The mid as it was at `at_s` (the last published at or before it; the first if none)."""
        for t, mid in reversed(leg.history):
            if t <= at_s:
                return mid
        return leg.history[0][1]

    def _due(self, leg, source: str, price: float, t: int) -> bool:
        """Push on a deviation from the last pushed price or after the heartbeat (every round when
        no heartbeat is set)."""
        o = self.sc.oracle
        last = leg.pushed.get(source)
        if o.heartbeat_s is None or last is None:
            return True
        return t - last[1] >= o.heartbeat_s or abs(price / last[0] - 1.0) >= o.deviation_ratio

    def _mid_vol(self, leg, before: float) -> float:
        """Implied vol of the step from the traded mid, as `vol_path` makes it from the fundamental:
        the spot-vol relation on mid / mid at step 0, pulled up by the EWMA realized vol of the mid,
        so forced sales that push the price down raise the vol option books are marked at."""
        v, dt_s = leg.vol_model, self.sc.dt_s
        keep = 2.0 ** (-dt_s / v.realized_half_life_s)
        r2_annual = math.log(leg.mid / before) ** 2 / (dt_s / SECONDS_PER_YEAR)
        leg.variance = keep * leg.variance + (1.0 - keep) * r2_annual
        cap = max(v.vol_cap_annual, v.vol_floor_annual)
        ratio = leg.mid / float(leg.spot[0])
        vol = spot_vol(
            ratio, v.vol0_annual, v.vol_floor_annual, cap, v.spot_vol_beta, math.sqrt(leg.variance), v.realized_weight
        )
        return float(vol)

    def _base_range(self) -> dict[str, float]:
        pm = self.d.profile.portfolio
        return {} if pm is None else {u: p.price_range for u, p in pm.underlyings.items() if p.price_range}

    def _apply_price_range(self, k: int) -> None:
        """Volatility-driven range: the portfolio scenarios' price range grows with implied vol over
        its start (never below the static range, at most 0.95), quantized to 0.5%; each change is a
        journaled `set_price_range`, so the run replays from its commands."""
        if self.d.price_range != "vol" or not self.base_range:
            return
        current = self.engine.state.profile.portfolio.underlyings
        for u, base in sorted(self.base_range.items()):
            leg = self.leg_of.get(u, self.btc)  # each underlying's vol over its start (BTC's for one not run)
            factor = max(1.0, float(leg.vol[k]) / float(leg.vol[0]))
            value = min(round(base * factor / 0.005) * 0.005, 0.95)
            if value != current[u].price_range:
                self.ok({"type": "set_price_range", "underlying": u, "price_range": repr(value)}, k - 1)

"""Portfolio margin, the plain way: one account at a time, one position at a time.

The twin of `portfolio.py` for tests and benchmarks (as arch tests its Cython recursions against
pure Python): same model, no sparse matrices, no sharing of repricing between accounts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from margin_engine.instruments.names import Option
from margin_engine.margin.book import AccountView
from margin_engine.margin.profile import Profile
from margin_engine.margin.scenarios import scenario_set, shocked_vols
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76


def _price(snap: MarketSnapshot, opt: Option, now_s: int, spot: float, vol: float) -> float:
    years = max(opt.expiry_s - now_s, 0) / SECONDS_PER_YEAR
    fwd = spot * math.exp(snap.rate * years)
    return float(black76(fwd, float(opt.strike), years, vol, snap.rate, opt.is_call).price)


def reference_margin(account: AccountView, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int) -> dict:
    """{"equity", "base", "initial_margin", "maintenance_margin", "underlyings": {u: {"loss", contingencies...}}}"""
    pm = profile.portfolio
    scale = 10.0**profile.settlement_decimals
    equity = account.balances.get(profile.settlement_asset, 0) / scale
    haircut_im = haircut_mm = 0.0
    legs: dict[str, list[tuple[str, object, float]]] = {}
    for asset, units in account.balances.items():
        if asset != profile.settlement_asset and units:
            legs.setdefault(asset, []).append(("collateral", asset, units / 10.0 ** profile.assets[asset].decimals))
    for pos in account.positions:
        legs.setdefault(pos.instrument.underlying, []).append(
            ("option" if isinstance(pos.instrument, Option) else "perp", pos.instrument, float(pos.size))
        )
        equity += (pos.quote_units + pos.allocation_units) / scale
    out = {}
    base_total = 0.0
    for u, items in legs.items():
        snap = markets[u]
        params = pm.underlyings[u]
        scen = scenario_set(pm, params)
        pnl = np.zeros(len(scen))
        conts = {}
        net_by_strike: dict[tuple[int, float], float] = {}
        linear_delta = 0.0
        abs_perp = abs_base = abs_all = 0.0
        basis = {-1.0: 0.0, 1.0: 0.0}
        for kind, inst, size in items:
            abs_all += abs(size)
            if kind == "option":
                years = max(inst.expiry_s - now_s, 0) / SECONDS_PER_YEAR
                vol_now = float(snap.vol.vols(np.array([inst.expiry_s]), np.array([float(inst.strike)]), now_s)[0])
                v0 = _price(snap, inst, now_s, snap.index, vol_now)
                equity += size * v0
                vols = shocked_vols(np.array([vol_now]), np.array([years * 365.0]), scen.vol_shock, pm, params)[0]
                disc = pm.gain_discount_static * math.exp(-years * (snap.rate + pm.gain_discount_rate_add))
                for j in range(len(scen)):
                    move = (_price(snap, inst, now_s, snap.index * scen.spot_mult[j], vols[j]) - v0) * scen.weight[j]
                    gain = size * move
                    pnl[j] += gain * disc if gain > 0 else gain
                key = (inst.expiry_s, float(inst.strike))
                net_by_strike[key] = net_by_strike.get(key, 0.0) + size
                years_fwd = snap.index * math.exp(snap.rate * years)
                for sign in basis:
                    moved = black76(
                        years_fwd * (1 + sign * pm.basis_shock_ratio),
                        float(inst.strike),
                        years,
                        vol_now,
                        snap.rate,
                        inst.is_call,
                    ).price
                    basis[sign] += size * (float(moved) - v0)
            else:
                equity += size * snap.index
                pnl += size * snap.index * (scen.spot_mult - 1) * scen.weight
                linear_delta += size
                if kind == "perp":
                    abs_perp += abs(size)
                else:
                    abs_base += abs(size)
                    asset = profile.assets[u]
                    haircut_im += size * snap.index * (1 - asset.im_weight)
                    haircut_mm += size * snap.index * (1 - asset.mm_weight)
        loss = max(0.0, -float(pnl.min()))
        if pm.short_option_min_spot_ratio and net_by_strike:
            conts["short_option"] = (
                pm.short_option_min_spot_ratio * snap.index * sum(max(-n, 0.0) for n in net_by_strike.values())
            )
        if pm.perp_static_spot_ratio:
            conts["perp_static"] = pm.perp_static_spot_ratio * snap.index * abs_perp
        if pm.base_static_spot_ratio:
            conts["base_static"] = pm.base_static_spot_ratio * snap.index * abs_base
        if pm.delta_shock_spot_ratio:
            conts["delta_shock"] = pm.delta_shock_spot_ratio * snap.index * abs(linear_delta)
        if pm.basis_shock_ratio and net_by_strike:
            conts["basis"] = -min(0.0, *basis.values())
        if pm.confidence_factor and snap.confidence < pm.confidence_threshold:
            conts["confidence"] = (1 - snap.confidence) * pm.confidence_factor * snap.index * abs_all
        base = loss + sum(conts.values())
        base_total += base
        out[u] = {"loss": loss, **conts, "worst_pnl": float(pnl.min()), "pnl": pnl}
    return {
        "equity": equity,
        "base": base_total,
        "initial_margin": pm.im_factor * base_total + haircut_im,
        "maintenance_margin": pm.mm_factor * base_total + haircut_mm,
        "underlyings": out,
    }

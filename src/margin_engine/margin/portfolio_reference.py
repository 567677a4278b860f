"""Portfolio margin, the plain way: one account at a time, one position at a time.

The twin of `portfolio.py` for tests and benchmarks (as arch tests its Cython recursions against
pure Python): the same model, written from its definition, with no sparse matrices and no
repricing shared between accounts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from margin_engine.instruments.names import Future, Option
from margin_engine.margin.book import AccountView
from margin_engine.margin.profile import Profile
from margin_engine.margin.scenarios import scenario_set, shocked_vols
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76


def _price(opt: Option, years: float, forward: float, vol: float, rate: float) -> float:
    return float(black76(forward, float(opt.strike), years, vol, rate, opt.is_call).price)


def _one(curve_at, expiry_s: int) -> float:
    return float(curve_at(np.array([expiry_s]))[0])


def _underlying(u: str, legs: list, markets, profile: Profile, now_s: int) -> dict:
    pm = profile.portfolio_params
    snap = markets[u]
    stable = markets.get(profile.settlement_asset)
    stable_price, stable_conf = (1.0, 1.0) if stable is None else (stable.index, stable.confidence)
    params = pm.underlyings[u]
    scen = scenario_set(pm, params)
    spot = snap.index
    pnl = np.zeros(len(scen))
    value = 0.0
    basis_loss = 0.0
    linear_conf = min(snap.confidence, stable_conf)
    affected = 0.0  # sum of (1 - confidence) * size over the legs whose feeds are below the threshold
    by_expiry: dict[int, list] = {}
    net_by_strike: dict[tuple[int, float], float] = {}
    abs_perp = abs_base = linear = 0.0
    for kind, inst, size in legs:
        if kind == "option":
            by_expiry.setdefault(inst.expiry_s, []).append((inst, size))
            key = (inst.expiry_s, float(inst.strike))
            net_by_strike[key] = net_by_strike.get(key, 0.0) + size
            continue
        unit = _linear_unit(snap, inst, now_s) if kind == "perp" else spot / stable_price
        value += size * unit
        linear += size
        pnl += size * unit * (scen.spot_mult - 1) * scen.weight
        conf = min(linear_conf, snap.perp_confidence) if kind == "perp" else linear_conf
        if conf < pm.confidence_threshold:
            affected += (1 - conf) * abs(size)
        abs_perp += abs(size) if kind == "perp" else 0.0
        abs_base += abs(size) if kind == "collateral" else 0.0
    price_rate = profile.options.discount_by_rate
    for expiry_s, options in by_expiry.items():
        years = max(expiry_s - now_s, 0) / SECONDS_PER_YEAR
        fwd = snap.forwards_at(np.array([expiry_s]), now_s)
        forward, fixed = float(fwd[0][0]), float(fwd[1][0])
        rate = _one(snap.rates_at, expiry_s)
        r = rate if price_rate else 0.0
        shock_rate = pm.option_value_discount_rate_mult * rate + pm.option_value_discount_rate_add
        disc = pm.option_value_discount_static * math.exp(-years * shock_rate)
        conf_e = min(linear_conf, _one(snap.option_confidence, expiry_s))
        now = 0.0
        shocked = np.zeros(len(scen))
        moved = {-1.0: 0.0, 1.0: 0.0}
        for inst, size in options:
            vol = float(snap.surface.vols(np.array([expiry_s]), np.array([float(inst.strike)]), now_s)[0])
            v0 = _price(inst, years, forward, vol, r)
            now += size * v0
            vols = shocked_vols(np.array([vol]), np.array([years * 365.0]), scen.vol_shock, pm, params)[0]
            for j in range(len(scen)):
                shocked[j] += size * _price(inst, years, (forward - fixed) * scen.spot_mult[j] + fixed, vols[j], r)
            for sign in moved:
                f = (forward - fixed) * (1 + sign * pm.basis_shock_ratio) + fixed
                moved[sign] += size * (_price(inst, years, f, vol, r) - v0)
            if conf_e < pm.confidence_threshold:
                affected += (1 - conf_e) * abs(size)
        value += now
        if (
            pm.option_value_discount_static < 1
            or pm.option_value_discount_rate_add
            or pm.option_value_discount_rate_mult
        ):
            shocked = np.where(shocked > 0, shocked * disc, shocked)
        pnl += (shocked - now) * scen.weight
        if pm.basis_shock_ratio:
            factor = pm.basis_factor + pm.basis_factor_per_year * years
            basis_loss += -min(0.0, *moved.values()) * factor
    loss = max(0.0, -float(pnl.min()), basis_loss)
    static = {}
    if pm.short_option_min_spot_ratio and net_by_strike:
        static["short_option"] = (
            pm.short_option_min_spot_ratio * spot * sum(max(-n, 0.0) for n in net_by_strike.values())
        )
    if pm.perp_static_spot_ratio:
        static["perp_static"] = pm.perp_static_spot_ratio * spot * abs_perp
    if pm.base_static_spot_ratio:
        static["base_static"] = pm.base_static_spot_ratio * spot * abs_base
    if pm.delta_shock_spot_ratio:
        static["delta_shock"] = pm.delta_shock_spot_ratio * spot * abs(linear)
    return {
        "loss": loss,
        "basis_loss": basis_loss,
        "static": static,
        "confidence": pm.confidence_factor * spot * affected,
        "value": value,
        "pnl": pnl,
        "base": loss + sum(static.values()),
    }


def reference_margin(account: AccountView, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int) -> dict:
    """{"equity", "base", "initial_margin", "maintenance_margin", "underlyings": {u: {...}}}"""
    pm = profile.portfolio_params
    scale = 10.0**profile.settlement_decimals
    stable = markets.get(profile.settlement_asset)
    stable_price = 1.0 if stable is None else stable.index
    equity = account.balances.get(profile.settlement_asset, 0) / scale
    haircut_im = haircut_mm = 0.0
    legs: dict[str, list] = {}
    for asset, units in account.balances.items():
        if asset != profile.settlement_asset and units:
            size = units / 10.0 ** profile.assets[asset].decimals
            legs.setdefault(asset, []).append(("collateral", asset, size))
            usd = size * markets[asset].index * pm.collateral_haircut_share
            value = usd / stable_price
            haircut_im += value - usd * profile.assets[asset].im_weight
            haircut_mm += value - usd * profile.assets[asset].mm_weight
    for pos in account.positions:
        kind = "option" if isinstance(pos.instrument, Option) else "perp"
        legs.setdefault(pos.instrument.underlying, []).append((kind, pos.instrument, float(pos.size)))
        equity += (pos.quote_units + pos.allocation_units) / scale
    per_u = {u: _underlying(u, items, markets, profile, now_s) for u, items in legs.items()}
    base = sum(x["base"] for x in per_u.values())
    im_factor = pm.im_factor
    if stable_price < pm.peg_loss_threshold_usd:
        im_factor += (pm.peg_loss_threshold_usd - stable_price) * pm.peg_loss_factor
    confidence = sum(x["confidence"] for x in per_u.values())
    equity += sum(x["value"] for x in per_u.values())
    return {
        "equity": equity,
        "base": base,
        "initial_margin": im_factor * base + confidence + haircut_im,
        "maintenance_margin": pm.mm_factor * base + haircut_mm,
        "underlyings": per_u,
    }


def _linear_unit(snap, inst, now_s: int) -> float:
    """A perp at its mark, a dated future at its expiry's forward."""
    if isinstance(inst, Future):
        return float(snap.forwards_at(np.array([inst.expiry_s]), now_s)[0][0])
    return snap.perp_mark

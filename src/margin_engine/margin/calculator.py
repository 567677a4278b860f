"""Margin for many accounts at once: standard margin for isolated and cross accounts, and for
portfolio accounts the profile's risk matrix (`portfolio.py`), or cross when it has none.

Positions of all accounts are flattened into arrays; each distinct option is priced once with
Black-76; requirements come from the per-position formulas of the profile's option model, and
sums per account are `np.bincount`s. Money meets integers once, per account: equity rounded
down, requirements rounded up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from margin_engine.errors import InputError
from margin_engine.instruments.names import Option, format_expiry
from margin_engine.ledger.units import ceil_units, floor_units, from_units
from margin_engine.margin.book import AccountView
from margin_engine.margin.portfolio import book_from_views, explain_account, portfolio_margin
from margin_engine.margin.profile import Profile
from margin_engine.margin.result import AccountMargin, Adjustment, CollateralLine, PositionMargin
from margin_engine.margin.standard import (
    deribit_short_option,
    derive_max_loss,
    derive_short_option,
    perp_requirements,
)
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76


@dataclass(frozen=True)
class _Flat:
    """All positions of all accounts as parallel arrays."""

    account: np.ndarray  # int index into the accounts sequence
    size: np.ndarray
    quote: np.ndarray  # USD, perps
    allocation: np.ndarray  # USD, isolated
    is_option: np.ndarray
    is_call: np.ndarray
    strike: np.ndarray
    expiry_s: np.ndarray
    underlying: list[str]
    option_key: np.ndarray  # index of the distinct option, -1 for perps


def _flatten(accounts: Sequence[AccountView], scale: float) -> tuple[_Flat, list[Option]]:
    rows, options, option_index = [], [], {}
    for a, account in enumerate(accounts):
        for pos in account.positions:
            inst = pos.instrument
            key = -1
            if isinstance(inst, Option):
                key = option_index.setdefault(inst, len(options))
                if key == len(options):
                    options.append(inst)
            rows.append(
                (
                    a,
                    float(pos.size),
                    pos.quote_units / scale,
                    pos.allocation_units / scale,
                    isinstance(inst, Option),
                    getattr(inst, "is_call", False),
                    float(getattr(inst, "strike", 0.0)),
                    getattr(inst, "expiry_s", 0),
                    inst.underlying,
                    key,
                )
            )
    cols = list(zip(*rows, strict=True)) if rows else [()] * 10
    flat = _Flat(
        account=np.asarray(cols[0], dtype=np.int64),
        size=np.asarray(cols[1], dtype=float),
        quote=np.asarray(cols[2], dtype=float),
        allocation=np.asarray(cols[3], dtype=float),
        is_option=np.asarray(cols[4], dtype=bool),
        is_call=np.asarray(cols[5], dtype=bool),
        strike=np.asarray(cols[6], dtype=float),
        expiry_s=np.asarray(cols[7], dtype=np.int64),
        underlying=list(cols[8]),
        option_key=np.asarray(cols[9], dtype=np.int64),
    )
    return flat, options


def _market(markets: Mapping[str, MarketSnapshot], underlying: str, why: str) -> MarketSnapshot:
    try:
        return markets[underlying]
    except KeyError:
        raise InputError(
            f"market.{underlying}", f"no market for {underlying} ({why}); set its index and vol first"
        ) from None


def _price_options(options: list[Option], markets, now_s: int):
    """Black-76 for each distinct option once: (spot, forward, mark, greeks as 4 x n)."""
    n = len(options)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros((4, 0))
    spot, rate, vol = np.empty(n), np.empty(n), np.empty(n)
    expiry = np.fromiter((o.expiry_s for o in options), dtype=np.int64, count=n)
    strike = np.fromiter((float(o.strike) for o in options), dtype=float, count=n)
    is_call = np.fromiter((o.is_call for o in options), dtype=bool, count=n)
    by_underlying: dict[str, list[int]] = {}
    for i, o in enumerate(options):
        by_underlying.setdefault(o.underlying, []).append(i)
    for underlying, idx in by_underlying.items():
        snap = _market(markets, underlying, f"to price {options[idx[0]].name}")
        spot[idx], rate[idx] = snap.index, snap.rate
        vol[idx] = snap.vol.vols(expiry[idx], strike[idx], now_s)
    t = np.maximum(expiry - now_s, 0) / SECONDS_PER_YEAR
    forward = spot * np.exp(rate * t)
    g = black76(forward, strike, t, vol, rate, is_call)
    return spot, forward, g.price, np.stack([g.delta, g.gamma, g.vega, g.theta])


def compute_margins(
    accounts: Sequence[AccountView],
    markets: Mapping[str, MarketSnapshot],
    profile: Profile,
    now_s: int,
    explain: bool = False,
) -> list[AccountMargin]:
    """Margin of every account; raises InputError when a needed market is missing.

    Accounts in portfolio mode use the profile's risk matrix when it has one (else cross);
    `explain` adds each one's scenario P&L vector and per-position contributions.
    """
    results = _standard_margins(accounts, markets, profile, now_s)
    if profile.portfolio is None:
        return results
    pm_rows = [i for i, a in enumerate(accounts) if a.mode == "portfolio"]
    if not pm_rows:
        return results
    pm_accounts = [accounts[i] for i in pm_rows]
    book = book_from_views(pm_accounts, profile)
    pm = portfolio_margin(book, markets, profile, now_s)
    decimals = profile.settlement_decimals
    for r, i in enumerate(pm_rows):
        std = results[i]
        im = ceil_units(float(pm.initial_margin[r]), decimals)
        mm = ceil_units(float(pm.maintenance_margin[r]), decimals)
        positions = tuple(replace(p, initial_margin=None, maintenance_margin=None) for p in std.positions)
        results[i] = replace(
            std,
            initial_margin=im,
            maintenance_margin=mm,
            free_collateral=std.equity - im,
            liquidatable=std.equity < mm,
            positions=positions,
            adjustments=(),
            portfolio=explain_account(book, pm, r, profile, full=explain),
        )
    return results


def _standard_margins(
    accounts: Sequence[AccountView], markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int
) -> list[AccountMargin]:
    decimals = profile.settlement_decimals
    scale = 10.0**decimals
    flat, options = _flatten(accounts, scale)
    opt_spot, opt_forward, opt_mark, opt_greeks = _price_options(options, markets, now_s)

    n = len(flat.size)
    spot = np.empty(n)
    for u in set(flat.underlying):
        mask = np.fromiter((x == u for x in flat.underlying), dtype=bool, count=n)
        spot[mask] = _market(markets, u, f"to value {u} positions").index
    key = flat.option_key
    is_opt = flat.is_option
    mark = np.where(is_opt, opt_mark[np.maximum(key, 0)] if len(options) else 0.0, spot)
    value = flat.size * mark + flat.quote
    greeks = np.where(
        is_opt,
        flat.size * opt_greeks[:, np.maximum(key, 0)] if len(options) else 0.0,
        np.stack([flat.size, np.zeros(n), np.zeros(n), np.zeros(n)]),
    )

    im, mm = _position_requirements(flat, spot, mark, value, profile)
    adjustments = (
        _derive_spread_adjustments(flat, accounts, im, mm, mark, opt_forward, profile)
        if profile.options.model == "derive"
        else {}
    )
    cols = _Columns.of(flat, accounts, mark, value, im, mm, greeks)
    return [
        _account_result(a, account, flat, cols, adjustments.get(a, ()), markets, profile)
        for a, account in enumerate(accounts)
    ]


@dataclass(frozen=True)
class _Columns:
    """Per-position numbers as Python floats and per-account sums, computed once for all accounts
    (the rows of one account are contiguous: `_flatten` walks accounts in order)."""

    offsets: np.ndarray
    mark: list[float]
    value: list[float]
    im: list[float]
    mm: list[float]
    greeks: list[list[float]]
    sums: np.ndarray  # accounts x (value + allocation, im, mm)

    @classmethod
    def of(cls, flat: _Flat, accounts, mark, value, im, mm, greeks) -> _Columns:
        n = len(accounts)
        offsets = np.concatenate(([0], np.cumsum(np.bincount(flat.account, minlength=n))))
        sums = (
            np.stack(
                [np.bincount(flat.account, weights=w, minlength=n) for w in (value + flat.allocation, im, mm)], axis=1
            )
            if len(flat.size)
            else np.zeros((n, 3))
        )
        return cls(offsets, mark.tolist(), value.tolist(), im.tolist(), mm.tolist(), greeks.T.tolist(), sums)


def _position_requirements(flat: _Flat, spot, mark, value, profile: Profile):
    qty = np.abs(flat.size)
    im, mm = np.zeros_like(qty), np.zeros_like(qty)
    perp = ~flat.is_option
    if perp.any():
        params = [profile.underlying(u).perp for u in np.asarray(flat.underlying, dtype=object)[perp]]
        ratios = np.array([(p.im_ratio, p.mm_ratio, p.size_ratio_per_unit) for p in params]).T
        im[perp], mm[perp] = perp_requirements(qty[perp], spot[perp], *ratios)
    short = flat.is_option & (flat.size < 0)
    if short.any():
        opts = profile.options
        fn, params = (
            (deribit_short_option, opts.deribit) if opts.model == "deribit" else (derive_short_option, opts.derive)
        )
        im[short], mm[short] = fn(spot[short], flat.strike[short], flat.is_call[short], qty[short], mark[short], params)
    long = flat.is_option & (flat.size > 0)
    im[long] = value[long] * (1.0 - profile.options.long_value_im_weight)
    mm[long] = value[long] * (1.0 - profile.options.long_value_mm_weight)
    return im, mm


def _derive_spread_adjustments(flat: _Flat, accounts, im, mm, mark, opt_forward, profile: Profile):
    """Lyra's per-expiry rule: requirement of an expiry's options = min(sum of isolated, MtM - max loss)."""
    p = profile.options.derive
    groups: dict[tuple[int, str, int], list[int]] = {}
    for i in np.flatnonzero(flat.is_option):
        if accounts[flat.account[i]].mode == "isolated":
            continue  # each isolated position stands alone: no offsets between them
        groups.setdefault((int(flat.account[i]), flat.underlying[i], int(flat.expiry_s[i])), []).append(int(i))
    out: dict[int, list[Adjustment]] = {}
    for (a, underlying, expiry_s), idx in groups.items():
        idx_arr = np.asarray(idx)
        if not (flat.size[idx_arr] < 0).any():
            continue
        forward = float(opt_forward[flat.option_key[idx_arr[0]]])
        mtm = float(np.sum(flat.size[idx_arr] * mark[idx_arr]))
        args = (flat.strike[idx_arr], flat.is_call[idx_arr], flat.size[idx_arr], forward)
        im_capped = min(float(im[idx_arr].sum()), mtm - derive_max_loss(*args, p.unpaired_im_scale))
        mm_capped = min(float(mm[idx_arr].sum()), mtm - derive_max_loss(*args, p.unpaired_mm_scale))
        d_im, d_mm = im_capped - float(im[idx_arr].sum()), mm_capped - float(mm[idx_arr].sum())
        if d_im < 0 or d_mm < 0:
            scope = f"{underlying}-{format_expiry(datetime.fromtimestamp(expiry_s, UTC))}"
            out.setdefault(a, []).append(Adjustment("max_loss", scope, d_im, d_mm))
    return out


def _collateral(account: AccountView, markets, profile: Profile) -> list[CollateralLine]:
    lines = []
    for asset, units in sorted(account.balances.items()):
        if units == 0:
            continue
        params = profile.asset(asset)
        price = (
            1.0 if asset == profile.settlement_asset else _market(markets, asset, f"to value {asset} collateral").index
        )
        amount = from_units(units, params.decimals)
        value = float(amount) * price
        positive = max(value, 0.0)  # a debt counts in full
        lines.append(
            CollateralLine(asset, amount, value, positive * (1 - params.im_weight), positive * (1 - params.mm_weight))
        )
    return lines


def _confidence_charges(flat: _Flat, idx, markets, profile: Profile) -> list[Adjustment]:
    """Lyra's confidence contingency for standard margin: below the threshold, initial margin
    rises by (1 - confidence) * factor * spot * |size| per underlying; maintenance does not."""
    config = profile.oracle
    sizes: dict[str, float] = {}
    for i in idx:
        sizes[flat.underlying[i]] = sizes.get(flat.underlying[i], 0.0) + abs(float(flat.size[i]))
    out = []
    for u, size in sorted(sizes.items()):
        snap = markets[u]
        if snap.confidence < config.confidence_im_threshold:
            charge = (1 - snap.confidence) * config.confidence_im_factor * snap.index * size
            out.append(Adjustment("oracle_confidence", u, charge, 0.0))
    return out


def _account_result(
    a: int, account: AccountView, flat: _Flat, cols: _Columns, adjustments, markets, profile: Profile
) -> AccountMargin:
    decimals = profile.settlement_decimals
    idx = range(int(cols.offsets[a]), int(cols.offsets[a + 1]))
    collateral = _collateral(account, markets, profile)
    coll_value = sum(c.value for c in collateral)
    coll_im = sum(c.im_haircut for c in collateral)
    coll_mm = sum(c.mm_haircut for c in collateral)
    isolated = account.mode == "isolated"
    positions = []
    by_underlying: dict[str, list[float]] = {}
    for i, pos in zip(idx, account.positions, strict=True):
        pos_liq = None
        if isolated:
            pos_equity = floor_units(cols.value[i] + float(flat.allocation[i]), decimals)
            pos_liq = pos_equity < ceil_units(cols.mm[i], decimals)
        greeks = cols.greeks[i]
        positions.append(
            PositionMargin(
                pos.instrument.name,
                pos.size,
                cols.mark[i],
                cols.value[i],
                cols.im[i],
                cols.mm[i],
                tuple(greeks),
                pos.allocation_units if isolated else None,
                pos_liq,
            )
        )
        acc = by_underlying.setdefault(flat.underlying[i], [0.0, 0.0, 0.0, 0.0])
        for k in range(4):
            acc[k] += greeks[k]
    adjustments = (*adjustments, *_confidence_charges(flat, idx, markets, profile))
    adj_im = sum(x.initial_margin for x in adjustments)
    adj_mm = sum(x.maintenance_margin for x in adjustments)
    value_sum, im_sum, mm_sum = (float(x) for x in cols.sums[a])
    equity = floor_units(coll_value + value_sum, decimals)
    total_im = ceil_units(coll_im + im_sum + adj_im, decimals)
    total_mm = ceil_units(coll_mm + mm_sum + adj_mm, decimals)
    if isolated:
        # Only the free pool backs new risk; each position stands on its own collateral.
        free = floor_units(coll_value - coll_im, decimals)
        liquidatable = any(p.liquidatable for p in positions) or free < 0
    else:
        free = equity - total_im
        liquidatable = equity < total_mm
    return AccountMargin(
        account.id,
        account.mode,
        decimals,
        equity,
        total_im,
        total_mm,
        free,
        liquidatable,
        tuple(positions),
        tuple(collateral),
        tuple(adjustments),
        {u: tuple(v) for u, v in sorted(by_underlying.items())},
    )

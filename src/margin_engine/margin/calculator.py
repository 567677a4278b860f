"""Margin for many accounts at once: standard margin for isolated and cross accounts, and for
portfolio accounts the profile's risk matrix (`portfolio.py`), or cross when it has none.

Positions of all accounts come as arrays (`flat.FlatBook`); each distinct option is priced once
with Black-76; requirements come from the per-position formulas of the profile's option model,
and sums per account are `np.bincount`s. Money meets integers once, per account: equity rounded
down, requirements rounded up. `margin_totals` stops there (what a keeper scan or a stress step
reads); `compute_margins` adds each account's explained result on the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from margin_engine.errors import MarketMissing
from margin_engine.instruments.names import format_expiry
from margin_engine.ledger.units import ceil_units_array, floor_units_array, from_units
from margin_engine.margin.book import AccountView
from margin_engine.margin.flat import FlatBook, flatten
from margin_engine.margin.portfolio import PortfolioResult, explain_account, portfolio_margin
from margin_engine.margin.profile import Profile
from margin_engine.margin.result import AccountMargin, Adjustment, CollateralLine, Greeks, PositionMargin
from margin_engine.margin.standard import (
    deribit_short_option,
    derive_max_loss,
    derive_short_option,
    perp_requirements,
)
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.perp.tiers import dydx_initial_fraction
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76


@dataclass(frozen=True)
class MarginTotals:
    """Per-account totals in the settlement asset's smallest units (int64; Python ints past 2**62),
    in the book's order."""

    ids: tuple[str, ...]
    equity: np.ndarray
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray
    free_collateral: np.ndarray  # isolated: the free pool less its haircut
    liquidatable: np.ndarray
    notional_usd: np.ndarray  # gross: sum of |size| x index over positions (float)

    def __len__(self) -> int:
        return len(self.ids)


def _market(markets: Mapping[str, MarketSnapshot], underlying: str, why: str) -> MarketSnapshot:
    try:
        return markets[underlying]
    except KeyError:
        raise MarketMissing(
            f"market.{underlying}", f"no market for {underlying} ({why}); set its index and vol first"
        ) from None


def stable_price(markets: Mapping[str, MarketSnapshot], profile: Profile) -> float:
    """USD per unit of the settlement stablecoin: its price-only market, else par."""
    snap = markets.get(profile.settlement_asset)
    return 1.0 if snap is None else snap.index


def _price_options(book: FlatBook, markets, profile: Profile, now_s: int):
    """Black-76 for each distinct option once, on each expiry's forward: (forward, mark, greeks as
    4 x n, confidence of the feeds each reads)."""
    options = book.options
    n = len(options)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, np.zeros((4, 0)), empty
    forward, rate, vol, confidence = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    expiry = np.fromiter((o.expiry_s for o in options), dtype=np.int64, count=n)
    strike = np.fromiter((float(o.strike) for o in options), dtype=float, count=n)
    is_call = np.fromiter((o.is_call for o in options), dtype=bool, count=n)
    by_underlying: dict[str, list[int]] = {}
    for i, o in enumerate(options):
        by_underlying.setdefault(o.underlying, []).append(i)
    for underlying, idx in by_underlying.items():
        snap = _market(markets, underlying, f"to price {options[idx[0]].name}")
        forward[idx] = snap.forwards_at(expiry[idx], now_s)[0]
        rate[idx] = snap.rates_at(expiry[idx])
        vol[idx] = snap.surface.vols(expiry[idx], strike[idx], now_s)
        # Derive's standard manager reads spot, forward and vol confidence per expiry (not the rate)
        confidence[idx] = np.minimum(
            snap.confidence,
            np.minimum(snap.forward_confidence.at(expiry[idx], ""), snap.vol_confidence.at(expiry[idx], "")),
        )
    t = np.maximum(expiry - now_s, 0) / SECONDS_PER_YEAR
    g = black76(forward, strike, t, vol, rate if profile.options.discount_by_rate else 0.0, is_call)
    return forward, g.price, np.stack([g.delta, g.gamma, g.vega, g.theta]), confidence


@dataclass(frozen=True)
class _Priced:
    """One pricing of a book: per-position numbers, per-account sums and the totals."""

    mark: np.ndarray
    value: np.ndarray
    im: np.ndarray
    mm: np.ndarray
    greeks: np.ndarray  # 4 x positions
    position_liquidatable: np.ndarray  # isolated positions
    collateral: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # per asset: value, im and mm haircuts
    adjustments: dict[int, list[Adjustment]]
    totals: MarginTotals


def _price_book(book: FlatBook, markets, profile: Profile, now_s: int) -> _Priced:
    decimals = profile.settlement_decimals
    opt_forward, opt_mark, opt_greeks, opt_confidence = _price_options(book, markets, profile, now_s)
    snaps = [_market(markets, u, f"to value {u} positions") for u in book.underlyings]
    index = np.array([m.index for m in snaps])
    perp_mark = np.array([m.perp_mark for m in snaps])
    n, n_acc = len(book.size), len(book)
    spot = index[book.underlying] if n else np.zeros(0)
    perp_price = perp_mark[book.underlying] if n else np.zeros(0)
    dated = ~book.is_option & (book.expiry_s > 0)
    if dated.any():  # a dated future is marked at its expiry's forward (the options' forward)
        perp_price = perp_price.copy()
        for u in np.unique(book.underlying[dated]):
            rows = dated & (book.underlying == u)
            perp_price[rows] = snaps[u].forwards_at(book.expiry_s[rows], now_s)[0]
    key = np.maximum(book.option_key, 0)
    is_opt = book.is_option
    mark = np.where(is_opt, opt_mark[key], perp_price) if len(book.options) else perp_price
    value = book.size * mark + book.quote
    greeks = np.stack([book.size, np.zeros(n), np.zeros(n), np.zeros(n)])
    if len(book.options):
        greeks = np.where(is_opt, book.size * opt_greeks[:, key], greeks)

    im, mm = _position_requirements(book, spot, mark, value, profile, markets)
    stable = stable_price(markets, profile)
    adjustments = (
        _derive_spread_adjustments(book, im, mm, mark, opt_forward, profile)
        if profile.options.model == "derive"
        else {}
    )
    adj_im, adj_mm = np.zeros(n_acc), np.zeros(n_acc)
    for a, adj in adjustments.items():
        for x in adj:
            adj_im[a] += x.initial_margin
            adj_mm[a] += x.maintenance_margin
    row_confidence = opt_confidence[key] if len(book.options) else np.ones(n)
    charges = [
        *(("oracle_confidence", u, c) for u, c in _confidence_charges(book, markets, profile, row_confidence)),
        *(("stable_depeg", u, c) for u, c in _depeg_charges(book, markets, profile, stable)),
    ]
    for kind, u, charge in charges:
        adj_im = adj_im + charge
        for a in np.flatnonzero(charge):
            adjustments.setdefault(int(a), []).append(Adjustment(kind, u, float(charge[a]), 0.0))

    collateral = _collateral(book, markets, profile, stable)
    coll_value, coll_im, coll_mm = np.zeros(n_acc), np.zeros(n_acc), np.zeros(n_acc)
    for v, h_im, h_mm in collateral:
        coll_value, coll_im, coll_mm = coll_value + v, coll_im + h_im, coll_mm + h_mm
    sums = [np.bincount(book.account, weights=w, minlength=n_acc) for w in (value + book.allocation, im, mm)]
    # one rounding pass for all three: floor(v) = -ceil(-v) under the half-even snap
    rounded = ceil_units_array(
        np.concatenate((-(coll_value + sums[0]), coll_im + sums[1] + adj_im, coll_mm + sums[2] + adj_mm)), decimals
    )
    equity, total_im, total_mm = -rounded[:n_acc], rounded[n_acc : 2 * n_acc], rounded[2 * n_acc :]

    # Isolated: each position stands on its own collateral; only the free pool backs new risk.
    # A position worth less than its collateral leaves a deficit that the free pool pays first when
    # it is liquidated (`_fixed_isolated`), so the free collateral a withdrawal or new risk may use
    # is the free pool less those deficits: the same rule on both sides.
    iso_rows = book.isolated[book.account] if n else np.zeros(0, dtype=bool)
    pos_liq = np.zeros(n, dtype=bool)
    deficits = np.zeros(n_acc, dtype=np.int64)
    if iso_rows.any():
        pos_equity = floor_units_array(value[iso_rows] + book.allocation[iso_rows], decimals)
        pos_liq[iso_rows] = pos_equity < ceil_units_array(mm[iso_rows], decimals)
        owed = np.maximum(-pos_equity, 0)
        deficits = deficits.astype(owed.dtype)
        np.add.at(deficits, book.account[iso_rows], owed)
    free = equity - total_im
    liquidatable = equity < total_mm
    if book.isolated.any():
        free_pool = floor_units_array(coll_value - coll_im, decimals) - deficits
        any_pos = np.bincount(book.account, weights=pos_liq, minlength=n_acc) > 0
        free = np.where(book.isolated, free_pool, free)
        liquidatable = np.where(book.isolated, any_pos | (free_pool < 0), liquidatable)
    notional = np.bincount(
        book.account, weights=np.abs(book.size) * np.where(is_opt, spot, perp_price), minlength=n_acc
    )
    totals = MarginTotals(book.ids, equity, total_im, total_mm, free, liquidatable, notional)
    return _Priced(mark, value, im, mm, greeks, pos_liq, collateral, adjustments, totals)


def _with_portfolio(book: FlatBook, priced: _Priced, markets, profile: Profile, now_s: int):
    """Portfolio-mode accounts take the risk matrix's requirements (equity stays the standard one)."""
    if profile.portfolio is None or not book.portfolio.any():
        return priced.totals, None, None
    rows, pm_book = book.portfolio_book(profile)
    pm = portfolio_margin(pm_book, markets, profile, now_s)
    decimals = profile.settlement_decimals
    t = priced.totals
    pm_im = ceil_units_array(pm.initial_margin, decimals)
    pm_mm = ceil_units_array(pm.maintenance_margin, decimals)
    # Python ints past 2**62 (object arrays) in any part widen the whole column
    wide = object in (pm_im.dtype, pm_mm.dtype, t.initial_margin.dtype, t.equity.dtype)
    im, mm, free = (
        x.astype(object if wide else x.dtype) for x in (t.initial_margin, t.maintenance_margin, t.free_collateral)
    )
    im[rows], mm[rows] = pm_im, pm_mm
    free[rows] = t.equity[rows] - im[rows]
    liquidatable = t.liquidatable.copy()
    liquidatable[rows] = t.equity[rows] < mm[rows]
    return MarginTotals(t.ids, t.equity, im, mm, free, liquidatable, t.notional_usd), (rows, pm_book), pm


def margin_totals(book: FlatBook, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int) -> MarginTotals:
    """Equity, requirements and liquidatable flags of every account of the book, nothing else."""
    return _with_portfolio(book, _price_book(book, markets, profile, now_s), markets, profile, now_s)[0]


def compute_margins(
    accounts: Sequence[AccountView],
    markets: Mapping[str, MarketSnapshot],
    profile: Profile,
    now_s: int,
    explain: bool = False,
    book: FlatBook | None = None,
) -> list[AccountMargin]:
    """Margin of every account; raises InputError when a needed market is missing.

    Accounts in portfolio mode use the profile's risk matrix when it has one (else cross);
    `explain` adds each one's scenario P&L vector and per-position contributions. `book`, when
    given, is `flatten(accounts, profile)` already built.
    """
    book = book if book is not None else flatten(accounts, profile)
    priced = _price_book(book, markets, profile, now_s)
    totals, pm_rows, pm = _with_portfolio(book, priced, markets, profile, now_s)
    index = {u: markets[u].index for u in book.underlyings}
    results = [_account_result(a, book, priced, totals, profile, index) for a in range(len(book))]
    if pm_rows is not None:
        rows, pm_book = pm_rows
        for r, i in enumerate(rows):
            results[i] = _portfolio_result(results[i], pm_book, pm, r, profile, explain)
    return results


def _portfolio_result(std: AccountMargin, pm_book, pm: PortfolioResult, r: int, profile: Profile, explain: bool):
    positions = tuple(replace(p, initial_margin=None, maintenance_margin=None) for p in std.positions)
    return replace(
        std, positions=positions, adjustments=(), portfolio=explain_account(pm_book, pm, r, profile, full=explain)
    )


def _position_requirements(book: FlatBook, spot, mark, value, profile: Profile, markets):
    qty = np.abs(book.size)
    im, mm = np.zeros_like(qty), np.zeros_like(qty)
    perp = ~book.is_option
    for code, u in enumerate(book.underlyings):
        rows = perp & (book.underlying == code)
        if rows.any():
            p = profile.underlying(u).perp
            im_ratio = p.im_ratio
            if p.open_interest_lower_cap_usd is not None and p.open_interest_upper_cap_usd is not None:
                m = markets[u]  # dYdX: the fraction grows with the market's open interest at the index
                oi_usd = m.open_interest * m.index
                im_ratio = dydx_initial_fraction(
                    p.im_ratio, oi_usd, p.open_interest_lower_cap_usd, p.open_interest_upper_cap_usd
                )
            # on the perp's mark price (Derive: perp.getPerpPrice(); Deribit: the mark price)
            im[rows], mm[rows] = perp_requirements(
                qty[rows], mark[rows], im_ratio, p.mm_ratio, p.size_ratio_per_unit, p.imf_factor, p.tier_table()
            )
    short = book.is_option & (book.size < 0)
    if short.any():
        opts = profile.options
        args = (spot[short], book.strike[short], book.is_call[short], qty[short], mark[short])
        if opts.model == "deribit":
            im[short], mm[short] = deribit_short_option(*args, opts.deribit)
        else:
            im[short], mm[short] = derive_short_option(*args, opts.derive)
    long = book.is_option & (book.size > 0)
    im[long] = value[long] * (1.0 - profile.options.long_value_im_weight)
    mm[long] = value[long] * (1.0 - profile.options.long_value_mm_weight)
    return im, mm


def _derive_spread_adjustments(book: FlatBook, im, mm, mark, opt_forward, profile: Profile):
    """Lyra's per-expiry rule: requirement of an expiry's options = min(sum of isolated, MtM - max loss)."""
    p = profile.options.derive
    out: dict[int, list[Adjustment]] = {}
    for (a, u, expiry_s), idx in book.expiry_groups.items():
        if not (book.size[idx] < 0).any():
            continue
        forward = float(opt_forward[book.option_key[idx[0]]])
        mtm = float(np.sum(book.size[idx] * mark[idx]))
        args = (book.strike[idx], book.is_call[idx], book.size[idx], forward)
        im_capped = min(float(im[idx].sum()), mtm - derive_max_loss(*args, p.unpaired_im_scale))
        mm_capped = min(float(mm[idx].sum()), mtm - derive_max_loss(*args, p.unpaired_mm_scale))
        d_im, d_mm = im_capped - float(im[idx].sum()), mm_capped - float(mm[idx].sum())
        if d_im < 0 or d_mm < 0:
            scope = f"{book.underlyings[u]}-{format_expiry(datetime.fromtimestamp(expiry_s, UTC))}"
            out.setdefault(a, []).append(Adjustment("max_loss", scope, d_im, d_mm))
    return out


def _confidence_charges(book: FlatBook, markets, profile: Profile, row_confidence: np.ndarray):
    """Derive's oracle contingency for standard margin, on initial margin only: below the threshold
    a feed's confidence c adds (1 - c) * factor * spot * size, for perps at min(perp, spot), for
    each expiry's *short* options at min(spot, forward, vol) of that expiry, and for base-asset
    collateral at the spot's (StandardManager._getNetPerpMargin, _getNetOptionMarginAndMtM,
    _getBaseMarginAndMtM), also in accounts that hold nothing but the collateral.
    Yields (underlying, charge per account) where any account is charged."""
    config = profile.oracle
    threshold, factor = config.confidence_im_threshold, config.confidence_im_factor
    n_acc = len(book)
    qty = np.abs(book.size)
    collateral = [a for a in book.assets if a != profile.settlement_asset and book.held[:, book.assets.index(a)].any()]
    for u in sorted(set(book.underlyings) | set(collateral)):
        snap = _market(markets, u, f"to value {u}")
        charge = np.zeros(n_acc)
        if u in book.underlyings:
            on_u = book.underlying == book.underlyings.index(u)
            perp = on_u & ~book.is_option
            c_perp = min(snap.perp_confidence, snap.confidence)
            if perp.any() and c_perp < threshold:
                charge += np.bincount(book.account[perp], weights=(1 - c_perp) * qty[perp], minlength=n_acc)
            short = on_u & book.is_option & (book.size < 0) & (row_confidence < threshold)
            if short.any():
                weights = (1 - row_confidence[short]) * qty[short]
                charge += np.bincount(book.account[short], weights=weights, minlength=n_acc)
        if u in collateral and snap.confidence < threshold:
            amount = np.maximum(book.amounts[:, book.assets.index(u)], 0.0)
            charge += (1 - snap.confidence) * amount
        charge *= factor * snap.index
        if charge.any():
            yield u, charge


def _depeg_charges(book: FlatBook, markets, profile: Profile, stable: float):
    """Derive's standard-manager depeg charge (see `DepegParams`): per underlying,
    (threshold - stable) * factor * spot * (|perps| + |short options|), on initial margin only."""
    depeg = profile.depeg
    if depeg is None or stable >= depeg.threshold_usd or not len(book.size):
        return
    multiplier = (depeg.threshold_usd - stable) * depeg.im_factor
    exposed = np.where(book.is_option, np.maximum(-book.size, 0.0), np.abs(book.size))
    for code, u in enumerate(book.underlyings):
        rows = book.underlying == code
        price = multiplier * _market(markets, u, f"to value {u}").index
        charge = np.bincount(book.account[rows], weights=exposed[rows], minlength=len(book)).astype(float) * price
        if charge.any():
            yield u, charge


def _collateral(
    book: FlatBook, markets, profile: Profile, stable: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per asset: each account's collateral value in the settlement asset and its haircuts (zero
    where it holds none). A crypto asset is worth amount * index / stablecoin price; what counts
    as margin is amount * index * weight, in USD, as Derive's standard manager values base assets
    (marginFactor on the USD notional, mark-to-market in the stablecoin)."""
    lines = []
    for j, asset in enumerate(book.assets):
        held = book.held[:, j]
        if not held.any():
            lines.append((np.zeros(len(book)),) * 3)
            continue
        params = profile.asset(asset)
        if asset == profile.settlement_asset:
            value = np.where(held, book.amounts[:, j], 0.0)
            usd = value
        else:
            price = _market(markets, asset, f"to value {asset} collateral").index
            usd = np.where(held, book.amounts[:, j] * price, 0.0)
            value = usd / stable
        positive = usd > 0  # a debt counts in full
        lines.append(
            (
                value,
                np.where(positive, value - usd * params.im_weight, 0.0),
                np.where(positive, value - usd * params.mm_weight, 0.0),
            )
        )
    return lines


def _account_result(
    a: int, book: FlatBook, priced: _Priced, totals: MarginTotals, profile: Profile, index: dict[str, float]
) -> AccountMargin:
    decimals = profile.settlement_decimals
    view = book.views[a]
    start, end = int(book.offsets[a]), int(book.offsets[a + 1])
    isolated = bool(book.isolated[a])
    positions = []
    by_underlying: dict[str, list[float]] = {}
    for i, pos in zip(range(start, end), view.positions, strict=True):
        delta, gamma, vega, theta = (float(g) for g in priced.greeks[:, i])
        greeks = Greeks(delta, gamma, vega, theta)
        positions.append(
            PositionMargin(
                pos.instrument.name,
                pos.size,
                float(priced.mark[i]),
                float(priced.value[i]),
                float(priced.im[i]),
                float(priced.mm[i]),
                greeks,
                pos.allocation_units if isolated else None,
                bool(priced.position_liquidatable[i]) if isolated else None,
                None if book.is_option[i] else float(priced.mark[i]) - index[pos.instrument.underlying],
            )
        )
        acc = by_underlying.setdefault(pos.instrument.underlying, [0.0, 0.0, 0.0, 0.0])
        for k in range(4):
            acc[k] += greeks[k]
    collateral = [
        CollateralLine(
            asset,
            from_units(view.balances[asset], profile.asset(asset).decimals),
            *(float(x[a]) for x in line),
        )
        for j, (asset, line) in enumerate(zip(book.assets, priced.collateral, strict=True))
        if book.held[a, j]
    ]
    return AccountMargin(
        view.id,
        view.mode,
        decimals,
        int(totals.equity[a]),
        int(totals.initial_margin[a]),
        int(totals.maintenance_margin[a]),
        int(totals.free_collateral[a]),
        bool(totals.liquidatable[a]),
        tuple(positions),
        tuple(collateral),
        tuple(priced.adjustments.get(a, ())),
        {u: Greeks(v[0], v[1], v[2], v[3]) for u, v in sorted(by_underlying.items())},
    )

"""Portfolio margin on a risk matrix, for every account at once.

Each distinct instrument is repriced once per scenario of its underlying (Black-76 for options,
spot for perps and crypto collateral), giving an instruments x scenarios P&L matrix; a sparse
accounts x instruments position matrix times that matrix gives every account's P&L in every
scenario. There is no Python loop over accounts or positions on this path; the loops are over
underlyings and expiries. Per underlying u (underlyings do not offset each other, as in
segregated SPAN), following Lyra's PMRMLib.getMarginAndMarkToMarket:

    loss_u = max(0, -min_j weight_j * PnL_j, basis loss)      base_u = loss_u + static_u
    MM = mm_factor * sum_u base_u + haircuts
    IM = im_factor * sum_u base_u + confidence charges + haircuts

Static contingencies: a minimum per net short option per (expiry, strike); charges per perp and
per unit of crypto collateral (Lyra); a delta shock on the net linear delta (Deribit). The basis
loss moves only the options' forward (Lyra's basis scenarios) and floors the worst case; the
confidence charge applies to initial margin only. Where the profile discounts option value
(Lyra's static discount), a positive shocked value of each expiry's options is discounted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from margin_engine.errors import MarketMissing
from margin_engine.instruments.names import Option
from margin_engine.margin.book import AccountView
from margin_engine.margin.profile import Profile
from margin_engine.margin.scenarios import ScenarioSet, scenario_set, shocked_vols
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76

PERP, OPTION, COLLATERAL = 0, 1, 2
CONTINGENCIES = ("short_option", "perp_static", "base_static", "delta_shock")


@dataclass(frozen=True)
class InstrumentTable:
    """Distinct instruments of a book; crypto collateral is an instrument of kind COLLATERAL."""

    names: list[str]
    underlying: np.ndarray  # index into `underlyings`
    kind: np.ndarray  # PERP (perps and dated futures, the latter with an expiry), OPTION or COLLATERAL
    strike: np.ndarray
    expiry_s: np.ndarray
    is_call: np.ndarray
    underlyings: list[str]


@dataclass
class PortfolioBook:
    """Accounts x instruments in sparse form, plus each account's cash (settlement asset + perp quotes)."""

    account_ids: list[str]
    instruments: InstrumentTable
    positions: sp.csr_matrix
    cash: np.ndarray
    blocks: dict[int, _Block] = field(default_factory=dict)

    def __post_init__(self) -> None:
        csc = self.positions.tocsc()
        for u in range(len(self.instruments.underlyings)):
            cols = np.flatnonzero(self.instruments.underlying == u)
            sub = csc[:, cols].tocsr()
            holders = np.flatnonzero(np.diff(sub.indptr))
            if len(holders):
                self.blocks[u] = _Block(cols, holders, sub[holders])


@dataclass(frozen=True)
class _Block:
    """One underlying's columns, the accounts that hold any of them, and their sub-matrix."""

    cols: np.ndarray
    holders: np.ndarray
    matrix: sp.csr_matrix

    def expiry_groups(
        self, kind: np.ndarray, expiry_s: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, sp.csr_matrix]]:
        """Per expiry: its columns within the block, the block rows holding it, their sub-matrix."""
        csc = self.matrix.tocsc()
        local = np.arange(len(self.cols))
        groups = []
        for e in np.unique(expiry_s[self.cols][kind[self.cols] == OPTION]):
            cols = local[(kind[self.cols] == OPTION) & (expiry_s[self.cols] == e)]
            sub = csc[:, cols].tocsr()
            rows = np.flatnonzero(np.diff(sub.indptr))
            groups.append((cols, rows, sub[rows]))
        return groups


@dataclass(frozen=True)
class UnderlyingRisk:
    """Per-underlying result for the accounts that hold it (rows align with block.holders)."""

    scenarios: ScenarioSet
    pnl: np.ndarray  # holders x scenarios, weighted (and discounted)
    worst: np.ndarray  # index of the worst scenario per holder
    basis_loss: np.ndarray  # loss when only the options' forward moves (floors the worst case)
    loss: np.ndarray  # max(0, -min weighted P&L, basis loss)
    contingencies: dict[str, np.ndarray]  # static: added to the loss
    confidence: np.ndarray  # initial margin only
    instrument_pnl: np.ndarray  # instruments of the block x scenarios, weighted (for explain)
    value: np.ndarray  # mark value of the holder's positions and collateral in this underlying
    haircut_im: np.ndarray  # collateral value * (1 - weight)
    haircut_mm: np.ndarray

    @property
    def base(self) -> np.ndarray:
        return self.loss + sum(self.contingencies.values())


@dataclass(frozen=True)
class PortfolioResult:
    equity: np.ndarray
    base: np.ndarray
    confidence: np.ndarray
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray
    haircut_im: np.ndarray
    haircut_mm: np.ndarray
    by_underlying: dict[int, UnderlyingRisk]
    im_factor: float  # the profile's, raised by a peg loss


def book_from_views(accounts: Sequence[AccountView], profile: Profile) -> PortfolioBook:
    """Build the sparse book from account views (the CLI and engine path; the benchmark builds arrays)."""
    underlyings = sorted(profile.underlyings)
    u_index = {u: i for i, u in enumerate(underlyings)}
    names: dict[str, int] = {}
    meta: list[tuple] = []
    rows, cols, vals = [], [], []
    scale = 10.0**profile.settlement_decimals
    cash = np.zeros(len(accounts))

    def column(name: str, row: tuple) -> int:
        if name not in names:
            names[name] = len(meta)
            meta.append(row)
        return names[name]

    for a, account in enumerate(accounts):
        for asset, units in account.balances.items():
            if asset == profile.settlement_asset:
                cash[a] += units / scale
            elif units:
                c = column(f"{asset} collateral", (u_index[asset], COLLATERAL, 0.0, 0, False))
                rows.append(a)
                cols.append(c)
                vals.append(units / 10.0 ** profile.assets[asset].decimals)
        for pos in account.positions:
            inst = pos.instrument
            if isinstance(inst, Option):
                row = (u_index[inst.underlying], OPTION, float(inst.strike), inst.expiry_s, inst.is_call)
            else:
                row = (u_index[inst.underlying], PERP, 0.0, getattr(inst, "expiry_s", 0), False)  # dated: expiry
                cash[a] += pos.quote_units / scale
            cash[a] += pos.allocation_units / scale
            rows.append(a)
            cols.append(column(inst.name, row))
            vals.append(float(pos.size))
    m = list(zip(*meta, strict=True)) if meta else [()] * 5
    table = InstrumentTable(
        list(names),
        np.asarray(m[0], dtype=np.int64),
        np.asarray(m[1], dtype=np.int8),
        np.asarray(m[2], dtype=float),
        np.asarray(m[3], dtype=np.int64),
        np.asarray(m[4], dtype=bool),
        underlyings,
    )
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(accounts), len(names)), dtype=float)
    return PortfolioBook([a.id for a in accounts], table, matrix, cash)


def _snapshot(markets: Mapping[str, MarketSnapshot], underlying: str) -> MarketSnapshot:
    try:
        return markets[underlying]
    except KeyError:
        raise MarketMissing(f"market.{underlying}", f"no market for {underlying}; portfolio margin needs it") from None


def _option_values(t: InstrumentTable, cols: np.ndarray, snap: MarketSnapshot, profile: Profile, now_s: int):
    """For option columns: years to expiry, vol now, the forward's shocked and fixed parts, the
    expiry's rate, the rate Black-76 discounts at, and the value now."""
    years = np.maximum(t.expiry_s[cols] - now_s, 0) / SECONDS_PER_YEAR
    vol = snap.surface.vols(t.expiry_s[cols], t.strike[cols], now_s)
    forward, fixed = snap.forwards_at(t.expiry_s[cols], now_s)
    rate = snap.rates_at(t.expiry_s[cols])
    r_price = rate if profile.options.discount_by_rate else np.zeros(len(cols))
    value = black76(forward, t.strike[cols], years, vol, r_price, t.is_call[cols]).price
    return years, vol, forward - fixed, fixed, rate, r_price, value


def _shocked(t, cols, years, vols, variable, fixed, r_price, mult) -> np.ndarray:
    """Option values with the forward's variable part times each multiplier (columns x mults)."""
    mult = np.atleast_1d(mult)
    return black76(
        variable[:, None] * mult[None, :] + fixed[:, None],
        t.strike[cols][:, None],
        years[:, None],
        vols,
        r_price[:, None],
        t.is_call[cols][:, None],
    ).price


def underlying_risk(
    book: PortfolioBook,
    u: int,
    snap: MarketSnapshot,
    profile: Profile,
    now_s: int,
    stable: MarketSnapshot | None = None,
) -> UnderlyingRisk:
    """Scenario P&L, worst case and contingencies of every account holding underlying u.

    Valued as Derive's PMRMLib values a portfolio: options on each expiry's forward (its variable
    part shocked, its fixed part not), perps at their mark, base collateral at spot over the
    stablecoin's price; `stable` is the settlement stablecoin's price-only market (par if None).
    """
    pm = profile.portfolio_params
    assert pm is not None
    params = pm.underlyings[book.instruments.underlyings[u]]
    scen = scenario_set(pm, params)
    block = book.blocks[u]
    t = book.instruments
    cols = block.cols
    kind = t.kind[cols]
    opt = kind == OPTION
    spot, perp_price = snap.index, snap.perp_mark
    stable_price = 1.0 if stable is None else stable.index
    unit = np.where(kind == PERP, perp_price, spot / stable_price)  # value of one unit of a linear column
    dated = (kind == PERP) & (t.expiry_s[cols] > 0)
    if dated.any():  # a dated future at its expiry's forward
        unit[dated] = snap.forwards_at(t.expiry_s[cols][dated], now_s)[0]
    v0 = unit.copy()
    values = unit[:, None] * scen.spot_mult[None, :]
    years = np.zeros(len(cols))
    if opt.any():
        c = cols[opt]
        years[opt], vol, variable, fixed, rate, r_price, v0[opt] = _option_values(t, c, snap, profile, now_s)
        vols = shocked_vols(vol, years[opt] * 365.0, scen.vol_shock, pm, params)
        values[opt] = _shocked(t, c, years[opt], vols, variable, fixed, r_price, scen.spot_mult)
    pnl = (values - v0[:, None]) * scen.weight[None, :]

    matrix = block.matrix
    discounted = (
        pm.option_value_discount_static < 1
        or pm.option_value_discount_rate_add > 0
        or pm.option_value_discount_rate_mult > 0
    )
    groups = block.expiry_groups(t.kind, t.expiry_s) if opt.any() else []
    if discounted:
        account_pnl = matrix @ np.where(opt[:, None], 0.0, pnl)
        rate_of = dict(zip(np.flatnonzero(opt), rate, strict=True)) if opt.any() else {}
        for group_cols, rows, sub in groups:
            # Derive's static discount: a positive shocked value of an expiry's options counts at
            # d * e^(-T (mult * r + add)) with the expiry's rate; the change is taken from the
            # undiscounted value now (PMRMLib._addStaticDiscount, _applyMTMDiscount)
            tau = years[group_cols[0]]
            shock_rate = (
                pm.option_value_discount_rate_mult * rate_of[int(group_cols[0])] + pm.option_value_discount_rate_add
            )
            disc = pm.option_value_discount_static * np.exp(-tau * shock_rate)
            shocked = sub @ values[group_cols]
            now = sub @ v0[group_cols]
            shocked = np.where(shocked > 0, shocked * disc, shocked)
            account_pnl[rows] += (shocked - now[:, None]) * scen.weight[None, :]
    else:
        account_pnl = matrix @ pnl
    worst = np.argmin(account_pnl, axis=1)
    basis = _basis_loss(block, groups, opt, v0, years, t, snap, profile, now_s)
    loss = np.maximum(np.maximum(0.0, -account_pnl[np.arange(len(worst)), worst]), basis)
    static = _static_contingencies(block, opt, kind, t, spot, pm)
    confidence = _confidence(block, kind, t, snap, stable, pm)
    asset = profile.assets.get(book.instruments.underlyings[u])
    collateral_value = matrix @ np.where(kind == COLLATERAL, v0, 0.0)
    im_w, mm_w = (asset.im_weight, asset.mm_weight) if asset else (1.0, 1.0)
    share = pm.collateral_haircut_share
    usd = collateral_value * stable_price
    return UnderlyingRisk(
        scen,
        account_pnl,
        worst,
        basis,
        loss,
        static,
        confidence,
        pnl,
        matrix @ v0,
        (collateral_value - usd * im_w) * share,
        (collateral_value - usd * mm_w) * share,
    )


def _basis_loss(block, groups, opt, v0, years, t, snap, profile, now_s) -> np.ndarray:
    """Derive's basis contingency (PMRMLib._addBasisContingency): per expiry, the options' forward
    moves up and down by basis_shock_ratio (perps and collateral do not), the expiry's loss is
    -min(up, down, 0), times basis_factor + basis_factor_per_year * T; summed over expiries."""
    pm = profile.portfolio_params
    total = np.zeros(len(block.holders))
    if not (pm.basis_shock_ratio and opt.any()):
        return total
    b = pm.basis_shock_ratio
    for group_cols, rows, sub in groups:
        c = block.cols[group_cols]
        yrs, vol, variable, fixed, _, r_price, value = _option_values(t, c, snap, profile, now_s)
        moved = _shocked(t, c, yrs, vol[:, None], variable, fixed, r_price, np.array([1 - b, 1 + b]))
        change = sub @ (moved - value[:, None])  # rows x (down, up)
        factor = pm.basis_factor + pm.basis_factor_per_year * float(years[group_cols[0]])
        total[rows] += -np.minimum(change.min(axis=1), 0.0) * factor
    return total


def _confidence(block, kind, t, snap: MarketSnapshot, stable: MarketSnapshot | None, pm) -> np.ndarray:
    """Derive's confidence contingency, on initial margin only: (1 - c) * confMargin * spot * size
    wherever the feeds' lowest confidence c is below the threshold; perps and base collateral at
    the spot's and the stablecoin's (and the perp feed's), each expiry's options (long or short,
    netOptions) also at that expiry's forward, rate and vol confidence (PMRM._arrangePortfolio,
    PMRMLib._getConfidenceContingency)."""
    if not pm.confidence_factor:
        return np.zeros(len(block.holders))
    cols = block.cols
    linear = min(snap.confidence, 1.0 if stable is None else stable.confidence)
    conf = np.where(kind == PERP, min(linear, snap.perp_confidence), linear)
    opt = kind == OPTION
    if opt.any():
        conf[opt] = np.minimum(linear, snap.option_confidence(t.expiry_s[cols][opt]))
    charge = np.where(conf < pm.confidence_threshold, 1 - conf, 0.0)
    return pm.confidence_factor * snap.index * (abs(block.matrix) @ charge)


def _static_contingencies(block, opt, kind, t, spot, pm) -> dict[str, np.ndarray]:
    cols, matrix = block.cols, block.matrix
    out: dict[str, np.ndarray] = {}
    if pm.short_option_min_spot_ratio and not opt.any():
        out["short_option"] = np.zeros(matrix.shape[0])  # the same keys whichever accounts share the batch
    elif pm.short_option_min_spot_ratio:
        # net size per (expiry, strike): a call and a put at one strike offset each other when one
        # is long and the other short; two shorts add (Deribit's example, Lyra's nakedShorts)
        keys = np.stack([t.expiry_s[cols], t.strike[cols]])[:, opt]
        _, group = np.unique(keys, axis=1, return_inverse=True)
        grouping = sp.csr_matrix(
            (np.ones(opt.sum()), (np.flatnonzero(opt), group.ravel())), shape=(len(cols), int(group.max()) + 1)
        )
        net = (matrix @ grouping).tocsr()
        net.data = np.maximum(-net.data, 0.0)
        out["short_option"] = pm.short_option_min_spot_ratio * spot * np.asarray(net.sum(axis=1)).ravel()
    abs_matrix = abs(matrix)
    if pm.perp_static_spot_ratio:
        out["perp_static"] = pm.perp_static_spot_ratio * spot * (abs_matrix @ (kind == PERP).astype(float))
    if pm.base_static_spot_ratio:
        out["base_static"] = pm.base_static_spot_ratio * spot * (abs_matrix @ (kind == COLLATERAL).astype(float))
    if pm.delta_shock_spot_ratio:
        # Deribit's delta shock replaced its futures contingency: it charges the linear delta
        # (perps and collateral), so a long option never needs more than its premium.
        out["delta_shock"] = pm.delta_shock_spot_ratio * spot * np.abs(matrix @ (kind != OPTION).astype(float))
    return out


def portfolio_margin(
    book: PortfolioBook, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int
) -> PortfolioResult:
    """Full recompute of every account."""
    stable = markets.get(profile.settlement_asset)
    risks = {
        u: underlying_risk(book, u, _snapshot(markets, book.instruments.underlyings[u]), profile, now_s, stable)
        for u in book.blocks
    }
    return combine(book, risks, profile, stable)


def im_factor(pm, stable: MarketSnapshot | None) -> float:
    """The IM factor, raised by Derive's peg loss when the stablecoin trades below its threshold:
    im_factor + (threshold - price) * peg_loss_factor (PMRMLib.getMarginAndMarkToMarket)."""
    if stable is None or stable.index >= pm.peg_loss_threshold_usd:
        return pm.im_factor
    return pm.im_factor + (pm.peg_loss_threshold_usd - stable.index) * pm.peg_loss_factor


def combine(
    book: PortfolioBook, risks: dict[int, UnderlyingRisk], profile: Profile, stable: MarketSnapshot | None = None
) -> PortfolioResult:
    """Add up the underlyings: they do not offset each other."""
    pm = profile.portfolio_params
    n = len(book.account_ids)
    base, confidence, equity = np.zeros(n), np.zeros(n), book.cash.copy()
    haircut_im, haircut_mm = np.zeros(n), np.zeros(n)
    for u, risk in risks.items():
        rows = book.blocks[u].holders
        base[rows] += risk.base
        confidence[rows] += risk.confidence
        equity[rows] += risk.value
        haircut_im[rows] += risk.haircut_im
        haircut_mm[rows] += risk.haircut_mm
    factor = im_factor(pm, stable)
    im = factor * base + confidence + haircut_im
    return PortfolioResult(
        equity, base, confidence, im, pm.mm_factor * base + haircut_mm, haircut_im, haircut_mm, risks, factor
    )


class IncrementalPortfolioMargin:
    """Keeps each underlying's result; a market update of one underlying recomputes only the
    accounts that hold it."""

    def __init__(self, book: PortfolioBook, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int):
        self.book, self.profile, self.now_s = book, profile, now_s
        self.markets = dict(markets)
        self.stable = markets.get(profile.settlement_asset)
        self.risks = {
            u: underlying_risk(
                book, u, _snapshot(markets, book.instruments.underlyings[u]), profile, now_s, self.stable
            )
            for u in book.blocks
        }

    def update_market(self, snap: MarketSnapshot) -> np.ndarray:
        """New snapshot for one underlying (or for the settlement stablecoin, which values every
        underlying's collateral); returns the indices of the accounts re-margined."""
        self.markets[snap.underlying] = snap
        if snap.underlying == self.profile.settlement_asset:
            self.stable = snap
            for u in self.risks:
                self.risks[u] = underlying_risk(
                    self.book, u, self.markets[self.book.instruments.underlyings[u]], self.profile, self.now_s, snap
                )
            return np.arange(len(self.book.account_ids))
        u = self.book.instruments.underlyings.index(snap.underlying)
        if u not in self.book.blocks:
            return np.zeros(0, dtype=np.int64)
        self.risks[u] = underlying_risk(self.book, u, snap, self.profile, self.now_s, self.stable)
        return self.book.blocks[u].holders

    def result(self) -> PortfolioResult:
        return combine(self.book, self.risks, self.profile, self.stable)


def explain_account(
    book: PortfolioBook, result: PortfolioResult, row: int, profile: Profile, full: bool = True
) -> dict:
    """Why the number is what it is: per underlying the worst scenario, the P&L in every scenario,
    each position's share of the worst case and each contingency (as Deribit's simulate_portfolio)."""
    pm = profile.portfolio_params
    out = []
    for u, risk in result.by_underlying.items():
        block = book.blocks[u]
        r = int(np.searchsorted(block.holders, row))
        if r >= len(block.holders) or block.holders[r] != row:
            continue
        j = int(risk.worst[r])
        noise = 1e-9 * max(1.0, abs(float(risk.value[r])))  # hedges that cancel leave float dust
        label = risk.scenarios.label(j) if risk.pnl[r, j] < -noise else "no scenario loses"
        if risk.basis_loss[r] > max(-risk.pnl[r, j], 0.0) + noise:
            # Derive's worstScenario == scenarios.length: the basis contingency is the worst case
            label = f"basis: each expiry's forward +/-{pm.basis_shock_ratio:.0%} alone"
        entry = {
            "underlying": book.instruments.underlyings[u],
            "worst_scenario": {**risk.scenarios.describe(j), "label": label},
            "worst_pnl": float(risk.pnl[r, j]),
            "basis_loss": float(risk.basis_loss[r]),
            "loss": float(risk.loss[r]),
            "contingencies": {k: float(v[r]) for k, v in risk.contingencies.items()},
            "confidence": float(risk.confidence[r]),
            "base": float(risk.base[r]),
        }
        if full:
            sizes = block.matrix.getrow(r)
            contributions = [
                {"instrument": book.instruments.names[block.cols[c]], "pnl": float(size * risk.instrument_pnl[c, j])}
                for c, size in zip(sizes.indices, sizes.data, strict=True)
            ]
            shown = sum(c["pnl"] for c in contributions)
            if abs(shown - entry["worst_pnl"]) > 1e-9 * max(1.0, abs(shown)):
                contributions.append({"instrument": "option value discount", "pnl": entry["worst_pnl"] - shown})
            entry["contributions"] = contributions
            entry["scenarios"] = [
                {**risk.scenarios.describe(k), "pnl": float(risk.pnl[r, k])} for k in range(len(risk.scenarios))
            ]
        out.append(entry)
    return {"im_factor": result.im_factor, "mm_factor": pm.mm_factor, "underlyings": out}

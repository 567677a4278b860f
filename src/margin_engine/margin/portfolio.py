"""Portfolio margin on a risk matrix, for every account at once.

Each distinct instrument is repriced once per scenario of its underlying (Black-76 for options,
spot for perps and crypto collateral), giving an instruments x scenarios P&L matrix; a sparse
accounts x instruments position matrix times that matrix gives every account's P&L in every
scenario. There is no Python loop over accounts or positions on this path; the only loop is over
underlyings. Per underlying u (underlyings do not offset each other, as in segregated SPAN):

    base_u = max(0, -min_j weight_j * PnL_j) + contingencies_u
    IM = im_factor * sum_u base_u + haircuts,   MM = mm_factor * sum_u base_u + haircuts

Contingencies: a minimum per net short option per (expiry, strike); static charges per perp and
per unit of crypto collateral (Lyra); a delta shock on the net linear delta (Deribit); a basis shock on the
options' forward (Lyra); an oracle-confidence charge when confidence is below the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from margin_engine.errors import InputError
from margin_engine.instruments.names import Option
from margin_engine.margin.book import AccountView
from margin_engine.margin.profile import Profile
from margin_engine.margin.scenarios import ScenarioSet, scenario_set, shocked_vols
from margin_engine.market.snapshot import MarketSnapshot
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76

PERP, OPTION, COLLATERAL = 0, 1, 2
CONTINGENCIES = ("short_option", "perp_static", "base_static", "delta_shock", "basis", "confidence")


@dataclass(frozen=True)
class InstrumentTable:
    """Distinct instruments of a book; crypto collateral is an instrument of kind COLLATERAL."""

    names: list[str]
    underlying: np.ndarray  # index into `underlyings`
    kind: np.ndarray  # PERP, OPTION or COLLATERAL
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


@dataclass(frozen=True)
class UnderlyingRisk:
    """Per-underlying result for the accounts that hold it (rows align with block.holders)."""

    scenarios: ScenarioSet
    pnl: np.ndarray  # holders x scenarios, weighted
    worst: np.ndarray  # index of the worst scenario per holder
    loss: np.ndarray  # max(0, -min weighted P&L)
    contingencies: dict[str, np.ndarray]
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
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray
    haircut_im: np.ndarray
    haircut_mm: np.ndarray
    by_underlying: dict[int, UnderlyingRisk]


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
                rows.append(a), cols.append(c), vals.append(units / 10.0 ** profile.assets[asset].decimals)
        for pos in account.positions:
            inst = pos.instrument
            if isinstance(inst, Option):
                row = (u_index[inst.underlying], OPTION, float(inst.strike), inst.expiry_s, inst.is_call)
            else:
                row = (u_index[inst.underlying], PERP, 0.0, 0, False)
                cash[a] += pos.quote_units / scale
            cash[a] += pos.allocation_units / scale
            rows.append(a), cols.append(column(inst.name, row)), vals.append(float(pos.size))
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
        raise InputError(f"market.{underlying}", f"no market for {underlying}; portfolio margin needs it") from None


def _values_now(t: InstrumentTable, cols: np.ndarray, snap: MarketSnapshot, now_s: int) -> np.ndarray:
    out = np.full(len(cols), snap.index)
    opt = t.kind[cols] == OPTION
    if opt.any():
        c = cols[opt]
        years = np.maximum(t.expiry_s[c] - now_s, 0) / SECONDS_PER_YEAR
        vol = snap.vol.vols(t.expiry_s[c], t.strike[c], now_s)
        out[opt] = black76(
            snap.index * np.exp(snap.rate * years), t.strike[c], years, vol, snap.rate, t.is_call[c]
        ).price
    return out


def underlying_risk(book: PortfolioBook, u: int, snap: MarketSnapshot, profile: Profile, now_s: int) -> UnderlyingRisk:
    """Scenario P&L, worst case and contingencies of every account holding underlying u."""
    pm = profile.portfolio
    assert pm is not None
    params = pm.underlyings[book.instruments.underlyings[u]]
    scen = scenario_set(pm, params)
    block = book.blocks[u]
    t = book.instruments
    cols = block.cols
    kind = t.kind[cols]
    opt = kind == OPTION
    spot = snap.index
    v0 = _values_now(t, cols, snap, now_s)

    values = np.repeat((spot * scen.spot_mult)[None, :], len(cols), axis=0)
    years = np.maximum(t.expiry_s[cols] - now_s, 0) / SECONDS_PER_YEAR
    if opt.any():
        c = cols[opt]
        vol_now = snap.vol.vols(t.expiry_s[c], t.strike[c], now_s)
        vols = shocked_vols(vol_now, years[opt] * 365.0, scen.vol_shock, pm, params)
        fwd = spot * scen.spot_mult[None, :] * np.exp(snap.rate * years[opt])[:, None]
        values[opt] = black76(
            fwd, t.strike[c][:, None], years[opt][:, None], vols, snap.rate, t.is_call[c][:, None]
        ).price
    pnl = (values - v0[:, None]) * scen.weight[None, :]

    matrix = block.matrix
    if pm.gain_discount_static < 1 or pm.gain_discount_rate_add > 0:
        # Lyra discounts what shocked options gain: a long gains where P&L > 0, a short where < 0.
        disc = np.where(opt, pm.gain_discount_static * np.exp(-years * (snap.rate + pm.gain_discount_rate_add)), 1.0)
        long_pnl = np.where(pnl > 0, pnl * disc[:, None], pnl)
        short_pnl = np.where(pnl < 0, pnl * disc[:, None], pnl)
        account_pnl = matrix.maximum(0) @ long_pnl + matrix.minimum(0) @ short_pnl
    else:
        account_pnl = matrix @ pnl
    worst = np.argmin(account_pnl, axis=1)
    loss = np.maximum(0.0, -account_pnl[np.arange(len(worst)), worst])
    cont = _contingencies(book, block, snap, v0, years, opt, kind, profile, now_s)
    asset = profile.assets.get(book.instruments.underlyings[u])
    collateral_value = matrix @ np.where(kind == COLLATERAL, v0, 0.0)
    im_w, mm_w = (asset.im_weight, asset.mm_weight) if asset else (1.0, 1.0)
    return UnderlyingRisk(
        scen,
        account_pnl,
        worst,
        loss,
        cont,
        pnl,
        matrix @ v0,
        collateral_value * (1 - im_w),
        collateral_value * (1 - mm_w),
    )


def _contingencies(book, block, snap, v0, years, opt, kind, profile: Profile, now_s: int) -> dict[str, np.ndarray]:
    pm = profile.portfolio
    t = book.instruments
    cols = block.cols
    matrix = block.matrix
    spot = snap.index
    n = matrix.shape[0]
    out: dict[str, np.ndarray] = {}
    if pm.short_option_min_spot_ratio and opt.any():
        # net size per (expiry, strike): calls and puts at one strike offset each other (Deribit's example)
        keys = np.stack([t.expiry_s[cols], t.strike[cols]])[:, opt]
        _, group = np.unique(keys, axis=1, return_inverse=True)
        grouping = sp.csr_matrix(
            (np.ones(opt.sum()), (np.flatnonzero(opt), group.ravel())), shape=(len(cols), int(group.max()) + 1)
        )
        net = (matrix @ grouping).toarray()
        out["short_option"] = pm.short_option_min_spot_ratio * spot * np.maximum(-net, 0.0).sum(axis=1)
    abs_matrix = abs(matrix)
    if pm.perp_static_spot_ratio:
        out["perp_static"] = pm.perp_static_spot_ratio * spot * (abs_matrix @ (kind == PERP).astype(float))
    if pm.base_static_spot_ratio:
        out["base_static"] = pm.base_static_spot_ratio * spot * (abs_matrix @ (kind == COLLATERAL).astype(float))
    if pm.delta_shock_spot_ratio:
        # Deribit's delta shock replaced its futures contingency: it charges the linear delta
        # (perps and collateral), so a long option never needs more than its premium.
        out["delta_shock"] = pm.delta_shock_spot_ratio * spot * np.abs(matrix @ (kind != OPTION).astype(float))
    if pm.basis_shock_ratio and opt.any():
        c = cols[opt]
        vol = snap.vol.vols(t.expiry_s[c], t.strike[c], now_s)
        fwd = spot * np.exp(snap.rate * years[opt])
        worst = np.zeros(n)
        for sign in (-1.0, 1.0):
            moved = np.zeros(len(cols))
            moved[opt] = (
                black76(
                    fwd * (1 + sign * pm.basis_shock_ratio), t.strike[c], years[opt], vol, snap.rate, t.is_call[c]
                ).price
                - v0[opt]
            )
            worst = np.minimum(worst, matrix @ moved)
        out["basis"] = -worst
    if pm.confidence_factor and snap.confidence < pm.confidence_threshold:
        out["confidence"] = (1 - snap.confidence) * pm.confidence_factor * spot * (abs_matrix @ np.ones(len(cols)))
    return out


def portfolio_margin(
    book: PortfolioBook, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int
) -> PortfolioResult:
    """Full recompute of every account."""
    risks = {
        u: underlying_risk(book, u, _snapshot(markets, book.instruments.underlyings[u]), profile, now_s)
        for u in book.blocks
    }
    return combine(book, risks, profile)


def combine(book: PortfolioBook, risks: dict[int, UnderlyingRisk], profile: Profile) -> PortfolioResult:
    """Add up the underlyings: they do not offset each other."""
    pm = profile.portfolio
    n = len(book.account_ids)
    base, equity, haircut_im, haircut_mm = np.zeros(n), book.cash.copy(), np.zeros(n), np.zeros(n)
    for u, risk in risks.items():
        rows = book.blocks[u].holders
        base[rows] += risk.base
        equity[rows] += risk.value
        haircut_im[rows] += risk.haircut_im
        haircut_mm[rows] += risk.haircut_mm
    return PortfolioResult(
        equity, base, pm.im_factor * base + haircut_im, pm.mm_factor * base + haircut_mm, haircut_im, haircut_mm, risks
    )


class IncrementalPortfolioMargin:
    """Keeps each underlying's result; a market update of one underlying recomputes only the
    accounts that hold it."""

    def __init__(self, book: PortfolioBook, markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int):
        self.book, self.profile, self.now_s = book, profile, now_s
        self.risks = {
            u: underlying_risk(book, u, _snapshot(markets, book.instruments.underlyings[u]), profile, now_s)
            for u in book.blocks
        }

    def update_market(self, snap: MarketSnapshot) -> np.ndarray:
        """New snapshot for one underlying; returns the indices of the accounts re-margined."""
        u = self.book.instruments.underlyings.index(snap.underlying)
        if u not in self.book.blocks:
            return np.zeros(0, dtype=np.int64)
        self.risks[u] = underlying_risk(self.book, u, snap, self.profile, self.now_s)
        return self.book.blocks[u].holders

    def result(self) -> PortfolioResult:
        return combine(self.book, self.risks, self.profile)


def explain_account(
    book: PortfolioBook, result: PortfolioResult, row: int, profile: Profile, full: bool = True
) -> dict:
    """Why the number is what it is: per underlying the worst scenario, the P&L in every scenario,
    each position's share of the worst case and each contingency (as Deribit's simulate_portfolio)."""
    pm = profile.portfolio
    out = []
    for u, risk in result.by_underlying.items():
        block = book.blocks[u]
        r = int(np.searchsorted(block.holders, row))
        if r >= len(block.holders) or block.holders[r] != row:
            continue
        j = int(risk.worst[r])
        entry = {
            "underlying": book.instruments.underlyings[u],
            "worst_scenario": {**risk.scenarios.describe(j), "label": risk.scenarios.label(j)},
            "worst_pnl": float(risk.pnl[r, j]),
            "loss": float(risk.loss[r]),
            "contingencies": {k: float(v[r]) for k, v in risk.contingencies.items()},
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
                contributions.append({"instrument": "gain discount", "pnl": entry["worst_pnl"] - shown})
            entry["contributions"] = contributions
            entry["scenarios"] = [
                {**risk.scenarios.describe(k), "pnl": float(risk.pnl[r, k])} for k in range(len(risk.scenarios))
            ]
        out.append(entry)
    return {"im_factor": pm.im_factor, "mm_factor": pm.mm_factor, "underlyings": out}

"""All positions and balances of many accounts as arrays.

Built once per change of positions or balances and priced many times: a stress run moves prices
every step while positions change only when someone trades or is liquidated, and a keeper scans
the whole venue every round. The rows of one account are contiguous, in the accounts' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from margin_engine.instruments.names import Option
from margin_engine.margin.book import AccountView
from margin_engine.margin.portfolio import PortfolioBook, book_from_views
from margin_engine.margin.profile import Profile


@dataclass(frozen=True)
class FlatBook:
    profile: Profile = field(compare=False, repr=False)  # the one it was flattened under
    views: tuple[AccountView, ...]
    ids: tuple[str, ...]
    isolated: np.ndarray  # per account
    portfolio: np.ndarray  # per account
    assets: tuple[str, ...]  # collateral assets, sorted
    held: np.ndarray  # accounts x assets: a non-zero balance
    amounts: np.ndarray  # accounts x assets, in whole asset units (float, correctly rounded)
    offsets: np.ndarray  # account a's positions are rows offsets[a]:offsets[a + 1]
    account: np.ndarray  # per position: index into ids
    size: np.ndarray
    quote: np.ndarray  # USD, perps
    allocation: np.ndarray  # USD, isolated
    is_option: np.ndarray
    is_call: np.ndarray
    strike: np.ndarray
    expiry_s: np.ndarray
    underlyings: tuple[str, ...]  # distinct, sorted
    underlying: np.ndarray  # per position: index into underlyings
    option_key: np.ndarray  # per position: index into options, -1 for perps
    options: tuple[Option, ...]  # distinct options, each priced once
    expiry_groups: dict[tuple[int, int, int], np.ndarray]  # (account, underlying, expiry) -> option rows
    _portfolio: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def portfolio_book(self, profile: Profile) -> tuple[np.ndarray, PortfolioBook]:
        """The portfolio-mode accounts (indices) and their sparse risk book, built once per profile."""
        cached = self._portfolio.get("book")
        if cached is None or cached[0] is not profile:
            rows = np.flatnonzero(self.portfolio)
            cached = (profile, rows, book_from_views([self.views[i] for i in rows], profile))
            self._portfolio["book"] = cached
        return cached[1], cached[2]


def flatten(views: Sequence[AccountView], profile: Profile) -> FlatBook:
    scale = 10.0**profile.settlement_decimals
    assets = tuple(sorted(profile.assets))
    rows, options, option_index = [], [], {}
    counts = []
    for a, view in enumerate(views):
        counts.append(len(view.positions))
        for pos in view.positions:
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
    underlyings = tuple(sorted(set(cols[8])))
    code = {u: i for i, u in enumerate(underlyings)}
    # Python's int / int is correctly rounded, as float(Decimal) of the amount is (wei exceed int64).
    scales = [10 ** profile.assets[asset].decimals for asset in assets]
    held = [[v.balances.get(asset, 0) != 0 for asset in assets] for v in views]
    amounts = [[v.balances.get(asset, 0) / d for asset, d in zip(assets, scales, strict=True)] for v in views]
    book = FlatBook(
        profile=profile,
        views=tuple(views),
        ids=tuple(v.id for v in views),
        isolated=np.array([v.mode == "isolated" for v in views], dtype=bool),
        portfolio=np.array([v.mode == "portfolio" for v in views], dtype=bool),
        assets=assets,
        held=np.array(held, dtype=bool).reshape(len(views), len(assets)),
        amounts=np.array(amounts, dtype=float).reshape(len(views), len(assets)),
        offsets=np.concatenate(([0], np.cumsum(counts, dtype=np.int64))).astype(np.int64),
        account=np.asarray(cols[0], dtype=np.int64),
        size=np.asarray(cols[1], dtype=float),
        quote=np.asarray(cols[2], dtype=float),
        allocation=np.asarray(cols[3], dtype=float),
        is_option=np.asarray(cols[4], dtype=bool),
        is_call=np.asarray(cols[5], dtype=bool),
        strike=np.asarray(cols[6], dtype=float),
        expiry_s=np.asarray(cols[7], dtype=np.int64),
        underlyings=underlyings,
        underlying=np.asarray([code[u] for u in cols[8]], dtype=np.int64),
        option_key=np.asarray(cols[9], dtype=np.int64),
        options=tuple(options),
        expiry_groups={},
    )
    book.expiry_groups.update(_expiry_groups(book))
    return book


def _expiry_groups(book: FlatBook) -> dict[tuple[int, int, int], np.ndarray]:
    """Option rows by (account, underlying, expiry) in order of first appearance, isolated
    accounts left out (no offsets there)."""
    rows = np.flatnonzero(book.is_option & ~book.isolated[book.account])
    if rows.size == 0:
        return {}
    keys = np.stack([book.account[rows], book.underlying[rows], book.expiry_s[rows]], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    members = np.split(rows[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
    return {tuple(int(x) for x in keys[first[g]]): members[g] for g in np.argsort(first)}

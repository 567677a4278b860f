"""All positions and balances of many accounts as arrays.

Built once per change of positions or balances and priced many times: a stress run moves prices
every step while positions change only when someone trades or is liquidated, and a keeper scans
the whole venue every round. The rows of one account are contiguous, in the accounts' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

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
    expiry_s: np.ndarray  # options and dated futures; 0 for perps
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


# Per-position columns, in the order `_rows` builds them.
_POSITION_COLUMNS = (
    ("account", np.int64),
    ("size", float),
    ("quote", float),
    ("allocation", float),
    ("is_option", bool),
    ("is_call", bool),
    ("strike", float),
    ("expiry_s", np.int64),
    ("underlying", np.int64),
    ("option_key", np.int64),
)


def flatten(views: Sequence[AccountView], profile: Profile) -> FlatBook:
    underlyings = tuple(sorted({p.instrument.underlying for v in views for p in v.positions}))
    options: list[Option] = []
    rows = _rows(enumerate(views), profile, underlyings, options, {})
    return _book(profile, tuple(views), _columns(rows), underlyings, options, *_balances(views, profile))


def refresh(book: FlatBook, views: Sequence[AccountView], changed: Sequence[int], profile: Profile) -> FlatBook:
    """`book` with the accounts at indices `changed` read again from `views` (the others are the
    same): their rows are rebuilt and merged back in account order, so a liquidation re-reads one
    account, not the venue. The same book as `flatten(views, profile)`, options perhaps in another
    order (and one no longer held may stay, priced for nothing)."""
    changed = sorted(set(changed))
    fresh = [views[a] for a in changed]
    if (
        len(views) != len(book)
        or profile is not book.profile
        or any(p.instrument.underlying not in book.underlyings for v in fresh for p in v.positions)
    ):
        return flatten(views, profile)
    options = list(book.options)
    option_index = {o: i for i, o in enumerate(options)}
    new = _columns(_rows(zip(changed, fresh, strict=True), profile, book.underlyings, options, option_index))
    keep = ~np.isin(book.account, changed)
    merged = [
        np.concatenate((getattr(book, name)[keep], col)) for (name, _), col in zip(_POSITION_COLUMNS, new, strict=True)
    ]
    order = np.argsort(merged[0], kind="stable")  # rows of one account stay together, in order
    held, amounts = book.held.copy(), book.amounts.copy()
    held[changed], amounts[changed] = _balances(fresh, profile)
    cols = [c[order] for c in merged]
    return _book(profile, tuple(views), cols, book.underlyings, options, held, amounts, same_accounts=book)


def _rows(indexed_views, profile: Profile, underlyings, options: list, option_index: dict) -> list[tuple]:
    """One tuple per position; options get the index of their first appearance in `options`."""
    scale = 10.0**profile.settlement_decimals
    code = {u: i for i, u in enumerate(underlyings)}
    rows = []
    for a, view in indexed_views:
        for pos in view.positions:
            inst = pos.instrument
            is_option = isinstance(inst, Option)
            key = -1
            if is_option:
                key = option_index.get(inst, -1)
                if key < 0:
                    key = option_index[inst] = len(options)
                    options.append(inst)
            rows.append(
                (
                    a,
                    float(pos.size),
                    pos.quote_units / scale,
                    pos.allocation_units / scale,
                    is_option,
                    getattr(inst, "is_call", False),
                    float(getattr(inst, "strike", 0.0)),
                    getattr(inst, "expiry_s", 0),
                    code[inst.underlying],
                    key,
                )
            )
    return rows


def _columns(rows: list[tuple]) -> list[np.ndarray]:
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(_POSITION_COLUMNS)
    return [np.asarray(c, dtype=dtype) for c, (_, dtype) in zip(cols, _POSITION_COLUMNS, strict=True)]


def _balances(views: Sequence[AccountView], profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Accounts x assets: non-zero flags and amounts in whole units. Python's int / int is
    correctly rounded, as float(Decimal) of the amount is (and wei exceed int64)."""
    assets = sorted(profile.assets)
    scales = [10 ** profile.assets[asset].decimals for asset in assets]
    held = [[v.balances.get(asset, 0) != 0 for asset in assets] for v in views]
    amounts = [[v.balances.get(asset, 0) / d for asset, d in zip(assets, scales, strict=True)] for v in views]
    shape = (len(views), len(assets))
    return np.array(held, dtype=bool).reshape(shape), np.array(amounts, dtype=float).reshape(shape)


def _book(
    profile: Profile,
    views: tuple,
    columns: list[np.ndarray],
    underlyings,
    options,
    held,
    amounts,
    same_accounts: FlatBook | None = None,  # ids and modes as in this book (an account's mode is fixed)
) -> FlatBook:
    cols = dict(zip((name for name, _ in _POSITION_COLUMNS), columns, strict=True))
    counts = np.bincount(cols["account"], minlength=len(views))
    same = same_accounts
    book = FlatBook(
        profile=profile,
        views=views,
        ids=same.ids if same else tuple(v.id for v in views),
        isolated=same.isolated if same else np.array([v.mode == "isolated" for v in views], dtype=bool),
        portfolio=same.portfolio if same else np.array([v.mode == "portfolio" for v in views], dtype=bool),
        assets=tuple(sorted(profile.assets)),
        held=held,
        amounts=amounts,
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        underlyings=underlyings,
        options=tuple(options),
        expiry_groups={},
        **cast("dict[str, Any]", cols),  # the position columns, by name
    )
    book.expiry_groups.update(_expiry_groups(book))
    return book


_KEY_MAX = 2**62  # below int64's range with room for the key's arithmetic


def _expiry_groups(book: FlatBook) -> dict[tuple[int, int, int], np.ndarray]:
    """Option rows by (account, underlying, expiry) in order of first appearance, isolated
    accounts left out (no offsets there)."""
    rows = np.flatnonzero(book.is_option & ~book.isolated[book.account])
    if rows.size == 0:
        return {}
    account, underlying, expiry = book.account[rows], book.underlying[rows], book.expiry_s[rows]
    # one int64 key per (account, underlying, expiry), ordered as the triples (1-D unique is far
    # cheaper than unique over rows); the triples' range keeps it below 2**62
    low = int(expiry.min())
    span_e, span_u = int(expiry.max()) - low + 1, max(len(book.underlyings), 1)
    if (int(account.max()) + 1) * span_u * span_e < _KEY_MAX:
        key = (account * span_u + underlying) * span_e + (expiry - low)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    else:
        keys = np.stack([account, underlying, expiry], axis=1)
        _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    members = np.split(rows[np.argsort(inverse, kind="stable")], np.cumsum(np.bincount(inverse))[:-1])
    return {
        (int(account[first[g]]), int(underlying[first[g]]), int(expiry[first[g]])): members[g]
        for g in np.argsort(first)
    }

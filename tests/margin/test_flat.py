"""The array book: re-reading a few accounts (`refresh`) gives the margins of a full `flatten`."""

from dataclasses import replace
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import compute_margins, margin_totals
from margin_engine.margin.flat import flatten, refresh
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW = 1_795_593_600  # 2026-11-25T08:00Z
NAMES = ["BTC-PERP", "BTC-25DEC26-60000-C", "BTC-25DEC26-50000-P", "BTC-27DEC26-70000-C", "BTC-26MAR27-60000-P"]
MARKETS = {"BTC": parse_market("BTC", {"index": 61000, "vol": 0.6}, "BTC")}


def view(i: int, rng: np.random.Generator, mode: str | None = None) -> AccountView:
    picks = rng.choice(len(NAMES), size=int(rng.integers(0, 4)), replace=False)
    positions = []
    for k in sorted(picks):
        size = Decimal(str(round(float(rng.normal(0, 2)), 1) or 0.5))
        inst = parse_instrument(NAMES[k])
        quote = 0 if inst.is_option else -int(float(size) * 60000 * 1_000_000)
        alloc = 20_000_000_000 if mode == "isolated" else 0
        positions.append(PositionView(inst, size, quote, alloc))
    balances = {"USDC": int(rng.integers(0, 10**11)), "BTC": int(rng.integers(0, 3 * 10**8))}
    return AccountView(f"a{i}", mode or ("isolated" if i % 4 == 0 else "cross"), balances, tuple(positions))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    changed=st.sets(st.integers(0, 11), max_size=6),
    profile=st.sampled_from(["deribit", "derive"]),
)
def test_refresh_of_some_accounts_equals_a_full_flatten(seed, changed, profile):
    prof = load_profile(profile)
    rng = np.random.default_rng(seed)
    views = [view(i, rng) for i in range(12)]
    book = flatten(views, prof)
    for i in changed:  # new positions (options perhaps new to the book), new balances
        views[i] = replace(view(i, rng, views[i].mode), id=views[i].id)
    patched, full = refresh(book, views, sorted(changed), prof), flatten(views, prof)
    a, b = margin_totals(patched, MARKETS, prof, NOW), margin_totals(full, MARKETS, prof, NOW)
    for field in ("equity", "initial_margin", "maintenance_margin", "free_collateral", "liquidatable"):
        assert getattr(a, field).tolist() == getattr(b, field).tolist(), field
    assert patched.offsets.tolist() == full.offsets.tolist()
    assert [(v.id, [p.instrument.name for p in v.positions]) for v in patched.views] == [
        (v.id, [p.instrument.name for p in v.positions]) for v in full.views
    ]
    detail = compute_margins(views, MARKETS, prof, NOW, book=patched)
    assert detail == compute_margins(views, MARKETS, prof, NOW, book=full)


def test_refresh_with_a_new_account_or_underlying_flattens_again():
    prof = load_profile("deribit")
    rng = np.random.default_rng(1)
    views = [view(i, rng) for i in range(3)]
    book = flatten(views, prof)
    grown = [*views, view(3, rng)]
    assert len(refresh(book, grown, [3], prof)) == 4
    eth = AccountView("a0", "cross", {"USDC": 10**10}, (PositionView(parse_instrument("ETH-PERP"), Decimal(1)),))
    moved = [eth, *views[1:]]
    assert "ETH" in refresh(book, moved, [0], prof).underlyings
    assert refresh(book, moved, [0], prof).underlyings == flatten(moved, prof).underlyings


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_expiry_groups_by_one_key_equal_the_groups_by_rows(seed):
    import margin_engine.margin.flat as flat

    rng = np.random.default_rng(seed)
    book = flatten([view(i, rng, "cross") for i in range(12)], load_profile("deribit"))
    fast = flat._expiry_groups(book)
    saved, flat._KEY_MAX = flat._KEY_MAX, 0  # every key "too wide": the row-wise unique
    try:
        rows = flat._expiry_groups(book)
    finally:
        flat._KEY_MAX = saved
    assert list(fast) == list(rows)  # same groups in the same order (first appearance)
    assert all(fast[k].tolist() == rows[k].tolist() for k in fast)
    assert sum(len(g) for g in fast.values()) == int(book.is_option.sum())

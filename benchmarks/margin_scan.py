"""Standard margin scan of a whole venue: what a keeper or a stress step reads every round.

Accounts (cross and isolated) hold 1-6 positions over BTC and ETH perps and options, with USDC
and BTC collateral. Compared on the same book: the totals-only scan of a book already flattened
(a price move), flattening plus the scan (positions changed), the full explained results, and
the one-account-at-a-time loop on a sample; prints seconds, accounts/s and ratios ours/loop.

    python benchmarks/margin_scan.py [--accounts 100000] [--sample 500] [--profile deribit]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from rich.console import Console
from rich.table import Table
from timing import best_of  # benchmarks/timing.py

from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import compute_margins, margin_totals
from margin_engine.margin.flat import flatten
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)
SPOT = {"BTC": 60000.0, "ETH": 3000.0}
EXPIRIES = ["27NOV26", "25DEC26", "26MAR27"]


def instruments():
    names = [f"{u}-PERP" for u in SPOT]
    for u, s in SPOT.items():
        for expiry in EXPIRIES:
            for k in range(-5, 6):
                names += [f"{u}-{expiry}-{int(s * (1 + 0.05 * k))}-{cp}" for cp in "CP"]
    return [parse_instrument(n) for n in names]


def random_views(n: int, seed: int = 7) -> list[AccountView]:
    rng = np.random.default_rng(seed)
    insts = instruments()
    out = []
    for a in range(n):
        mode = "isolated" if rng.random() < 0.2 else "cross"
        picks = rng.choice(len(insts), size=rng.integers(1, 7), replace=False)
        positions = []
        for i in sorted(picks):
            size = Decimal(repr(round(float(rng.normal(0, 2)), 1) or 0.1))
            quote = -int(float(size) * SPOT[insts[i].underlying] * 1e6) if not insts[i].is_option else 0
            alloc = int(rng.uniform(1e3, 5e4) * 1e6) if mode == "isolated" else 0
            positions.append(PositionView(insts[i], size, quote, alloc))
        balances = {"USDC": int(rng.uniform(1e4, 1e6) * 1e6), "BTC": int(rng.uniform(0, 2) * 1e8)}
        out.append(AccountView(f"a{a}", mode, balances, tuple(positions)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--profile", default="deribit")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    now_s = int(NOW.timestamp())
    vol = {"27NOV26": 0.7, "25DEC26": 0.6, "26MAR27": 0.55}
    markets = {u: parse_market(u, {"index": s, "vol": vol}, u) for u, s in SPOT.items()}
    console = Console()
    with console.status("building the book"):
        views = random_views(args.accounts)
        book = flatten(views, profile)
    n = args.accounts
    console.print(f"{n:,} accounts, {len(book.size):,} positions, {len(book.options)} options, profile {profile.name}")

    scan = best_of(lambda: margin_totals(book, markets, profile, now_s))
    rebuild = best_of(lambda: margin_totals(flatten(views, profile), markets, profile, now_s), repeat=1)
    full = best_of(lambda: compute_margins(views, markets, profile, now_s, book=book), repeat=1)
    sample = views[:: max(1, n // args.sample)][: args.sample]
    loop = best_of(lambda: [compute_margins([v], markets, profile, now_s) for v in sample], repeat=1) / len(sample)

    totals = margin_totals(book, markets, profile, now_s)
    index = {v.id: i for i, v in enumerate(views)}
    mismatches = sum(
        (totals.equity[index[v.id]], totals.maintenance_margin[index[v.id]])
        != ((m := compute_margins([v], markets, profile, now_s)[0]).equity, m.maintenance_margin)
        for v in sample
    )

    table = Table(title="Standard margin scan, this machine")
    for col in ("path", "seconds", "accounts / s", "ours / loop"):
        table.add_column(col, justify="right" if col != "path" else "left")
    for label, seconds in (
        ("totals, book flattened (a price move)", scan),
        ("flatten + totals (positions changed)", rebuild),
        ("full explained results", full),
    ):
        table.add_row(label, f"{seconds:.3f}", f"{n / seconds:,.0f}", f"{(n / seconds) * loop:,.0f}x")
    table.add_row(f"one account at a time ({len(sample)} sampled)", f"{loop * n:.3f} (est.)", f"{1 / loop:,.0f}", "1x")
    console.print(table)
    console.print(f"sampled accounts whose totals differ from the one-at-a-time loop: {mismatches}")


if __name__ == "__main__":
    main()

"""Portfolio margin at scale: 100,000 accounts with 5-20 positions each over BTC and ETH.

Full recompute of the risk matrix for every account, an incremental update of one underlying,
and the plain per-account reference loop on a subsample of the same book; prints seconds,
accounts/second and the ratio ours/reference.

    python benchmarks/portfolio_margin.py [--accounts 100000] [--sample 200] [--profile deribit-pm]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table
from timing import best_of  # benchmarks/timing.py

from margin_engine.instruments.names import parse_instrument
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.portfolio import (
    COLLATERAL,
    OPTION,
    PERP,
    IncrementalPortfolioMargin,
    InstrumentTable,
    PortfolioBook,
    portfolio_margin,
)
from margin_engine.margin.portfolio_reference import reference_margin
from margin_engine.margin.profile import load_profile
from margin_engine.market.snapshot import parse_market

NOW = datetime(2026, 11, 25, 8, tzinfo=UTC)
EXPIRIES = ["27NOV26", "4DEC26", "11DEC26", "25DEC26", "29JAN27", "26FEB27", "26MAR27", "25JUN27"]
SPOT = {"BTC": 60000.0, "ETH": 3000.0}


def universe():
    names, rows = [], []
    for u_idx, u in enumerate(("BTC", "ETH")):
        names.append(f"{u}-PERP")
        rows.append((u_idx, PERP, 0.0, 0, False))
        names.append(f"{u} collateral")
        rows.append((u_idx, COLLATERAL, 0.0, 0, False))
        for expiry in EXPIRIES:
            for k in range(-10, 11):
                strike = SPOT[u] * (1 + 0.05 * k)
                for cp in "CP":
                    name = f"{u}-{expiry}-{int(strike)}-{cp}"
                    inst = parse_instrument(name)
                    names.append(name)
                    rows.append((u_idx, OPTION, float(inst.strike), inst.expiry_s, cp == "C"))
    cols = list(zip(*rows, strict=True))
    return InstrumentTable(
        names,
        np.asarray(cols[0]),
        np.asarray(cols[1], dtype=np.int8),
        np.asarray(cols[2]),
        np.asarray(cols[3], dtype=np.int64),
        np.asarray(cols[4], dtype=bool),
        ["BTC", "ETH"],
    )


def random_book(n_accounts: int, seed: int = 7) -> PortfolioBook:
    rng = np.random.default_rng(seed)
    table = universe()
    n_inst = len(table.names)
    counts = rng.integers(5, 21, size=n_accounts)
    rows = np.repeat(np.arange(n_accounts), counts)
    cols = rng.integers(0, n_inst, size=rows.size)
    sizes = np.round(rng.normal(0, 2, size=rows.size), 1)
    sizes[sizes == 0] = 0.1
    sizes[table.kind[cols] == COLLATERAL] = np.abs(sizes[table.kind[cols] == COLLATERAL])
    matrix = sp.coo_matrix((sizes, (rows, cols)), shape=(n_accounts, n_inst)).tocsr()
    matrix.sum_duplicates()
    cash = rng.uniform(10_000, 1_000_000, size=n_accounts)
    return PortfolioBook([f"acct{i}" for i in range(n_accounts)], table, matrix, cash)


def views(book: PortfolioBook, rows) -> list[AccountView]:
    out = []
    for r in rows:
        row = book.positions.getrow(r)
        balances = {"USDC": int(round(book.cash[r] * 1e6))}
        positions = []
        for c, size in zip(row.indices, row.data, strict=True):
            name = book.instruments.names[c]
            if book.instruments.kind[c] == COLLATERAL:
                asset = name.split()[0]
                balances[asset] = int(round(size * (1e8 if asset == "BTC" else 1e18)))
            else:
                positions.append(PositionView(parse_instrument(name), Decimal(repr(float(size)))))
        out.append(AccountView(book.account_ids[r], "portfolio", balances, tuple(positions)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--profile", default="deribit-pm")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    now_s = int(NOW.timestamp())
    markets = {
        u: parse_market(u, {"index": SPOT[u], "vol": {"27NOV26": 0.7, "25DEC26": 0.6, "25JUN27": 0.55}}, u)
        for u in SPOT
    }
    console = Console()
    with console.status("building the book"):
        book = random_book(args.accounts)
    console.print(
        f"{args.accounts:,} accounts, {book.positions.nnz:,} positions, {len(book.instruments.names)} "
        f"instruments, profile {profile.name}"
    )

    full = best_of(lambda: portfolio_margin(book, markets, profile, now_s))
    inc = IncrementalPortfolioMargin(book, markets, profile, now_s)
    moved = parse_market("BTC", {"index": 61000, "vol": {"27NOV26": 0.72, "25DEC26": 0.61, "25JUN27": 0.55}}, "BTC")
    incremental = best_of(lambda: inc.update_market(moved))
    btc_holders = len(book.blocks[0].holders)

    sample_rows = np.linspace(0, args.accounts - 1, args.sample).astype(int)
    sample = views(book, sample_rows)
    start = time.perf_counter()
    ref = [reference_margin(v, markets, profile, now_s) for v in sample]
    ref_per_account = (time.perf_counter() - start) / len(sample)
    result = portfolio_margin(book, markets, profile, now_s)
    diff = max(
        abs(result.initial_margin[r] - x["initial_margin"]) / max(1.0, x["initial_margin"])
        for r, x in zip(sample_rows, ref, strict=True)
    )

    table = Table(title="Portfolio margin (risk matrix), this machine")
    for col in ("path", "seconds", "accounts / s", "ours / reference"):
        table.add_column(col, justify="right" if col != "path" else "left")
    ref_rate = 1 / ref_per_account
    table.add_row(
        f"full recompute, {args.accounts:,} accounts",
        f"{full:.3f}",
        f"{args.accounts / full:,.0f}",
        f"{(args.accounts / full) / ref_rate:,.0f}x",
    )
    table.add_row(
        f"incremental BTC update, {btc_holders:,} holders",
        f"{incremental:.3f}",
        f"{btc_holders / incremental:,.0f}",
        f"{(btc_holders / incremental) / ref_rate:,.0f}x",
    )
    table.add_row(
        f"reference loop, {args.sample} accounts", f"{ref_per_account * args.sample:.3f}", f"{ref_rate:,.0f}", "1x"
    )
    console.print(table)
    console.print(f"max relative IM difference, vectorized vs reference on the sample: {diff:.2e}")


if __name__ == "__main__":
    main()

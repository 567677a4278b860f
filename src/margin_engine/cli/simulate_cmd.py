"""`simulate` (stress scenarios on the engine) and `backtest` (margin against next-day losses).

Command bodies for the app to register: `simulate` and `backtest`. Bad input exits with code 2
and one line naming the field.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from margin_engine.cli.common import Format, FormatOpt, ProfileOpt, console, fail, print_json
from margin_engine.errors import InputError

COVERAGE = 0.99
OPTION_DAYS = 7  # reference options expire this many days after each start of day
BACKTEST_VOL_HALF_LIFE_DAYS = 10
REFERENCE_PORTFOLIOS = (
    ("long_perp", (("perp", 0.0, 1.0),)),
    ("short_perp", (("perp", 0.0, -1.0),)),
    ("short_atm_call", (("C", 0.0, -1.0),)),
    ("short_strangle", (("C", 0.10, -1.0), ("P", -0.10, -1.0))),
)


def simulate(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML (see examples/scenarios/).")],
    paths: Annotated[
        int | None, typer.Option("--paths", min=1, max=100_000, help="Override the scenario's number of paths.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, max=2**63 - 1, help="Override the scenario's master seed.")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, max=256, help="Local worker processes.")] = 1,
    dask: Annotated[str | None, typer.Option("--dask", help="Dask scheduler address (needs dask).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for summary.json and report.html.")] = Path(
        "out/simulation"
    ),
) -> None:
    """Run a stress scenario's paths x variants on the engine; write summary.json and report.html."""
    from rich.progress import Progress

    from margin_engine.simulation.report import write_report
    from margin_engine.simulation.scenario import load_scenario
    from margin_engine.simulation.sweep import run_sweep, tasks

    try:
        _writable_folder(out)  # before hours of work, not after
        sc = load_scenario(scenario)
        update = {k: v for k, v in (("paths", paths), ("seed", seed)) if v is not None}
        if update:
            sc = sc.model_validate({**sc.model_dump(), **update})
        with Progress(console=console(), transient=True) as bar:
            job = bar.add_task(f"simulating {sc.name}", total=len(tasks(sc)))
            results = run_sweep(sc, workers, dask, progress=lambda _: bar.advance(job))
        summary = write_report(out, sc, results)
    except InputError as exc:
        raise fail(exc) from None
    _print_simulation(summary, results, out)


def _writable_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("out", f"{out} is a file; give a folder for summary.json and report.html")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("out", f"cannot make the folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise InputError("out", f"cannot write in {out}")


def _print_simulation(summary: dict, results, out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['scenario']}: mean across {summary['paths']} path(s)")
    cols = (
        "bad_debt_usd",
        "socialized_loss_usd",
        "adl_usd",
        "fund_min_usd",
        "liquidation_count",
        "backstop_takeovers",
        "cascade_liquidations",
        "liquidation_to_mev_usd",
    )
    table.add_column("variant")
    table.add_column("bad_debt_usd q99", justify="right")
    for c in cols:
        table.add_column(c, justify="right")
    for name, stats in summary["variants"].items():
        table.add_row(name, _num(stats["bad_debt_usd"]["q99"]), *(_num(stats[c]["mean"]) for c in cols))
    con = console()
    con.print(table)
    for name, head in summary["headlines"].items():
        con.print(f"[bold]{name}[/bold]: {head['text']}")
    steps = sum(r.steps for r in results)
    wall = sum(r.wall_s for r in results) or float("nan")
    accounts = results[0].accounts if results else 0
    con.print(f"prices: {'; '.join(summary['price_source'])}")
    con.print(f"{steps / wall:,.0f} steps/s, {accounts * steps / wall:,.0f} account-steps/s per worker")
    con.print(f"wrote {out / 'summary.json'} and {out / 'report.html'}")


def _num(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


def backtest(
    prices: Annotated[Path, typer.Argument(help="Daily price CSV (time,open,high,low,close,volume).")],
    profile: ProfileOpt = "deribit",
    vol: Annotated[
        float | None, typer.Option("--vol", help="Flat implied vol; default: EWMA realized vol (10-day half-life).")
    ] = None,
    underlying: Annotated[
        str, typer.Option("--underlying", help="Whose instruments the file's prices margin (BTC, ETH).")
    ] = "BTC",
    mode: Annotated[
        str, typer.Option("--mode", help="cross (per-position rules) or portfolio (the profile's risk matrix).")
    ] = "cross",
    format: FormatOpt = Format.table,
) -> None:
    """Maintenance margin at each start of day against the next day's loss, for reference portfolios (Kupiec)."""
    from margin_engine.calibration.prices import read_prices
    from margin_engine.margin.profile import load_profile

    try:
        prof = load_profile(profile)
        series = read_prices(prices)
        if vol is not None and not (math.isfinite(vol) and 0 < vol <= 10):
            raise InputError("--vol", f"must be in (0, 10], got {vol}")
        if underlying not in prof.underlyings:
            raise InputError("--underlying", f"{prof.name} lists {', '.join(prof.underlyings)}, not {underlying!r}")
        if mode not in ("cross", "portfolio"):
            raise InputError("--mode", f"must be cross or portfolio, got {mode!r}")
        if mode == "portfolio" and (prof.portfolio is None or underlying not in prof.portfolio.underlyings):
            raise InputError("--mode", f"portfolio needs a profile with [portfolio.underlyings.{underlying}]")
        result = margin_backtest(series.time_s, series.close, prof, vol, underlying, mode)
    except InputError as exc:
        raise fail(exc) from None
    if format is Format.json:
        print_json(result)
        return
    from rich.table import Table

    title = f"Margin backtest ({prof.name}, {underlying}, {mode}), {result['days']} days at {COVERAGE:.0%}"
    table = Table(title=title)
    columns = ("portfolio", "exceedances", "expected", "rate", "Kupiec p", "indep. p", "cond. cov. p", "Basel zone")
    for col in (*columns, "verdict"):
        table.add_column(col, justify="left" if col in ("portfolio", "verdict") else "right")
    for row in result["portfolios"]:
        table.add_row(
            row["name"],
            str(row["exceedances"]),
            f"{row['expected']:.2f}",
            f"{row['rate']:.2%}",
            f"{row['kupiec_p_value']:.3f}",
            f"{row['christoffersen_p_value']:.3f}",
            f"{row['conditional_coverage_p_value']:.3f}",
            row["zone"],
            row["verdict"],
        )
    out = console()
    out.print(table)
    out.print(
        "Kupiec: is the exceedance rate the claimed one (two-sided)? Christoffersen (indep.): do"
        " exceedances cluster? Conditional coverage: both. Basel zone: the count of exceedances only."
    )


def margin_backtest(
    time_s, close, profile, vol: float | None = None, underlying: str = "BTC", mode: str = "cross"
) -> dict:
    """For each reference portfolio on `underlying`'s instruments: start-of-day maintenance margin
    (the profile's rules in `mode`: cross, or portfolio for its risk matrix) and the next day's
    loss, then exceedances, Kupiec, Christoffersen and the Basel zone."""
    from margin_engine.simulation.backtest import backtest_margin, coverage_verdict
    from margin_engine.simulation.paths import ewma_realized_vol

    close = np.asarray(close, dtype=float)
    if vol is None:
        vols = ewma_realized_vol(close, 86_400, BACKTEST_VOL_HALF_LIFE_DAYS * 86_400, 0.6)
    else:
        vols = np.full(close.shape, vol)
    days = len(close) - 1
    pnl = np.zeros((len(REFERENCE_PORTFOLIOS), days))
    margin = np.zeros((len(REFERENCE_PORTFOLIOS), days))
    for t in range(days):
        for i, (_, legs) in enumerate(REFERENCE_PORTFOLIOS):
            margin[i, t], pnl[i, t] = _day(
                int(time_s[t]), close[t], close[t + 1], vols[t], vols[t + 1], legs, profile, underlying, mode
            )
    bt = backtest_margin(pnl, margin, COVERAGE)
    k, ind = bt.kupiec, bt.independence
    verdict = coverage_verdict(k, COVERAGE)
    return {
        "profile": profile.name,
        "underlying": underlying,
        "mode": mode,
        "coverage": COVERAGE,
        "days": days,
        "portfolios": [
            {
                "name": name,
                "exceedances": int(k.n_exceed[i]),
                "expected": float(k.expected[i]),
                "rate": float(k.rate[i]),
                "kupiec_lr": float(k.lr[i]),
                "kupiec_p_value": float(k.p_value[i]),
                "christoffersen_lr": float(ind.lr[i]),
                "christoffersen_p_value": float(ind.p_value[i]),
                "conditional_coverage_p_value": float(bt.conditional_coverage_p_value[i]),
                "zone": str(bt.zone[i]),
                "verdict": str(verdict[i]),
                "margin_mean_usd": float(margin[i].mean()),
                "loss_max_usd": float(max(-pnl[i].min(), 0.0)),
            }
            for i, (name, _) in enumerate(REFERENCE_PORTFOLIOS)
        ],
    }


def _day(
    t_s: int, s0: float, s1: float, v0: float, v1: float, legs, profile, underlying: str = "BTC", mode: str = "cross"
) -> tuple[float, float]:
    """(maintenance margin at the start of the day, P&L over the day) of one portfolio, in USD."""
    from margin_engine.instruments.names import format_expiry, parse_instrument
    from margin_engine.margin.book import AccountView, PositionView
    from margin_engine.margin.calculator import compute_margins
    from margin_engine.market.snapshot import parse_market
    from margin_engine.pricing.black76 import black76

    expiry = datetime.fromtimestamp(t_s, UTC).replace(hour=8, minute=0, second=0) + timedelta(days=OPTION_DAYS)
    decimals = profile.settlement_decimals
    positions, pnl = [], 0.0
    for kind, moneyness, size in legs:
        if kind == "perp":
            inst = parse_instrument(f"{underlying}-PERP")
            quote = -round(size * s0 * 10**decimals)
            positions.append(PositionView(inst, Decimal(repr(size)), quote))
            pnl += size * (s1 - s0)
            continue
        step = 10 ** max(int(math.log10(s0)) - 2, 0)  # 100 for BTC at 10,000-99,999, 10 for ETH at 1,000-9,999
        strike = max(round(s0 * (1 + moneyness) / step) * step, step)
        inst = parse_instrument(f"{underlying}-{format_expiry(expiry)}-{strike}-{kind}")
        positions.append(PositionView(inst, Decimal(repr(size))))
        years = [(expiry.timestamp() - t) / (365 * 86_400) for t in (t_s, t_s + 86_400)]
        p0 = float(np.ravel(black76(s0, strike, years[0], v0, 0.0, kind == "C").price)[0])
        p1 = float(np.ravel(black76(s1, strike, years[1], v1, 0.0, kind == "C").price)[0])
        pnl += size * (p1 - p0)
    account = AccountView("ref", mode, {profile.settlement_asset: 10**6 * 10**decimals}, tuple(positions))
    market = {underlying: parse_market(underlying, {"index": s0, "vol": v0, "rate": 0.0}, f"market.{underlying}")}
    m = compute_margins([account], market, profile, t_s)[0]
    return m.maintenance_margin / 10**decimals, pnl

"""Rich tables for margin results and engine state: the human-facing side of the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from margin_engine.engine.describe import rejection_text
from margin_engine.engine.what_if import WhatIf
from margin_engine.ledger.units import human_decimal, human_number
from margin_engine.margin.result import AccountMargin


def _usd(units: int, decimals: int) -> str:
    """Settlement units to the cent, for a column whose header names the asset."""
    return human_number(units / 10**decimals)


def margin_table(results: Sequence[AccountMargin], title: str = "Margin", asset: str = "USDC") -> Table:
    table = Table(title=title, title_justify="left")
    for col in (
        "account",
        "mode",
        f"equity ({asset})",
        f"initial ({asset})",
        f"maintenance ({asset})",
        f"free ({asset})",
        "MM / equity",
        "liquidatable",
    ):
        table.add_column(col, justify="left" if col in ("account", "mode") else "right")
    for m in results:
        d = m.decimals
        ratio = m.margin_ratio
        table.add_row(
            m.id,
            m.mode,
            _usd(m.equity, d),
            _usd(m.initial_margin, d),
            _usd(m.maintenance_margin, d),
            _usd(m.free_collateral, d),
            "inf" if ratio is None else f"{ratio:.2%}",
            "[bold red]yes[/]" if m.liquidatable else "no",
        )
    return table


def calibration_table(underlying: str, time_s, result) -> Table:
    from margin_engine.clock import format_time

    table = Table(
        title=f"{underlying}: price range from realized volatility (last 10 days)",
        title_justify="left",
        caption=f"tail quantile {result.quantile:.3f}"
        + (f", Student-t dof {result.dof:.2f}" if result.dof else "")
        + f"; recommended range {result.recommended:.2%}",
    )
    for col in ("day", "daily vol", "raw range", "bounded", "recommended"):
        table.add_column(col, justify="right" if col != "day" else "left")
    for t in range(max(0, len(result.sigma) - 10), len(result.sigma)):
        table.add_row(
            format_time(int(time_s[t]))[:10],
            f"{result.sigma[t]:.2%}",
            f"{result.raw_range[t]:.2%}",
            f"{result.bounded[t]:.2%}",
            f"{result.smoothed[t]:.2%}",
        )
    return table


def what_if_table(result: WhatIf) -> Group:
    """Before, after and change; then, when the engine would refuse a fill, which one and why."""
    before, after = result.before, result.after
    table = Table(title=f"{before.id}: what if {' and '.join(result.trades)}", title_justify="left")
    for col in ("", "before (USDC)", "after (USDC)", "change (USDC)"):
        table.add_column(col, justify="right" if col else "left")
    d = before.decimals
    for label, key in (
        ("equity", "equity"),
        ("initial margin", "initial_margin"),
        ("maintenance margin", "maintenance_margin"),
        ("free collateral", "free_collateral"),
    ):
        b, a = getattr(before, key), getattr(after, key)
        change = human_number((a - b) / 10**d)
        table.add_row(
            label, _usd(b, d), _usd(a, d), change if change.startswith("-") or change == "0.00" else f"+{change}"
        )
    table.add_row("liquidatable", str(before.liquidatable).lower(), str(after.liquidatable).lower(), "")
    if result.rejection is None:
        return Group(table)
    refused = result.trades[result.rejected_trade or 0]
    return Group(table, Text(f"the engine would refuse {refused}: {rejection_text(result.rejection)}"))


def positions_table(m: AccountMargin) -> Table:
    table = Table(title=f"{m.id}: positions", title_justify="left")
    columns = (
        "instrument",
        "size",
        "mark (USD)",
        "value (USD)",
        "IM (USD)",
        "MM (USD)",
        "delta (coins)",
        "gamma (coins/USD)",
        "vega (USD/vol pt)",
        "theta (USD/day)",
    )
    for col in columns:
        table.add_column(col, justify="left" if col == "instrument" else "right", no_wrap=col in ("instrument", "size"))
    for p in m.positions:
        delta, gamma, vega, theta = p.greeks
        table.add_row(
            p.instrument,
            format(p.size, "f"),
            human_number(p.mark_price),
            human_number(p.value),
            _opt(p.initial_margin),
            _opt(p.maintenance_margin),
            f"{delta:.4f}",
            f"{gamma:.3g}",
            human_number(vega),
            human_number(theta),
        )
    for a in m.adjustments:
        table.add_row(
            f"[italic]{a.kind} {a.scope}[/]",
            "",
            "",
            "",
            human_number(a.initial_margin),
            human_number(a.maintenance_margin),
            "",
            "",
            "",
            "",
        )
    for c in m.collateral:
        if c.im_haircut or c.mm_haircut:
            table.add_row(
                f"[italic]haircut {c.asset}[/]",
                format(c.balance, "f"),
                "",
                human_number(c.value),
                human_number(c.im_haircut),
                human_number(c.mm_haircut),
                "",
                "",
                "",
                "",
            )
    return table


def _opt(x: float | None) -> str:
    return "-" if x is None else human_number(x)


def print_margins(console: Console, results: Sequence[AccountMargin], title: str = "Margin") -> None:
    console.print(margin_table(results, title))
    console.print("[dim]Positions: mark, value and requirements in USD; delta in coins of the underlying.[/]")
    for m in results:
        if m.positions:
            console.print(positions_table(m))
        if m.portfolio is not None:
            for table in explain_tables(m):
                console.print(table)


def explain_tables(m: AccountMargin) -> list[Table]:
    """Portfolio margin, explained: per underlying the worst scenario, contingencies, and (with
    --explain) each position's share of the worst case and the P&L of every scenario."""
    pm = m.portfolio
    summary = Table(
        title=f"{m.id}: portfolio margin = {pm['im_factor']:g} x base (IM), {pm['mm_factor']:g} x base (MM)",
        title_justify="left",
    )
    for col in ("underlying", "worst scenario", "loss (USD)", "contingencies (USD)", "base (USD)"):
        summary.add_column(col, justify="right" if col in ("loss (USD)", "base (USD)") else "left")
    tables = [summary]
    for u in pm["underlyings"]:
        cont = ", ".join(f"{k} {human_number(v)}" for k, v in u["contingencies"].items()) or "-"
        summary.add_row(
            u["underlying"], u["worst_scenario"]["label"], human_number(u["loss"]), cont, human_number(u["base"])
        )
        if "contributions" in u:
            contrib = Table(title=f"{m.id} {u['underlying']}: P&L in the worst scenario", title_justify="left")
            contrib.add_column("position")
            contrib.add_column("P&L (USD)", justify="right")
            for c in u["contributions"]:
                contrib.add_row(c["instrument"], human_number(c["pnl"]))
            tables.append(contrib)
            tables.append(_scenario_grid(m.id, u))
    return tables


def _scenario_grid(account: str, u: dict) -> Table:
    grid = Table(title=f"{account} {u['underlying']}: P&L by scenario (weighted, USD)", title_justify="left")
    grid.add_column("spot")
    for vol in ("down", "none", "up"):
        grid.add_column(f"vol {vol}", justify="right")
    rows: dict[tuple[bool, float], dict[str, str]] = {}
    for s in u["scenarios"]:
        rows.setdefault((s["extended"], s["spot_shock"]), {})[s["vol_shock"]] = human_number(s["pnl"])
    for (extended, shock), cells in sorted(rows.items()):
        label = f"{shock:+.2%}" + (" (extended)" if extended else "")
        grid.add_row(label, *(cells.get(v, "") for v in ("down", "none", "up")))
    return grid


def state_tables(state_obj: dict) -> list[Table]:
    """Balances, positions and pools from `state_json`: each amount with its asset, times in UTC."""
    when = (state_obj["time"] or "clock not set").replace("T", " ").replace("Z", " UTC")
    balances = Table(title=f"State at {when}", title_justify="left")
    for col in ("account", "mode", "balances", "positions"):
        balances.add_column(col)
    for a in state_obj["accounts"]:
        bal = ", ".join(_amount_text(v, k) for k, v in a["balances"].items()) or "-"
        pos = "\n".join(_position_text(p) for p in a["positions"]) or "-"
        balances.add_row(a["id"], a["mode"], bal, pos)
    pools = Table(title="Pools", title_justify="left")
    pools.add_column("pool")
    pools.add_column("balance", justify="right")
    for label, key in (("insurance fund", "insurance_fund"), ("fee pool", "fee_pool"), ("settlement", "settlement")):
        pools.add_row(label, ", ".join(_amount_text(v, k) for k, v in state_obj[key].items()) or "0")
    return [balances, pools]


def _amount_text(value: str, asset: str) -> str:
    """A decimal-string amount with thousands separators and its asset: `50,000.00 USDC`, `1.5 BTC`."""
    return human_decimal(Decimal(value), asset)


def _position_text(p: dict) -> str:
    text = f"{p['instrument']} {p['size']}"
    if "quote" in p:
        text += f" (perp cash {_amount_text(p['quote'], 'USDC')})"
    if "collateral" in p:
        text += f" (collateral {_amount_text(p['collateral'], 'USDC')})"
    return text

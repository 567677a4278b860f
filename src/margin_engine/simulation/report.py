"""Results of a sweep as files: `summary.json` (deterministic: sorted keys, rounded floats, no
timestamps) and a self-contained `report.html` (matplotlib PNGs embedded as base64)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from margin_engine.simulation.runner import PathResult
from margin_engine.simulation.scenario import Scenario

DIGITS = 6  # significant digits kept in summary.json

# Every metric in the table: (unit, one-line definition). summary.json carries these too.
DEFINITIONS: dict[str, tuple[str, str]] = {
    "bad_debt_usd": (
        "USD",
        "total loss: bankruptcies resolved + negative equity still open at the end + the backstop's loss",
    ),
    "bad_debt_resolved_usd": ("USD", "deficits of bankrupt accounts closed out during the run (fund, ADL, socialized)"),
    "bad_debt_open_usd": ("USD", "negative equity at the final mark of accounts no liquidator took"),
    "backstop_loss_usd": ("USD", "what the protocol's backstop liquidator lost (its P&L at the final mark, if < 0)"),
    "accounts_underwater_at_end": ("accounts", "accounts with negative equity at the end"),
    "socialized_loss_usd": ("USD", "losses spread over accounts after the fund ran dry"),
    "adl_usd": ("USD", "losses closed by auto-deleveraging profitable opposite positions"),
    "funding_paid_usd": ("USD", "funding paid by the perps' payers at the profile's [funding] rule (none without one)"),
    "fund_min_usd": ("USD", "lowest insurance fund balance during the run"),
    "insurance_fund_start_usd": ("USD", "insurance fund at the start"),
    "open_interest_start_usd": ("USD", "perp open interest (longs x mark) at the start"),
    "liquidation_count": ("liquidations", "liquidation episodes started (fixed fills and auctions)"),
    "relistings": ("auctions", "auctions of an account whose last auction left it unhealthy"),
    "cascade_liquidations": ("liquidations", "accounts made liquidatable by forced sales within the same step"),
    "liquidation_volume_usd": ("USD", "notional of positions taken in liquidations, at the mark"),
    "liquidation_cost_to_users_usd": ("USD", "positive equity liquidated users lost, at the mark"),
    "liquidation_to_keepers_usd": ("USD", "equity keepers gained from liquidations, at the mark"),
    "liquidation_to_mev_usd": ("USD", "equity MEV searchers gained from liquidations, at the mark"),
    "liquidation_to_backstop_usd": ("USD", "equity the backstop gained from taking accounts over, at the mark"),
    "liquidation_to_insurance_usd": ("USD", "net change of the insurance fund from liquidations"),
    "liquidation_to_fees_usd": ("USD", "liquidation fees to the venue"),
    "liquidation_to_others_usd": ("USD", "equity other accounts gained (or lost: ADL, socialized loss)"),
    "liquidation_bad_debt_closed_usd": ("USD", "negative equity closed out in liquidations"),
    "keeper_pnl_usd": ("USD", "keepers' P&L at the final mark, after their transaction costs"),
    "mev_pnl_usd": ("USD", "searchers' P&L at the final mark, after their priority fees"),
    "backstop_pnl_usd": ("USD", "the backstop liquidator's P&L at the final mark"),
    "backstop_takeovers": ("accounts", "accounts the backstop took over after no keeper did within its delay"),
    "backstop_position_end_usd": ("USD", "gross notional the backstop still holds at the end"),
    "keeper_fills": ("fills", "liquidation fills won by keepers"),
    "mev_fills": ("fills", "liquidation fills won by MEV searchers"),
    "vault_pnl_usd": ("USD", "covered-call vault's P&L less its top-ups"),
    "margin_per_notional": ("ratio", "initial margin required per USD of gross notional, run average"),
    "peak_open_interest_usd": ("USD", "highest perp open interest (longs x mark)"),
    "min_mid_usd": ("USD", "lowest traded mid (forced sales included)"),
    "time_under_water_s": ("s", "time with the fund below zero or any account's equity below zero"),
}
TABLE_METRICS = tuple(DEFINITIONS)
COUNT_UNITS = {"accounts", "liquidations", "auctions", "fills"}
CAVEATS = (
    "A historical path is the real market's price, which already holds that day's own forced selling;"
    " the simulated forced sales move the mid on top of it.",
    "One implied vol per step for every strike (no smile); it follows the mid through a spot-vol relation.",
    "One underlying (BTC instruments); ETH windows are replayed on BTC instruments with BTC parameters.",
    "The population is drawn (population.py), not a venue's real book of accounts.",
    "Keepers and searchers act in rounds of keepers.round_s; there is no block time and no outage.",
)


def _round(x: float) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.{DIGITS}g}")


def _stats(values: list[float]) -> dict[str, float | None]:
    arr = np.array([v for v in values if math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "q01": None, "q50": None, "q99": None, "max": None}
    q = np.quantile(arr, (0.01, 0.5, 0.99))
    return {
        "mean": _round(float(arr.mean())),
        "q01": _round(float(q[0])),
        "q50": _round(float(q[1])),
        "q99": _round(float(q[2])),
        "max": _round(float(arr.max())),
    }


def summarize(scenario: Scenario, results: list[PathResult]) -> dict:
    """The summary: per variant, each metric's mean and quantiles across paths and a headline; per
    path, the metrics; the definitions, assumptions and caveats the report prints."""
    variants, headlines = {}, {}
    for v in scenario.all_variants():
        rows = [r for r in results if r.variant == v.name]
        names = sorted(rows[0].metrics) if rows else []
        variants[v.name] = {name: _stats([r.metrics[name] for r in rows]) for name in names}
        headlines[v.name] = headline([r.metrics for r in rows])
    return {
        "scenario": scenario.name,
        "profile": scenario.profile,
        "seed": scenario.seed,
        "paths": scenario.paths,
        "dt_s": scenario.dt_s,
        "steps": results[0].steps if results else 0,
        "accounts": results[0].accounts if results else 0,
        "start_utc": _utc(results[0].start_s) if results else None,
        "price_source": sorted({r.price_source for r in results}),
        "headlines": headlines,
        "definitions": {k: {"unit": u, "definition": d} for k, (u, d) in DEFINITIONS.items()},
        "assumptions": assumptions(scenario, results),
        "caveats": list(CAVEATS),
        "variants": variants,
        "per_path": [
            {"variant": r.variant, "path": r.path, "metrics": {k: _round(x) for k, x in sorted(r.metrics.items())}}
            for r in results
        ],
    }


def headline(paths: list[dict[str, float]]) -> dict:
    """Did the fund survive, was there ADL or socialized loss, the worst bad debt: across paths."""
    if not paths:
        return {"text": "no paths"}
    n = len(paths)
    exhausted = sum(m["fund_min_usd"] <= 0 for m in paths)
    adl = sum(m["adl_usd"] > 0 for m in paths)
    socialized = sum(m["socialized_loss_usd"] > 0 for m in paths)
    worst = max(m["bad_debt_usd"] for m in paths)
    lowest = min(m["fund_min_usd"] for m in paths)
    fund = (
        f"the fund survived on all {n} path(s) (lowest {lowest:,.0f} USD)"
        if not exhausted
        else f"the fund ran dry on {exhausted} of {n} path(s)"
    )
    losses = (
        "no ADL and no socialized loss"
        if not (adl or socialized)
        else (f"ADL on {adl} and socialized loss on {socialized} of {n} path(s)")
    )
    return {
        "fund_survived": not exhausted,
        "paths_fund_exhausted": exhausted,
        "paths_with_adl": adl,
        "paths_with_socialized_loss": socialized,
        "worst_bad_debt_usd": _round(worst),
        "text": f"{fund}; {losses}; worst total loss {_human_usd(worst)}",
    }


def assumptions(scenario: Scenario, results: list[PathResult]) -> dict:
    """What the results rest on: depth, fund, latencies, population, backstop, as run."""
    sc = scenario

    def first(metric: str):
        values = [r.metrics.get(metric) for r in results if r.path == 0]
        return _round(values[0]) if values and values[0] is not None else None

    oi = first("open_interest_start_usd")
    fund, depth = first("insurance_fund_start_usd"), first("depth_start_usd_per_pct")
    d = sc.depth
    return {
        "depth_start_usd_per_pct": depth,
        "depth_per_open_interest": _round(depth / oi) if depth and oi else None,
        "depth_thinning": {
            "vol_elasticity": d.vol_elasticity,
            "drawdown_elasticity": d.drawdown_elasticity,
            "refill_half_life_s": d.refill_half_life_s,
            "market_maker_inventory_usd": d.market_maker_inventory_usd,
            "mid_resilience_half_life_s": d.resilience_half_life_s,
        },
        "insurance_fund_start_usd": fund,
        "fund_per_open_interest": _round(fund / oi) if fund is not None and oi else None,
        "open_interest_start_usd": oi,
        "keeper_latency_s": sc.keepers.latency_s,
        "mev_latency_s": sc.mev.latency_s,
        "round_s": sc.keepers.round_s,
        "keepers": sc.keepers.count,
        "searchers": sc.mev.searchers,
        "backstop": sc.backstop.model_dump() if sc.backstop.enabled else None,
        "population": {
            "traders": sc.population.traders,
            "option_sellers": sc.population.option_sellers,
            "hedged_books": sc.population.hedged_books,
            "vault_btc": sc.population.vault_btc,
            "margin_mode": sc.population.margin_mode,
        },
        "oracle": {"guards": sc.oracle.guards, "sources": sc.oracle.sources},
        "note": "values of path 0; variants may override depth and fund (see their metrics)",
    }


def _utc(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _human_usd(x: float) -> str:
    a = abs(x)
    if a >= 1e9:
        return f"{x / 1e9:,.2f} bn USD"
    if a >= 1e6:
        return f"{x / 1e6:,.2f} M USD"
    return f"{x:,.0f} USD"


def write_summary(path: Path, summary: dict) -> None:
    path.write_text(json.dumps(summary, sort_keys=True, indent=2) + "\n")


def write_report(out_dir: Path, scenario: Scenario, results: list[PathResult]) -> dict:
    """Write summary.json and report.html into out_dir; return the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(scenario, results)
    write_summary(out_dir / "summary.json", summary)
    (out_dir / "report.html").write_text(render_html(scenario, results, summary))
    return summary


def render_html(scenario: Scenario, results: list[PathResult], summary: dict) -> str:
    figures = [
        ("Fundamental, mid and mark per variant (path 0)", _plot_prices(results, scenario.dt_s)),
        ("Insurance fund and total loss per variant (path 0)", _plot_fund(results, scenario.dt_s)),
        ("Total loss across paths", _plot_losses(scenario, results)),
    ]
    imgs = "\n".join(
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">' for t, png in figures
    )
    heads = "".join(
        f"<li><b>{html.escape(n)}</b>: {html.escape(h['text'])}</li>" for n, h in summary["headlines"].items()
    )
    a = summary["assumptions"]
    facts = "".join(
        f"<li>{html.escape(k)}: {html.escape(json.dumps(v, sort_keys=True))}</li>" for k, v in a.items() if k != "note"
    )
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in summary["caveats"])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(scenario.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child,"
        "td.def{text-align:left}td.def{color:#555;font-size:90%}"
        "</style></head><body>"
        f"<h1>Stress simulation: {html.escape(scenario.name)}</h1>"
        f"<p>profile {html.escape(scenario.profile)}, seed {scenario.seed}, {scenario.paths} path(s), "
        f"{summary['steps']} steps of {scenario.dt_s} s from {html.escape(summary['start_utc'] or '-')}, "
        f"{summary['accounts']} accounts; prices: {html.escape('; '.join(summary['price_source']))}</p>"
        f"<h2>Headlines</h2><ul>{heads}</ul>"
        f"<h2>Variants: mean, median (q50) and q99 across paths</h2>{_table(summary)}{imgs}"
        f"<h2>Assumptions (path 0)</h2><ul>{facts}</ul><h2>Caveats</h2><ul>{caveats}</ul></body></html>\n"
    )


def _table(summary: dict) -> str:
    names = list(summary["variants"])
    head = "".join(f"<th colspan='3'>{html.escape(n)}</th>" for n in names)
    sub = "".join("<th>mean</th><th>q50</th><th>q99</th>" for _ in names)
    rows = []
    for metric in TABLE_METRICS:
        unit, definition = DEFINITIONS[metric]
        cells = ""
        for n in names:
            stats = summary["variants"][n].get(metric, {})
            cells += "".join(f"<td>{_fmt(stats.get(q), unit)}</td>" for q in ("mean", "q50", "q99"))
        rows.append(
            f"<tr><td>{metric}</td><td class='def'>{html.escape(unit)}: {html.escape(definition)}</td>{cells}</tr>"
        )
    return (
        f"<table><tr><th rowspan='2'>metric</th><th rowspan='2'>unit: definition</th>{head}</tr>"
        f"<tr>{sub}</tr>{''.join(rows)}</table>"
    )


def _fmt(x, unit: str = "") -> str:
    if x is None:
        return "-"
    if unit in COUNT_UNITS:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"
    if unit == "ratio":
        return f"{x:.4f}"
    return f"{x:,.0f}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figures(n: int):
    """Small multiples: one panel per variant, three to a row, shared axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(max(n, 1), 3)
    rows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), sharex=True, sharey=True, squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes


def _first_paths(results: list[PathResult]) -> list[PathResult]:
    return [r for r in results if r.path == 0]


def _times(r: PathResult, n: int, dt_s: int) -> list[datetime]:
    return [datetime.fromtimestamp(r.start_s + k * dt_s, UTC).replace(tzinfo=None) for k in range(n)]


def _utc_axis(fig, axes) -> None:
    import matplotlib.dates as mdates

    for ax in axes.ravel():
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (UTC)")
    fig.tight_layout()


def _plot_prices(results: list[PathResult], dt_s: int) -> str:
    first = _first_paths(results)
    fig, axes = _figures(len(first))
    for ax, r in zip(axes.ravel(), first, strict=False):
        t = _times(r, len(r.series["mark"]), dt_s)
        ax.plot(t, r.series["fundamental"], label="fundamental", color="black", lw=1)
        ax.plot(t, r.series["mark"], label="mark (oracle)", lw=1)
        ax.plot(t, r.series["mid"], label="traded mid", lw=0.8, ls=":")
        ax.set_title(r.variant, fontsize=9)
    axes[0, 0].set_ylabel("USD")
    if first:
        axes[0, 0].legend(fontsize=6, loc="lower left")
    _utc_axis(fig, axes)
    return _png(fig)


def _plot_fund(results: list[PathResult], dt_s: int) -> str:
    first = _first_paths(results)
    fig, axes = _figures(len(first))
    for ax, r in zip(axes.ravel(), first, strict=False):
        t = _times(r, len(r.series["insurance_fund_usd"]), dt_s)
        ax.plot(t, r.series["insurance_fund_usd"], label="insurance fund", lw=1)
        ax.plot(t[1:], np.cumsum(r.series["bad_debt_usd"]), label="bad debt resolved, cumulative", lw=1)
        ax.set_title(r.variant, fontsize=9)
    axes[0, 0].set_ylabel("USD")
    if first:
        axes[0, 0].legend(fontsize=6, loc="center left")
    _utc_axis(fig, axes)
    return _png(fig)


def _plot_losses(scenario: Scenario, results: list[PathResult]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.5))
    names = [v.name for v in scenario.all_variants()]
    data = [[r.metrics["bad_debt_usd"] for r in results if r.variant == n] for n in names]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax.set_ylabel("total loss (bad debt), USD")
    fig.tight_layout()
    return _png(fig)

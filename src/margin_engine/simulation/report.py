"""Results of a sweep as files: `summary.json` (deterministic: sorted keys, rounded floats, no
timestamps) and a self-contained `report.html` (matplotlib PNGs embedded as base64)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from margin_engine.simulation.runner import PathResult
from margin_engine.simulation.scenario import Scenario

DIGITS = 6  # significant digits kept in summary.json
TABLE_METRICS = (
    "bad_debt_usd",
    "bad_debt_resolved_usd",
    "bad_debt_open_usd",
    "accounts_underwater_at_end",
    "socialized_loss_usd",
    "adl_usd",
    "fund_min_usd",
    "liquidation_count",
    "relistings",
    "cascade_liquidations",
    "liquidation_volume_usd",
    "liquidation_cost_to_users_usd",
    "liquidation_to_keepers_usd",
    "liquidation_to_mev_usd",
    "liquidation_to_insurance_usd",
    "liquidation_to_fees_usd",
    "liquidation_to_others_usd",
    "liquidation_bad_debt_closed_usd",
    "keeper_pnl_usd",
    "mev_pnl_usd",
    "keeper_fills",
    "mev_fills",
    "vault_pnl_usd",
    "margin_per_notional",
    "peak_open_interest_usd",
    "time_under_water_s",
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
    """The summary: per variant, each metric's mean and quantiles across paths; per path, the metrics."""
    variants = {}
    for v in scenario.all_variants():
        rows = [r for r in results if r.variant == v.name]
        names = sorted(rows[0].metrics) if rows else []
        variants[v.name] = {name: _stats([r.metrics[name] for r in rows]) for name in names}
    return {
        "scenario": scenario.name,
        "profile": scenario.profile,
        "seed": scenario.seed,
        "paths": scenario.paths,
        "dt_s": scenario.dt_s,
        "steps": results[0].steps if results else 0,
        "accounts": results[0].accounts if results else 0,
        "price_source": sorted({r.price_source for r in results}),
        "variants": variants,
        "per_path": [
            {"variant": r.variant, "path": r.path, "metrics": {k: _round(x) for k, x in sorted(r.metrics.items())}}
            for r in results
        ],
    }


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
        ("Fundamental, mid and mark (path 0)", _plot_prices(results)),
        ("Insurance fund (path 0)", _plot_series(results, "insurance_fund_usd", "USD", cumulative=False)),
        ("Liquidations, cumulative (path 0)", _plot_series(results, "liquidations", "count", cumulative=True)),
        ("Bad debt across paths", _plot_losses(scenario, results)),
    ]
    imgs = "\n".join(
        f'<h2>{html.escape(t)}</h2><img alt="{html.escape(t)}" src="data:image/png;base64,{png}">' for t, png in figures
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(scenario.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "</style></head><body>"
        f"<h1>Stress simulation: {html.escape(scenario.name)}</h1>"
        f"<p>profile {html.escape(scenario.profile)}, seed {scenario.seed}, {scenario.paths} path(s), "
        f"{summary['steps']} steps of {scenario.dt_s} s, {summary['accounts']} accounts; prices: "
        f"{html.escape('; '.join(summary['price_source']))}</p>"
        f"<h2>Variants (mean across paths)</h2>{_table(summary)}{imgs}</body></html>\n"
    )


def _table(summary: dict) -> str:
    names = list(summary["variants"])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for metric in TABLE_METRICS:
        cells = "".join(f"<td>{_fmt(summary['variants'][n].get(metric, {}).get('mean'))}</td>" for n in names)
        rows.append(f"<tr><td>{metric}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.4f}" if abs(x) < 10 else f"{x:,.0f}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(9, 3.5))


def _first_paths(results: list[PathResult]) -> list[PathResult]:
    return [r for r in results if r.path == 0]


def _plot_prices(results: list[PathResult]) -> str:
    fig, ax = _figure()
    first = _first_paths(results)
    if first:
        ax.plot(first[0].series["fundamental"], label="fundamental", color="black", lw=1)
    for r in first:
        ax.plot(r.series["mark"], label=f"mark {r.variant}", lw=1)
        ax.plot(r.series["mid"], label=f"mid {r.variant}", lw=0.8, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("USD")
    ax.legend(fontsize=7)
    return _png(fig)


def _plot_series(results: list[PathResult], key: str, unit: str, cumulative: bool) -> str:
    fig, ax = _figure()
    for r in _first_paths(results):
        values = np.cumsum(r.series[key]) if cumulative else r.series[key]
        ax.plot(values, label=r.variant, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel(unit)
    ax.legend(fontsize=7)
    return _png(fig)


def _plot_losses(scenario: Scenario, results: list[PathResult]) -> str:
    fig, ax = _figure()
    names = [v.name for v in scenario.all_variants()]
    data = [[r.metrics["bad_debt_usd"] for r in results if r.variant == n] for n in names]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=7)
    ax.set_ylabel("bad debt, USD")
    return _png(fig)

"""`simulate` and `backtest` as registered by the app, on a small Typer app of their own."""

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from margin_engine.cli.simulate_cmd import backtest, simulate

app = typer.Typer()
app.command()(simulate)
app.command()(backtest)

SCENARIO = """
name = "tiny"
seed = 3
paths = 1
steps = 4
[price]
kind = "gbm"
shock_step = 2
shock_pct = -10
[population]
traders = 10
option_sellers = 1
"""


def _prices(tmp_path, closes):
    lines = ["time,open,high,low,close,volume"]
    for i, c in enumerate(closes):
        day = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)
        lines.append(f"{day:%Y-%m-%dT%H:%M:%SZ},{c},{c},{c},{c},1")
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_simulate_writes_summary_and_report(tmp_path):
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--out", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 4 and list(summary["variants"]) == ["base"]
    assert "steps/s" in result.output
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    # a headline per variant, in the report, the summary and the terminal
    head = summary["headlines"]["base"]
    assert head["text"].startswith("the fund survived on all 1 path(s)") and head["fund_survived"] is True
    assert head["text"] in page and "base: the fund survived" in result.output
    # every metric in the table with its unit and definition; q50 and q99 beside the mean
    assert summary["definitions"]["bad_debt_usd"]["unit"] == "USD"
    assert "USD: total loss: bankruptcies resolved" in page and "<th>q99</th>" in page
    assert summary["assumptions"]["insurance_fund_start_usd"] == 1e6
    assert summary["start_utc"] == "2026-11-25 08:00 UTC" and "from 2026-11-25 08:00 UTC" in page
    assert summary["caveats"] and "Caveats" in page


def test_simulate_bad_input_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["simulate", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: scenario:")


def test_simulate_dask_needs_dask(tmp_path):
    try:
        import dask.distributed  # noqa: F401

        pytest.skip("dask is installed")
    except ImportError:
        pass
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(SCENARIO)
    result = CliRunner().invoke(app, ["simulate", str(scenario), "--dask", "tcp://127.0.0.1:1", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--dask" in result.output


def test_backtest_counts_exceedances_by_hand(tmp_path):
    # 30 flat days at 50,000, then a 5% fall: one day of P&L -2,500 for the long, +2,500 for the short.
    # Long perp maintenance (deribit): 50,000 x (1% + 0.005% x 1 BTC) = 502.50 < 2,500: one exceedance in 30.
    prices = _prices(tmp_path, [50_000] * 30 + [47_500])
    result = CliRunner().invoke(app, ["backtest", str(prices), "--vol", "0.6", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = {r["name"]: r for r in out["portfolios"]}
    assert out["days"] == 30
    assert rows["long_perp"]["exceedances"] == 1
    assert rows["short_perp"]["exceedances"] == 0
    assert rows["long_perp"]["margin_mean_usd"] == pytest.approx(502.5)
    assert rows["long_perp"]["loss_max_usd"] == pytest.approx(2500)
    # Kupiec: LR = -2 ln[0.99^29 0.01 / ((29/30)^29 (1/30))]
    lr = -2 * (29 * math.log(0.99) + math.log(0.01) - 29 * math.log(29 / 30) - math.log(1 / 30))
    assert rows["long_perp"]["kupiec_lr"] == pytest.approx(lr)
    # zero exceedances in 30 days: LR = -2 x 30 ln 0.99 = 0.603
    assert rows["short_perp"]["kupiec_lr"] == pytest.approx(-60 * math.log(0.99))
    # 1 in 30 at 99%: Kupiec p = P(chi2(1) > LR) ~ 0.17, not rejected; the one exceedance is the last
    # day, so no transition leaves an exceedance: n00 = 28, n01 = 1 and the independence LR is 0
    assert rows["long_perp"]["verdict"] == "consistent" and rows["long_perp"]["christoffersen_lr"] == 0
    assert rows["long_perp"]["christoffersen_p_value"] == 1
    assert rows["long_perp"]["conditional_coverage_p_value"] == pytest.approx(math.exp(-lr / 2))


def test_backtest_table_and_bad_input(tmp_path):
    prices = _prices(tmp_path, [50_000 + 100 * i for i in range(40)])
    result = CliRunner().invoke(app, ["backtest", str(prices)])
    assert result.exit_code == 0, result.output
    assert "short_strangle" in result.output
    bad = CliRunner().invoke(app, ["backtest", str(prices), "--vol", "-1"])
    assert bad.exit_code == 2 and bad.output.strip() == "error: --vol: must be in (0, 10], got -1.0"


@pytest.mark.parametrize(
    "args",
    [["--paths", "0"], ["--seed", "-1"], ["--workers", "0"], ["--out", "FILE"]],
)
def test_simulate_options_are_checked_before_any_work(args, tmp_path):
    """Through the console script: one line and exit 2, before a single path is run."""
    import subprocess
    import sys

    (tmp_path / "FILE").write_text("not a folder")
    scenario = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "flash-wick-1m.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", "simulate", str(scenario), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_backtest_of_eth_on_eth_instruments_and_of_the_risk_matrix(tmp_path):
    prices = _prices(tmp_path, [2_000] * 30 + [1_900])
    run = CliRunner().invoke(app, ["backtest", str(prices), "--underlying", "ETH", "--vol", "0.6", "--format", "json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output)
    rows = {r["name"]: r for r in out["portfolios"]}
    # ETH-PERP maintenance (deribit): 2,000 x (1% + 0.0004% x 1 ETH) = 20.008; the 100 USD fall exceeds it
    assert out["underlying"] == "ETH" and out["mode"] == "cross"
    assert rows["long_perp"]["margin_mean_usd"] == pytest.approx(20.008)
    assert rows["long_perp"]["exceedances"] == 1
    args = ["backtest", str(prices), "--underlying", "ETH", "--profile", "deribit-pm", "--mode", "portfolio"]
    pm = json.loads(CliRunner().invoke(app, [*args, "--vol", "0.6", "--format", "json"]).output)
    pm_rows = {r["name"]: r for r in pm["portfolios"]}
    # the risk matrix: the worst of ETH's +/-18% buckets on 1 ETH (360 USD) plus the delta shock
    # contingency (1% x 2,000 x |delta 1| = 20), times mm_factor 0.8: 304
    assert pm_rows["long_perp"]["margin_mean_usd"] == pytest.approx(304.0, rel=1e-9)
    assert pm_rows["long_perp"]["exceedances"] == 0 and pm["mode"] == "portfolio"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--underlying", "SOL"], "error: --underlying: deribit lists BTC, ETH, not 'SOL'"),
        (["--mode", "portfolio"], "error: --mode: portfolio needs a profile with [portfolio.underlyings.BTC]"),
        (["--mode", "isolated"], "error: --mode: must be cross or portfolio, got 'isolated'"),
    ],
)
def test_backtest_underlying_and_mode_are_checked(tmp_path, args, message):
    prices = _prices(tmp_path, [50_000 + 100 * i for i in range(40)])
    bad = CliRunner().invoke(app, ["backtest", str(prices), *args])
    assert bad.exit_code == 2 and bad.output.strip() == message

"""The command line: outputs people and programs read, and bad input that exits 2 in one line."""

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from margin_engine.cli.app import app
from margin_engine.ledger.units import format_units

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()

BASE = {
    "valuation_time": "2026-11-25T08:00:00Z",
    "market": {"BTC": {"index": 60000, "vol": 0.6, "rate": 0.0}},
    "accounts": [
        {
            "id": "alice",
            "mode": "cross",
            "collateral": {"USDC": "100000"},
            "positions": [
                {"instrument": "BTC-PERP", "size": "-2", "entry_price": "61000"},
                {"instrument": "BTC-25DEC26-60000-C", "size": "-1", "entry_price": "3000"},
            ],
        }
    ],
}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(tmp_path, obj, name="p.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_margin_json_shape(tmp_path):
    result = invoke("margin", write(tmp_path, BASE), "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (acct,) = out["accounts"]
    assert {
        "id",
        "mode",
        "equity",
        "initial_margin",
        "maintenance_margin",
        "free_collateral",
        "liquidatable",
        "greeks",
        "positions",
    } <= set(acct)
    assert set(acct["greeks"]) == {"delta", "gamma", "vega", "theta"}
    for key in ("equity", "initial_margin", "maintenance_margin", "free_collateral"):
        assert isinstance(acct[key], str) and Decimal(acct[key]).as_tuple().exponent == -6
    # perp IM: 120,000 * 2.01% = 2,412 -> the perp row carries it
    assert acct["positions"][0]["initial_margin"] == "2412.000000"
    assert Decimal(acct["free_collateral"]) == Decimal(acct["equity"]) - Decimal(acct["initial_margin"])


def test_margin_table_and_toml_and_profile(tmp_path):
    toml = """valuation_time = "2026-11-25T08:00:00Z"
[market.BTC]
index = 60000
vol = 0.6
[[accounts]]
id = "bob"
collateral = { USDC = "5000" }
positions = [{ instrument = "BTC-PERP", size = "1" }]
"""
    result = invoke("margin", write(tmp_path, toml, "p.toml"), "--profile", "derive")
    assert result.exit_code == 0, result.output
    assert "bob" in result.stdout and "derive" in result.stdout
    # derive perp IM 6.5% of 60,000 = 3,900
    assert "3,900.00" in result.stdout


def test_examples_run(tmp_path):
    assert invoke("margin", EXAMPLES / "portfolio.json").exit_code == 0
    result = invoke("run", EXAMPLES / "scenario.jsonl", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    codes = [r["rejection"]["code"] for r in out["results"] if "rejection" in r]
    assert codes == ["insufficient_margin"]
    assert set(out["state"]) >= {"accounts", "insurance_fund", "fee_pool", "settlement", "time"}
    usdc = out["conservation"]["USDC"]
    held = sum(Decimal(usdc[k]) for k in ("users", "insurance", "fees", "settlement"))
    assert held == Decimal(usdc["deposits"]) - Decimal(usdc["withdrawals"])
    assert out["margin"]["accounts"][0]["id"] == "alice"


# Human output has no integer smallest units and no epoch seconds: a run of 9+ digits with no
# separator is one of them (50,000.00 USDC and 2026-11-25 08:00:00 UTC never are).
RAW_NUMBER = re.compile(r"(?<![\d.,])\d{9,}(?![\d.,])")
MINUS_ZERO = re.compile(r"(?<![\d.,])-0\.0+(?![\d])")


def test_run_table_prints_events_in_words_with_units():
    result = invoke("run", EXAMPLES / "scenario.jsonl")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "rejected insufficient_margin: alice: withdrawal would leave initial margin uncovered (needs " in out
    assert "50,000.00 USDC: external -> alice (deposit)" in out
    assert "engine time 2026-11-25 08:00:00 UTC" in out
    assert "bob bought 2 BTC-25DEC26-60000-C from alice at 4,100.00 USD" in out
    assert "alice now holds 1 BTC-PERP, perp cash -60,000.00 USDC" in out
    assert "State at 2026-12-25 08:00:00 UTC" in out and "Pools" in out and "equity (USDC)" in out
    assert "1 of 15 commands rejected" in out
    assert not RAW_NUMBER.search(out), RAW_NUMBER.search(out)
    assert not MINUS_ZERO.search(out) and "amount=" not in out and "time=" not in out


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("liquidation-partial.jsonl", "deribit"),
        ("liquidation-adl.jsonl", "deribit"),
        ("liquidation-socialized.jsonl", "derive"),
    ],
)
def test_run_liquidations_read_in_words(name, profile):
    out = invoke("run", EXAMPLES / name, "--profile", profile).stdout
    assert re.search(r"took \d+\.\d\d% of \w+'s book \((fixed penalty|Dutch auction|batch auction)\)", out), out
    assert not RAW_NUMBER.search(out) and not MINUS_ZERO.search(out)


def test_run_json_keeps_integers_under_units_names():
    result = invoke("run", EXAMPLES / "liquidation-partial.jsonl", "--format", "json")
    out = json.loads(result.stdout)
    assert out["format_version"] == 2 and out["rejected"] == 1  # the not_liquidatable retry
    events = [e for r in out["results"] for e in r.get("events", [])]
    fill = next(e for e in events if e["type"] == "liquidation_fill")
    assert fill["penalty_units"] == 723_874_198 and fill["penalty"] == "723.874198"
    assert isinstance(fill["paid_units"], int) and "text" in fill
    deposit = next(e for e in events if e["type"] == "transfer" and e["reason"] == "deposit")
    assert isinstance(deposit["amount_units"], int) and deposit["amount"] == format_units(deposit["amount_units"], 6)
    clock = next(e for e in events if e["type"] == "time_advanced")
    assert isinstance(clock["time_s"], int) and clock["time"].endswith("Z")
    for e in events:  # every integer amount or time is named for its unit
        for key, value in e.items():
            if isinstance(value, int) and not isinstance(value, bool):
                assert key.endswith(("_units", "_s")), (e["type"], key)


def test_run_strict_exits_1_on_a_rejection():
    assert invoke("run", EXAMPLES / "scenario.jsonl").exit_code == 0
    result = invoke("run", EXAMPLES / "scenario.jsonl", "--strict")
    assert result.exit_code == 1 and "(--strict: exit 1)" in result.stdout
    assert invoke("run", EXAMPLES / "liquidation-adl.jsonl", "--strict").exit_code == 0


@pytest.mark.parametrize("profile", ["deribit", "derive", "deribit-pm", "derive-pmrm"])
def test_demo_tells_what_happens_in_units(profile):
    result = invoke("demo", "--profile", profile)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "rejected trade: insufficient_margin" in out and "Conservation" in out
    assert "rejected start_liquidation" not in out and "rejected bid" not in out  # the liquidation it narrates happens
    assert re.search(r"keeper took \d+\.\d\d% of alice's book", out)
    conservation = " ".join(out.split("Conservation")[-1].split())  # the last lines, unwrapped
    assert re.search(r"USDC: deposits - withdrawals = 714,000\.00 USDC = users [\d,]+\.\d\d USDC", conservation)
    assert conservation.endswith("pending withdrawals 0.00 USDC"), conservation
    assert not RAW_NUMBER.search(out) and not MINUS_ZERO.search(out)
    pooled = "portfolio" if profile.endswith(("-pm", "-pmrm")) else "cross"
    assert f"account alice opened ({pooled} margin)" in out


def test_margin_table_has_units_and_json_integers():
    out = invoke("margin", EXAMPLES / "pm-book.json", "--profile", "deribit-pm", "--explain").stdout
    assert "equity (USDC)" in out and "mark (USD)" in out and "delta (coins)" in out and "loss (USD)" in out
    assert not RAW_NUMBER.search(out) and not MINUS_ZERO.search(out)
    data = json.loads(invoke("margin", EXAMPLES / "portfolio.json", "--format", "json").stdout)
    for account in data["accounts"]:
        assert isinstance(account["initial_margin_units"], int)
        assert account["initial_margin"] == format_units(account["initial_margin_units"], 6)


def _position(**over):
    pos = {"instrument": "BTC-PERP", "size": "1", "entry_price": "60000"}
    pos.update(over)
    return pos


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["accounts"][0]["positions"].append(_position(instrument="BTC-PERPX")),
            "accounts[0].positions[2].instrument",
        ),
        (
            lambda d: d["accounts"][0]["positions"].append(_position(instrument="DOGE-PERP")),
            "accounts[0].positions[2].instrument",
        ),
        (lambda d: d["market"]["BTC"].update(index="NaN"), "market.BTC.index"),
        (
            lambda d: d["accounts"][0]["positions"].append(_position(entry_price="-5")),
            "accounts[0].positions[2].entry_price",
        ),
        (lambda d: d["accounts"][0]["positions"].append(_position(size="0")), "accounts[0].positions[2].size"),
        (
            lambda d: d["accounts"][0]["positions"].append(_position(instrument="BTC-25OCT26-60000-C")),
            "accounts[0].positions[2].instrument",
        ),
        (lambda d: d["accounts"][0]["collateral"].update(USDC="1.0000001"), "accounts[0].collateral.USDC"),
        (
            lambda d: d["accounts"][0]["positions"].append(_position(size="0.000000001")),
            "accounts[0].positions[2].size",
        ),
        (lambda d: d.pop("valuation_time"), "portfolio.valuation_time"),
    ],
)
def test_margin_bad_input_exits_2_naming_the_field(tmp_path, mutate, field):
    doc = json.loads(json.dumps(BASE))
    mutate(doc)
    result = invoke("margin", write(tmp_path, doc))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", ""])
def test_margin_malformed_file(tmp_path, text):
    result = invoke("margin", write(tmp_path, text))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output


def test_missing_file_and_unknown_profile(tmp_path):
    assert invoke("margin", tmp_path / "nope.json").exit_code == 2
    result = invoke("margin", write(tmp_path, BASE), "--profile", "nosuch")
    assert result.exit_code == 2 and "unknown profile" in result.stderr


GOOD_LINES = [
    {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
    {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
    {"type": "open_account", "account": "a"},
    {"type": "deposit", "account": "a", "asset": "USDC", "amount": "100"},
]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"type": "deposit", "account": "a", "asset": "USDC", "amount": "0.0000001"}, "amount"),
        ({"type": "deposit", "account": "a", "asset": "USDC", "amount": "NaN"}, "amount"),
        ({"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "0", "price": "1"}, "size"),
        ({"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1", "price": "-1"}, "price"),
        (
            {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-X", "size": "1", "price": "1"},
            "instrument",
        ),
        ({"type": "set_market", "underlying": "BTC", "index": "-3", "vol": 0.5}, "market.index"),
        ({"type": "teleport"}, "type"),
    ],
)
def test_run_bad_line_exits_2_and_applies_nothing(tmp_path, bad, field):
    lines = [json.dumps(x) for x in GOOD_LINES] + [json.dumps(bad)]
    result = invoke("run", write(tmp_path, "\n".join(lines), "c.jsonl"))
    assert result.exit_code == 2
    assert result.stdout == ""  # nothing was applied or printed
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert result.stderr.startswith(f"error: line 5: {field}:"), result.stderr


def test_run_invalid_json_line(tmp_path):
    result = invoke("run", write(tmp_path, '{"type": "advance_time", "time": 1795593600}\n{oops', "c.jsonl"))
    assert result.exit_code == 2 and result.stderr.startswith("error: line 2:")


def test_run_expired_option_is_a_rejection_not_an_input_error(tmp_path):
    lines = GOOD_LINES + [
        {"type": "open_account", "account": "b"},
        {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-25OCT26-60000-C", "size": "1", "price": "1"},
    ]
    result = invoke("run", write(tmp_path, "\n".join(json.dumps(x) for x in lines), "c.jsonl"), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["results"][-1]["rejection"]["code"] == "instrument_expired"


def test_what_if_before_and_after(tmp_path):
    path = write(tmp_path, BASE)
    result = invoke("what-if", path, "--account", "alice", "--trade", "BTC-PERP:2@60500", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # closing -2 perps entered at 61,000 at 60,500 vs a 60,000 mark: equity -1,000, less the engine's
    # taker fee 0.05% x 121,000 = 60.50; the perp's IM 2,412 goes
    assert out["change"]["equity"] == "-1060.500000"
    assert out["accepted"] is True and out["rejection"] is None
    assert Decimal(out["before"]["initial_margin"]) - Decimal(out["after"]["initial_margin"]) == Decimal("2412")
    assert path.read_text() == json.dumps(BASE)  # nothing changed


def test_what_if_portfolio_profile_hedge_lowers_margin(tmp_path):
    doc = json.loads(json.dumps(BASE))
    doc["accounts"][0]["mode"] = "portfolio"
    result = invoke(
        "what-if",
        write(tmp_path, doc),
        "--account",
        "alice",
        "--trade",
        "BTC-25DEC26-65000-C:1",
        "--profile",
        "deribit-pm",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert Decimal(out["change"]["initial_margin"]) < 0  # the long call caps the short call's loss
    assert "portfolio" in out["after"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--account", "nobody", "--trade", "BTC-PERP:1"], "--account"),
        (["--account", "alice", "--trade", "BTC-PERP"], "trade[0]"),
        (["--account", "alice", "--trade", "BTC-PERP:0"], "trade[0].size"),
        (["--account", "alice", "--trade", "BTC-PERP:1@-5"], "trade[0].price"),
        (["--account", "alice", "--trade", "BTC-PERP:1e400"], "trade[0].size"),
        (["--account", "alice", "--trade", "BTC-PERP:2000000000"], "trade[0].size"),
        (["--account", "alice", "--trade", "DOGE-PERP:1"], "trade[0].instrument"),
    ],
)
def test_what_if_bad_input(tmp_path, args, field):
    result = invoke("what-if", write(tmp_path, BASE), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {field}"), result.stderr


def test_what_if_says_what_the_engine_would_refuse(tmp_path):
    # an expired option and a trade too big for the account are the engine's rejections, answered
    # with the code and numbers as `run` would; the margin after is the one before
    path = write(tmp_path, BASE)
    expired = invoke("what-if", path, "--account", "alice", "--trade", "BTC-25OCT26-60000-C:1", "--format", "json")
    assert expired.exit_code == 0, expired.output
    out = json.loads(expired.stdout)
    assert out["accepted"] is False and out["rejection"]["code"] == "instrument_expired"
    assert out["rejection"]["trade"] == 0 and out["after"] == out["before"]
    big = invoke("what-if", path, "--account", "alice", "--trade", "BTC-PERP:100")
    assert big.exit_code == 0, big.output
    assert "the engine would refuse BTC-PERP:100: insufficient_margin" in " ".join(big.stdout.split())


def test_calibrate_writes_a_profile_that_margins(tmp_path):
    out = tmp_path / "cal.toml"
    result = invoke(
        "calibrate", EXAMPLES / "btc-usd-1d-2023-2025.csv", "--model", "ewma", "--out", out, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout)["recommended_range"]
    assert 0.05 <= rec <= 0.5
    doc = json.loads(json.dumps(BASE))
    doc["accounts"][0]["mode"] = "portfolio"
    margin = invoke("margin", write(tmp_path, doc), "--profile", out, "--format", "json")
    assert margin.exit_code == 0 and json.loads(margin.stdout)["profile"] == "deribit-pm-calibrated"


def test_calibrate_bad_options(tmp_path):
    assert invoke("calibrate", EXAMPLES / "btc-usd-1d-2023-2025.csv", "--model", "arima").exit_code == 2
    assert invoke("calibrate", EXAMPLES / "btc-usd-1d-2023-2025.csv", "--confidence", "1.5").exit_code == 2
    result = invoke("calibrate", EXAMPLES / "btc-usd-1d-2023-2025.csv", "--underlying", "DOGE")
    assert result.exit_code == 2 and "DOGE" in result.stderr


def test_run_lists_the_liquidation_queue_worst_first(tmp_path):
    lines = GOOD_LINES + [
        {"type": "open_account", "account": "b"},
        {"type": "open_account", "account": "m"},
        {"type": "deposit", "account": "a", "amount": "6900"},
        {"type": "deposit", "account": "b", "amount": "13000"},
        {"type": "deposit", "account": "m", "amount": "1000000"},
        {"type": "trade", "buyer": "a", "seller": "m", "instrument": "BTC-PERP", "size": "5", "price": "60000"},
        {"type": "trade", "buyer": "b", "seller": "m", "instrument": "BTC-PERP", "size": "10", "price": "60000"},
        {"type": "set_market", "underlying": "BTC", "index": "59300", "vol": "0.6"},
    ]
    result = invoke("run", write(tmp_path, "\n".join(json.dumps(x) for x in lines), "c.jsonl"), "--format", "json")
    queue = json.loads(result.stdout)["liquidation_queue"]
    # a: equity 7,000 - 3,500 = 3,500 vs MM 296,500 * (1% + 5 * 0.005%) = 3,039.125: not liquidatable
    # b: equity 13,000 - 7,000 = 6,000 vs MM 593,000 * 1.05% = 6,226.50: liquidatable
    assert queue == [{"account": "b", "equity": "6000.000000", "maintenance_margin": "6226.500000"}]


@pytest.mark.parametrize(
    "args",
    [["serve", "--port", "0"], ["nonsense"], ["margin"], ["journal", "nope"], ["create-key"], ["what-if", "x.json"]],
)
def test_usage_errors_are_one_line_and_exit_2(args, tmp_path):
    """Through the console script's entry point (not typer's runner): no usage box, no traceback."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", *args], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "--help" in proc.stderr and proc.stdout == ""


def test_help_texts_say_what_exists():
    assert invoke("--version").stdout.strip().startswith("margin-engine 0.")
    assert "[@PRICE]" in " ".join(invoke("what-if", "--help").stdout.split())
    journal = invoke("journal", "--help").stdout
    assert "init, submit, replay, audit" in " ".join(journal.split()) and "create," not in journal
    helptext = " ".join(invoke("margin", "--help").stdout.split())
    for name in ("deribit", "deribit-pm", "derive", "derive-pmrm"):
        assert name in helptext


def test_calibrate_needs_the_underlying_when_the_file_name_does_not_say_it(tmp_path):
    prices = tmp_path / "daily.csv"
    prices.write_text((EXAMPLES / "btc-usd-1d-2023-2025.csv").read_text())
    result = invoke("calibrate", prices)
    assert result.exit_code == 2 and "give --underlying (BTC, ETH)" in result.stderr
    assert invoke("calibrate", prices, "--underlying", "BTC", "--model", "ewma").exit_code == 0

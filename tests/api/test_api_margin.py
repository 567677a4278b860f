"""`me.margin`: the CLI's numbers (compute_margins, to the unit) as DataFrames, the README's table,
DataFrame input equal to dict input, clear errors, and reports that show themselves."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import margin_engine as me
from margin_engine.engine import Engine
from margin_engine.errors import InputError
from margin_engine.files.portfolio import load_portfolio
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PM_BOOK = EXAMPLES / "pm-book.json"
PORTFOLIO = EXAMPLES / "portfolio.json"
PROFILES = ("deribit", "deribit-pm", "derive", "derive-pmrm")
# README.md, "Standard vs portfolio margin on examples/pm-book.json (initial margin, USD)": hand-checked
# rows below; docs/margin_table.py regenerates the README's table and the test holds the two equal
README_IM = {
    "call-spread": (153_502, 26_065, 31_255, 39_902),
    "iron-condor": (50_735, 4_858, 5_198, 10_065),
    # derive: the perp's IM is 10% of 5 x 60,000 = 30,000 (mainnet imPerpReq), 10,500 more than at 6.5%
    "conversion": (130_640, 3_000, 114_782, 37_459),
    # derive-pmrm: each expiry's basis loss counts on its own (no netting of Dec against Mar)
    "calendar": (105_344, 12_607, 84_782, 33_711),
    "covered-call": (131_250, 165_273, 259_500, 181_181),
}
MONEY = ("equity", "initial_margin", "maintenance_margin", "free_collateral")


def cli_json(path: Path, profile: str, explain: bool = False) -> dict:
    """What `margin-engine margin FILE --format json` prints, built as the CLI builds it."""
    prof = load_profile(profile)
    pf = load_portfolio(path, prof)
    results = compute_margins(pf.accounts, pf.markets, prof, pf.valuation_s, explain=explain)
    return {"profile": prof.name, "accounts": [m.to_json() for m in results]}


@pytest.mark.parametrize("profile", PROFILES)
def test_accounts_frame_is_the_cli_json_to_the_unit(profile):
    report = me.margin(PM_BOOK, profile=profile)
    expected = cli_json(PM_BOOK, profile)
    assert report.to_json() == expected
    df = report.to_pandas()
    assert list(df.index) == [a["id"] for a in expected["accounts"]]
    for a in expected["accounts"]:
        for key in MONEY:
            assert df.loc[a["id"], f"{key}_usd"] == float(a[key])  # exact: units / 10**6 is correctly rounded
        assert df.loc[a["id"], "mode"] == a["mode"]
        assert bool(df.loc[a["id"], "liquidatable"]) is a["liquidatable"]
        assert df.loc[a["id"], "margin_ratio"] == pytest.approx(float(a["margin_ratio"]), abs=1e-6)
        assert df.loc[a["id"], "positions"] == len(a["positions"])


def test_readme_table_of_initial_margins():
    frames = {p: me.margin(str(PM_BOOK), profile=p).to_pandas() for p in PROFILES}
    for account, values in README_IM.items():
        got = tuple(round(frames[p].loc[account, "initial_margin_usd"]) for p in PROFILES)
        assert got == values, account
    spec = importlib.util.spec_from_file_location(
        "margin_table", Path(__file__).resolve().parents[2] / "docs" / "margin_table.py"
    )
    margin_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(margin_table)
    table = margin_table.table()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert table in readme, "README.md's margin table is stale: run python docs/margin_table.py --write"
    for account, values in README_IM.items():
        assert " | ".join(f"{v:,}" for v in values) in table, account


def test_positions_frame_matches_the_results():
    report = me.margin(PORTFOLIO)
    pos = report.positions_to_pandas()
    expected = cli_json(PORTFOLIO, "deribit")
    rows = [(a["id"], p) for a in expected["accounts"] for p in a["positions"]]
    assert len(pos) == len(rows)
    for (_, r), (account, p) in zip(pos.iterrows(), rows, strict=True):
        assert (r["account"], r["instrument"]) == (account, p["instrument"])
        assert r["size"] == float(p["size"])
        assert r["mark_price_usd"] == pytest.approx(float(p["mark_price"]), abs=1e-6)
        assert r["initial_margin_usd"] == pytest.approx(float(p["initial_margin"]), abs=1e-6)
        assert r["delta"] == pytest.approx(float(p["greeks"]["delta"]), rel=1e-9)
    carol = pos[pos["account"] == "carol"]
    assert list(carol["collateral_usd"]) == [3000.0, 2500.0]  # isolated collateral
    assert list(pos[pos["account"] == "bob"]["kind"]) == ["put", "put", "perp"]
    coll = report.collateral_to_pandas()
    bob_btc = coll[(coll["account"] == "bob") & (coll["asset"] == "BTC")].iloc[0]
    assert (bob_btc["balance"], bob_btc["value_usd"]) == (0.5, 30_000.0)
    assert bob_btc["im_haircut_usd"] == pytest.approx(3_000.0)


def test_greeks_are_a_named_tuple():
    report = me.margin(PORTFOLIO)
    p = report["alice"].positions[1]
    assert isinstance(p.greeks, me.Greeks) and isinstance(p.greeks, tuple)
    delta, gamma, vega, theta = p.greeks
    assert (p.greeks.delta, p.greeks.gamma, p.greeks.vega, p.greeks.theta) == (delta, gamma, vega, theta)
    assert p.greeks._fields == ("delta", "gamma", "vega", "theta")
    assert report["alice"].greeks_by_underlying["BTC"].delta == pytest.approx(-2 + delta)


def portfolio_frame(data: dict) -> tuple[pd.DataFrame, dict, dict]:
    rows = []
    for a in data["accounts"]:
        for p in a["positions"]:
            rows.append({"account": a["id"], "mode": a["mode"], **p})
    collateral = {a["id"]: a["collateral"] for a in data["accounts"]}
    return pd.DataFrame(rows), collateral, data["market"]


def test_dataframe_input_equals_dict_input():
    data = json.loads(PORTFOLIO.read_text())
    df, collateral, market = portfolio_frame(data)
    assert df["entry_price"].isna().any() and df["collateral"].isna().any()  # gaps are optional fields left out
    from_frame = me.margin(df, market=market, valuation_time=data["valuation_time"], collateral=collateral)
    from_dict = me.margin(data)
    assert from_frame.to_json() == from_dict.to_json()
    pd.testing.assert_frame_equal(from_frame.to_pandas(), from_dict.to_pandas())
    pd.testing.assert_frame_equal(from_frame.positions_to_pandas(), from_dict.positions_to_pandas())
    long_collateral = pd.DataFrame(
        [(a, asset, amount) for a, c in collateral.items() for asset, amount in c.items()],
        columns=["account", "asset", "amount"],
    )
    when = pd.Timestamp(data["valuation_time"])
    again = me.margin(df, market=market, valuation_time=when, collateral=long_collateral)
    assert again.to_json() == from_dict.to_json()


def test_dataframe_modes_and_accounts_without_positions():
    df = pd.DataFrame({"account": ["alice"], "instrument": ["BTC-PERP"], "size": [1.5]})
    market = {"BTC": {"index": 60000, "vol": 0.6}}
    report = me.margin(
        df,
        market=market,
        valuation_time=1_795_593_600,
        collateral={"alice": {"USDC": 50_000}, "zed": {"USDC": "10"}},
        modes={"alice": "portfolio"},
        profile="deribit-pm",
    )
    assert report.ids == ("alice", "zed")
    assert report["alice"].mode == "portfolio" and report["alice"].portfolio is not None
    assert report.to_pandas().loc["zed", "equity_usd"] == 10.0


def test_dict_market_and_time_overrides_revalue_the_same_book():
    data = json.loads(PORTFOLIO.read_text())
    moved = {**data["market"], "BTC": {"index": 50000, "vol": 0.6, "rate": 0.0}}
    report = me.margin(PORTFOLIO, market=moved)
    alice = report.positions_to_pandas().set_index(["account", "instrument"]).loc[("alice", "BTC-PERP")]
    assert alice["value_usd"] == pytest.approx(2 * (61000 - 50000))


def test_engine_input_is_margined_at_its_clock():
    prof = load_profile("deribit")
    engine = Engine(prof)
    for cmd in [
        {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
        {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
        {"type": "open_account", "account": "a"},
        {"type": "deposit", "account": "a", "asset": "USDC", "amount": "1000"},
    ]:
        engine.submit(cmd)
    report = me.margin(engine)
    assert report.to_json()["accounts"] == [m.to_json() for m in engine.margins()]
    assert report.valuation_s == engine.state.now_s
    with pytest.raises(InputError, match="its own profile"):
        me.margin(engine, profile="derive")


@pytest.mark.parametrize(
    ("positions", "field", "message"),
    [
        (
            [{"instrument": "DOGE-PERP", "size": "1"}],
            "accounts[0].positions[0].instrument",
            "unknown underlying 'DOGE'",
        ),
        ([{"instrument": "BTC-FOO", "size": "1"}], "accounts[0].positions[0].instrument", "malformed instrument name"),
        ([{"instrument": "BTC-PERP", "size": "0"}], "accounts[0].positions[0].size", "must not be zero"),
        ([{"instrument": "BTC-PERP", "size": "NaN"}], "accounts[0].positions[0].size", "decimal number"),
    ],
)
def test_bad_dict_input_is_an_input_error_naming_the_field(positions, field, message):
    data = {
        "valuation_time": "2026-11-25T08:00:00Z",
        "market": {"BTC": {"index": 60000, "vol": 0.6}},
        "accounts": [{"id": "a", "positions": positions}],
    }
    with pytest.raises(InputError, match=message) as info:
        me.margin(data)
    assert info.value.field == field


def test_bad_dataframe_input_names_the_row_and_column():
    df = pd.DataFrame(
        {"account": ["a", "a"], "instrument": ["BTC-PERP", "DOGE-PERP"], "size": [1, 2]}, index=["r1", "r2"]
    )
    market = {"BTC": {"index": 60000, "vol": 0.6}}
    with pytest.raises(InputError) as info:
        me.margin(df, market=market, valuation_time="2026-11-25T08:00:00Z")
    assert info.value.field == "positions['r2'].instrument"
    assert "unknown underlying 'DOGE'; known: BTC, ETH" in str(info.value)
    with pytest.raises(InputError, match="unknown column"):
        me.margin(df.assign(price=1), market=market, valuation_time="2026-11-25T08:00:00Z")
    with pytest.raises(InputError, match="missing column"):
        me.margin(df.drop(columns="size"), market=market, valuation_time="2026-11-25T08:00:00Z")
    with pytest.raises(InputError, match="market"):
        me.margin(df, valuation_time="2026-11-25T08:00:00Z")
    with pytest.raises(InputError, match="valuation_time"):
        me.margin(df, market=market)
    with pytest.raises(InputError, match="another row"):
        me.margin(df.assign(mode=["cross", "isolated"]), market=market, valuation_time="2026-11-25T08:00:00Z")


def test_other_bad_inputs():
    with pytest.raises(InputError, match="expected a dict"):
        me.margin(42)
    with pytest.raises(InputError):
        me.margin(EXAMPLES / "no-such-file.json")
    with pytest.raises(InputError, match="only with a DataFrame"):
        me.margin(PORTFOLIO, collateral={"a": {"USDC": 1}})
    with pytest.raises(InputError, match="profile"):
        me.margin(PORTFOLIO, profile="no-such-profile")
    with pytest.raises(KeyError, match="no account 'nobody'"):
        me.margin(PORTFOLIO)["nobody"]


def test_reports_show_themselves():
    report = me.margin(PM_BOOK, profile="deribit-pm")
    html = report._repr_html_()
    assert "<table" in html and "</table>" in html and "initial_margin_usd" in html
    text = report.summary()
    for account in report.ids:
        assert account in html and account in text
    assert "deribit-pm" in text and "USD" in text and "initial_margin_usd" in text and "165,272.82" in text
    assert repr(report).startswith("MarginReport(profile='deribit-pm', accounts=8, initial_margin_usd=")
    risk = report.risk_to_pandas().set_index("account")
    assert risk.loc["conversion", "delta_shock_usd"] == pytest.approx(3000.0)
    assert risk.loc["conversion", "base_usd"] == pytest.approx(3000.0)


def test_explain_gives_every_scenario():
    report = me.margin(PM_BOOK, profile="deribit-pm", explain=True)
    scenarios = report.scenarios_to_pandas()
    worst = report.risk_to_pandas().set_index("account")
    call_spread = scenarios[scenarios["account"] == "call-spread"]
    assert len(call_spread) > 20 and {"spot_shock", "vol_shock", "pnl_usd"} <= set(scenarios.columns)
    assert call_spread["pnl_usd"].min() == pytest.approx(worst.loc["call-spread", "worst_pnl_usd"])
    with pytest.raises(ValueError, match="explain=True"):
        me.margin(PM_BOOK, profile="deribit-pm").scenarios_to_pandas()


def test_to_pandas_without_pandas_says_how_to_install(monkeypatch):
    report = me.margin(PORTFOLIO)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'margin-engine\[sim\]'"):
        report.to_pandas()
    assert "alice" in report.summary() and "<table" in report._repr_html_()  # no pandas needed


def test_import_is_light_and_me_margin_survives_the_subpackage():
    code = (
        "import sys, margin_engine as me\n"
        "heavy = [m for m in ('numpy', 'scipy', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import margin_engine.margin.calculator as calc\n"
        "from margin_engine.margin.profile import load_profile\n"
        "assert callable(me.margin) and me.margin.calculator is calc\n"
        "assert me.margin.profile.load_profile is load_profile is me.load_profile\n"
        "import margin_engine\n"
        "assert margin_engine.margin.calculator.compute_margins is calc.compute_margins\n"
        "print(me.margin('examples/portfolio.json').ids)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=EXAMPLES.parent, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "('alice', 'bob', 'carol')"
    assert "margin" in dir(me) and "price_options" in me.__all__
    with pytest.raises(AttributeError):
        me.no_such_name  # noqa: B018

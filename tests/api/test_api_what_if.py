"""`me.what_if`: the CLI's what-if (the engine's trade on a scratch state) as a report."""

from __future__ import annotations

from pathlib import Path

import pytest

import margin_engine as me
from margin_engine.engine.what_if import state_of_views, what_if
from margin_engine.errors import InputError
from margin_engine.files.portfolio import load_portfolio
from margin_engine.margin.profile import load_profile

PM_BOOK = Path(__file__).resolve().parents[2] / "examples" / "pm-book.json"
COLUMNS = ["equity_usd", "initial_margin_usd", "maintenance_margin_usd", "free_collateral_usd"]


def cli(account: str, trades: list[str], profile: str) -> dict:
    prof = load_profile(profile)
    pf = load_portfolio(PM_BOOK, prof)
    state = state_of_views(prof, pf.markets, pf.valuation_s, pf.accounts)
    return {"profile": prof.name, **what_if(state, account, trades).to_json()}


def test_what_if_equals_the_cli():
    report = me.what_if(PM_BOOK, "naked-put", "BTC-25DEC26-45000-P:10", profile="deribit-pm")
    expected = cli("naked-put", ["BTC-25DEC26-45000-P:10"], "deribit-pm")
    assert report.to_json() == expected
    df = report.to_pandas()
    assert list(df.index) == ["before", "after", "change"] and list(df.columns) == COLUMNS
    for col in COLUMNS:
        key = col.removesuffix("_usd")
        assert df.loc["before", col] == float(expected["before"][key])
        assert df.loc["after", col] == float(expected["after"][key])
        assert df.loc["change", col] == pytest.approx(float(expected["change"][key]), abs=1e-6)
    assert report.accepted and df.loc["change", "initial_margin_usd"] < -50_000  # the put spread saves margin
    positions = report.positions_to_pandas()
    assert list(positions["when"]) == ["before", "after", "after"]
    assert "naked-put" in report.summary() and "<table" in report._repr_html_()
    assert repr(report).startswith("WhatIfReport(account='naked-put'")


def test_trade_forms_are_the_same_trade():
    texts = me.what_if(PM_BOOK, "perp-basis", ["BTC-PERP:-1@60000", "BTC-PERP:0.5"], profile="deribit")
    forms = me.what_if(
        PM_BOOK,
        "perp-basis",
        [("BTC-PERP", -1, 60000), {"instrument": "BTC-PERP", "size": 0.5}],
        profile="deribit",
    )
    assert forms.trades == texts.trades == ("BTC-PERP:-1@60000", "BTC-PERP:0.5")
    assert forms.to_json() == texts.to_json()
    single = me.what_if(PM_BOOK, "perp-basis", ("BTC-PERP", -1, 60000), profile="deribit")
    assert single.trades == ("BTC-PERP:-1@60000",)


def test_a_refused_fill_is_reported_not_raised():
    report = me.what_if(PM_BOOK, "naked-put", "BTC-PERP:-1000", profile="deribit-pm")
    assert not report.accepted and report.rejection.code == "insufficient_margin"
    assert "insufficient_margin" in report.summary()
    assert (report.to_pandas().loc["change"] == 0).all()


def test_what_if_errors():
    with pytest.raises(InputError, match="no account 'nobody'"):
        me.what_if(PM_BOOK, "nobody", "BTC-PERP:1")
    with pytest.raises(InputError, match="INSTRUMENT:SIZE"):
        me.what_if(PM_BOOK, "naked-put", "BTC-PERP")
    with pytest.raises(InputError, match="no market for DOGE"):
        me.what_if(PM_BOOK, "naked-put", "DOGE-PERP:1")
    with pytest.raises(InputError, match="expected"):
        me.what_if(PM_BOOK, "naked-put", [42])

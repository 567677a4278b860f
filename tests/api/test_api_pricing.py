"""`me.price_options` prices as the margin does; `me.price_black76` is the pricer with names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import margin_engine as me
from margin_engine.errors import InputError
from margin_engine.pricing.black76 import black76

PM_BOOK = Path(__file__).resolve().parents[2] / "examples" / "pm-book.json"
MARKET = {"BTC": {"index": 60000, "vol": 0.6, "rate": 0.0}}
WHEN = "2026-11-25T08:00:00Z"


def test_price_options_equals_the_margins_marks_and_greeks():
    report = me.margin(PM_BOOK)
    pos = report.positions_to_pandas()
    names = list(dict.fromkeys(pos["instrument"]))
    prices = me.price_options(names, PM_BOOK)
    assert list(prices.index) == names
    assert list(prices.columns[-5:]) == ["price", "delta", "gamma", "vega", "theta"]
    for _, p in pos.iterrows():
        row = prices.loc[p["instrument"]]
        assert row["price"] == pytest.approx(p["mark_price_usd"], rel=1e-12)
        for greek in ("delta", "gamma", "vega", "theta"):
            assert row[greek] * p["size"] == pytest.approx(p[greek], rel=1e-12, abs=1e-12)
    # the per-expiry surface of pm-book.json: Dec 0.6, Mar 0.58
    assert prices.loc["BTC-26MAR27-60000-C", "vol"] == 0.58


def test_price_options_rows():
    df = me.price_options(["BTC-25DEC26-60000-C", "BTC-25DEC26-60000-P", "BTC-PERP"], MARKET, WHEN)
    call, put, perp = (df.iloc[i] for i in range(3))
    assert call["price"] == pytest.approx(4112.364431, abs=1e-6)  # the CLI's mark for this call
    assert call["price"] - put["price"] == pytest.approx(0.0, abs=1e-9)  # ATM parity at r = 0
    assert call["delta"] - put["delta"] == pytest.approx(1.0)
    assert (call["kind"], put["kind"], perp["kind"]) == ("call", "put", "perp")
    assert call["time_years"] == pytest.approx(30 / 365)
    assert str(call["expiry"]) == "2026-12-25 08:00:00+00:00"
    assert (perp["price"], perp["delta"], perp["gamma"]) == (60000.0, 1.0, 0.0)
    future = me.price_options("BTC-25DEC26", {"BTC": {"index": 60000, "vol": 0.6, "rate": 0.05}}, WHEN).iloc[0]
    assert future["kind"] == "future" and str(future["expiry"]) == "2026-12-25 08:00:00+00:00"
    assert future["price"] == pytest.approx(60000 * math.exp(0.05 * 30 / 365), rel=1e-12)  # the forward
    assert (future["forward_usd"], future["delta"]) == (future["price"], 1.0)
    one = me.price_options("BTC-25DEC26-60000-C", MARKET, WHEN)
    assert one.loc["BTC-25DEC26-60000-C", "price"] == call["price"]


def test_price_options_errors():
    with pytest.raises(InputError, match="no market for ETH"):
        me.price_options(["ETH-PERP"], MARKET, WHEN)
    with pytest.raises(InputError, match="expired"):
        me.price_options(["BTC-25DEC26-60000-C"], MARKET, "2027-01-01T00:00:00Z")
    with pytest.raises(InputError, match="malformed instrument"):
        me.price_options(["BTC-60000"], MARKET, WHEN)
    with pytest.raises(InputError, match="valuation_time"):
        me.price_options(["BTC-PERP"], MARKET)


def test_price_black76_is_the_pricer_with_named_columns():
    strikes = np.array([50_000.0, 60_000.0, 70_000.0])
    df = me.price_black76(60_000, strikes, 0.25, 0.6, 0.01, ["C", "P", "call"])
    g = black76(60_000.0, strikes, 0.25, 0.6, 0.01, np.array([True, False, True]))
    assert list(df.columns) == [
        "forward_usd",
        "strike_usd",
        "time_years",
        "vol",
        "rate",
        "is_call",
        *me.api.pricing.GREEK_COLUMNS,
    ]
    for name in ("price", "delta", "gamma", "vega", "theta"):
        np.testing.assert_array_equal(df[name].to_numpy(), getattr(g, name))
    assert list(df["is_call"]) == [True, False, True]
    assert len(me.price_black76(60_000, 60_000, 0.1, 0.6)) == 1
    with pytest.raises(InputError, match="is_call"):
        me.price_black76(60_000, 60_000, 0.1, 0.6, is_call="X")
    with pytest.raises(ValueError, match="vol must be finite"):
        me.price_black76(60_000, 60_000, 0.1, float("nan"))

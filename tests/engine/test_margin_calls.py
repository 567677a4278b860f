"""Margin calls (profile `[margin_calls]`): Binance Portfolio Margin's levels on equity /
maintenance, `margin_call` events as an account's level changes, reduce-only enforced."""

from __future__ import annotations

import json

import pytest
from engine_checks import ok, rejected

from margin_engine.engine import Engine
from margin_engine.engine.events import event_from_json
from margin_engine.engine.margin_calls import level_of
from margin_engine.engine.state import replay
from margin_engine.margin.profile import MarginCallParams, load_profile
from margin_engine.storage.snapshot import state_from_json, state_to_json

BINANCE = MarginCallParams()  # 150% reminder, 120% no new risk


def test_binances_published_levels():
    # Binance PM: > 150% trade freely; 120-150% a reminder; 105-120% no new orders but reductions;
    # liquidation below (here at 100%, where the engine's maintenance says so)
    assert level_of(1501, 1000, BINANCE) == ("clear", 1.501)
    assert level_of(1500, 1000, BINANCE) == ("warn", 1.5)
    assert level_of(1201, 1000, BINANCE)[0] == "warn"
    assert level_of(1200, 1000, BINANCE)[0] == "reduce_only"
    assert level_of(1001, 1000, BINANCE)[0] == "reduce_only"
    assert level_of(1000, 1000, BINANCE)[0] == "liquidation"
    assert level_of(-5, 1000, BINANCE)[0] == "liquidation"
    assert level_of(0, 0, BINANCE) == ("clear", None)
    with pytest.raises(ValueError, match="reduce_only_ratio must be <= warn_ratio"):
        MarginCallParams(warn_ratio=1.2, reduce_only_ratio=1.5)


def engine() -> Engine:
    p = load_profile("deribit").model_copy(update={"margin_calls": BINANCE})
    e = Engine(p)
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    btc(e, "60000")
    for a, usdc in (("alice", "3000"), ("bob", "1000000")):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": usdc})
    # no aggressor: both sides pay the maker fee, 0 under deribit
    ok(e, {"type": "trade", "buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "60000"})
    return e


def btc(e: Engine, index: str) -> list:
    return ok(e, {"type": "set_market", "underlying": "BTC", "index": index, "vol": 0.6})


def calls(events) -> list[tuple[str, str, float]]:
    return [(x.account, x.level, round(x.equity_mm_ratio, 4)) for x in events if x.type == "margin_call"]


def test_levels_are_called_as_the_price_falls_and_reduce_only_is_enforced():
    e = engine()
    # alice: long 1 from 60,000 on 3,000; MM = S x (1% + 0.005%)
    assert calls(btc(e, "58000")) == []  # equity 1,000 / MM 582.90 = 1.7155
    assert calls(btc(e, "57800")) == [("alice", "warn", round(800 / (57_800 * 0.01005), 4))]  # 1.3772
    assert calls(btc(e, "57700")) == []  # still warn: only a change is called
    assert calls(btc(e, "57600")) == [("alice", "reduce_only", round(600 / (57_600 * 0.01005), 4))]  # 1.0365
    assert e.state.margin_levels == {"alice": "reduce_only"}
    more = {"type": "trade", "buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "price": "57600"}
    r = rejected(e, {**more, "size": "0.1"}, "reduce_only")
    assert r.account == "alice"
    # a reduction passes, and leaves equity 600 on MM 0.5 x 57,600 x 1.0025% = 288.72: clear again
    less = {"type": "trade", "buyer": "bob", "seller": "alice", "instrument": "BTC-PERP", "price": "57600"}
    out = ok(e, {**less, "size": "0.5"})
    assert calls(out) == [("alice", "clear", round(600 / (0.5 * 57_600 * 0.010025), 4))]
    assert e.state.margin_levels == {}
    # the sale realized -1,200: equity 1,800 + 0.5 S - 30,000 meets MM at 28,200 / 0.4949875 = 56,970
    assert calls(btc(e, "56900")) == [("alice", "liquidation", round(250 / (0.5 * 56_900 * 0.010025), 4))]


def test_levels_replay_and_snapshot():
    e = engine()
    btc(e, "57600")
    again = replay(e.state.profile, [event_from_json(json.loads(json.dumps(x.to_json()))) for x in e.journal])
    assert again.margin_levels == e.state.margin_levels == {"alice": "reduce_only"}
    restored = state_from_json(e.state.profile, json.loads(json.dumps(state_to_json(e.state))))
    assert restored.margin_levels == {"alice": "reduce_only"}


def test_without_the_section_nothing_is_called():
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    out = ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    assert calls(out) == []

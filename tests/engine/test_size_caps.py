"""Open-interest caps and position limits (`[underlyings.X.perp]`): risk-adding trades beyond
them are rejected with the numbers; trades that close or do not raise open interest pass."""

from __future__ import annotations

from engine_checks import ok, rejected

from margin_engine.engine import Engine
from margin_engine.margin.profile import load_profile


def capped(open_interest: float | None = None, position: float | None = None):
    p = load_profile("deribit")
    btc = p.underlyings["BTC"]
    perp = btc.perp.model_copy(update={"open_interest_max_base": open_interest, "position_max_base": position})
    return p.model_copy(update={"underlyings": {**p.underlyings, "BTC": btc.model_copy(update={"perp": perp})}})


def engine(profile) -> Engine:
    e = Engine(profile)
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    for a in ("alice", "bob", "carl"):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": "1000000"})
    return e


def trade(buyer, seller, size):
    return {"type": "trade", "buyer": buyer, "seller": seller, "instrument": "BTC-PERP", "size": size, "price": "60000"}


def test_open_interest_cap_rejects_what_would_raise_it_beyond_the_cap():
    e = engine(capped(open_interest=10))
    ok(e, trade("alice", "bob", "6"))
    r = rejected(e, trade("carl", "bob", "5"), "open_interest_cap")  # 6 + 5 = 11 > 10
    assert (r.cap, r.current, r.requested, r.unit) == ("10", "6", "11", "BTC")
    assert r.to_json()["requested"] == "11"
    ok(e, trade("carl", "bob", "4"))  # exactly 10
    ok(e, trade("carl", "alice", "3"))  # alice sells to carl: the longs stay at 10 (alice 3, carl 7)
    ok(e, trade("bob", "carl", "7"))  # shorts buy back: open interest falls


def test_position_limit_on_either_side_but_never_on_closing():
    e = engine(capped(position=5))
    ok(e, trade("alice", "bob", "5"))
    r = rejected(e, trade("alice", "carl", "0.5"), "position_limit")
    assert (r.account, r.cap, r.current, r.requested) == ("alice", "5", "5", "5.5")
    r = rejected(e, trade("carl", "bob", "1"), "position_limit")  # bob's short would be 6
    assert r.account == "bob"
    ok(e, trade("bob", "alice", "5"))  # both close

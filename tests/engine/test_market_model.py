"""The market model through the engine: `set_market` with forwards, a perp mark, rates and
confidences per feed, a stablecoin's price (by admin and by signed oracle updates), bounded input,
replay and snapshots equal to the live state."""

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from engine_checks import ok

from margin_engine.engine import Engine, replay
from margin_engine.errors import InputError
from margin_engine.instruments.names import parse_expiry
from margin_engine.margin.profile import load_profile
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import dump_public_key, sign_update
from margin_engine.storage.snapshot import state_from_json, state_to_json

T0 = 1795593600  # 2026-11-25T08:00:00Z
U = 1_000_000
RICH = {
    "type": "set_market",
    "underlying": "BTC",
    "index": "60000",
    "vol": 0.6,
    "rate": {"25DEC26": "0.04", "26MAR27": "0.05"},
    "forward": {"25DEC26": "60200", "26MAR27": {"price": "61000", "fixed": "400"}},
    "perp": "60300",
    "confidence": {"spot": "0.9", "perp": "0.8", "vol": {"26MAR27": "0.5"}},
}


def key(name):
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())


def signed(source, underlying, price, t):
    u = PriceUpdate(underlying, source, price, None, t)
    return {
        "type": "oracle_update",
        "underlying": underlying,
        "source": source,
        "price": repr(price),
        "timestamp": t,
        "signature": sign_update(key(source), u).hex(),
    }


def engine(profile="derive"):
    e = Engine(load_profile(profile))
    ok(e, {"type": "advance_time", "time": T0})
    return e


def test_set_market_carries_the_whole_model_and_replays():
    e = engine()
    ok(e, RICH)
    ok(e, {"type": "set_market", "underlying": "USDC", "index": "0.985", "confidence": "0.9"})
    snap = e.state.markets["BTC"]
    assert (snap.perp_mark, snap.perp_confidence, snap.confidence) == (60300.0, 0.8, 0.9)
    assert e.state.markets["USDC"].index == 0.985 and e.state.markets["USDC"].price_only
    assert replay(e.state.profile, e.journal) == e.state
    assert state_from_json(e.state.profile, state_to_json(e.state)) == e.state


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"perp": "120000"}, "perp"),  # 100% from the index: a unit error, not a basis
        ({"forward": {"25DEC26": "20000"}}, "forward"),
        ({"forward": {"25DEC26": {"price": "60000", "fixed": "60000"}}}, "market.forward.25DEC26.fixed"),
        ({"confidence": {"spot": "1.5"}}, "market.confidence.spot"),
        ({"confidence": {"index": "0.5"}}, "market.confidence"),
        ({"rate": {"25DEC26": "5"}}, "market.rate.25DEC26"),
        ({"perp": "NaN"}, "market.perp"),
        ({"forward": "61000"}, "market.forward"),
    ],
)
def test_bad_market_fields_are_refused_and_change_nothing(change, field):
    e = engine()
    ok(e, RICH)
    before = e.state.markets["BTC"]
    with pytest.raises(InputError) as err:
        e.submit({**RICH, **change})
    assert err.value.field == field
    assert e.state.markets["BTC"] == before


def test_a_stablecoin_price_takes_no_vol_and_no_underlying_takes_a_price_only():
    e = engine()
    with pytest.raises(InputError, match="unknown field"):
        e.submit({"type": "set_market", "underlying": "USDC", "index": "0.99", "vol": 0.5})
    with pytest.raises(InputError, match="vol"):
        e.submit({"type": "set_market", "underlying": "BTC", "index": "60000"})


def test_an_expiry_without_a_listed_forward_is_a_missing_market_not_a_guess():
    e = engine()
    ok(e, {**RICH, "forward": {"25DEC26": "60200"}})
    for name in ("alice", "bob"):
        ok(e, {"type": "open_account", "account": name})
        ok(e, {"type": "deposit", "account": name, "amount": "100000"})
    out = e.submit(
        {
            "type": "trade",
            "buyer": "alice",
            "seller": "bob",
            "instrument": "BTC-26MAR27-60000-C",
            "size": "1",
            "price": "8000",
        }
    )
    assert out.code == "no_market" and "26MAR27" in out.message


def test_oracle_updates_move_the_perp_mark_and_forwards_and_price_the_stablecoin():
    e = engine()
    ok(e, RICH)
    ok(e, {"type": "set_market", "underlying": "USDC", "index": "1"})
    pub = dump_public_key(key("feed").public_key())
    ok(e, {"type": "register_source", "source": "feed", "public_key": pub, "underlyings": ["BTC", "USDC"]})
    ok(e, signed("feed", "BTC", 66000.0, T0))
    snap = e.state.markets["BTC"]
    # +10%: the perp's basis (60,300 / 60,000) and the shocked part of each forward move with it
    assert snap.index == 66000.0 and snap.perp_mark == pytest.approx(66330.0)
    expiries = [int(parse_expiry(name, "e").timestamp()) for name in ("25DEC26", "26MAR27")]
    forward, fixed = snap.forwards_at(expiries, T0)
    assert forward.tolist() == pytest.approx([66220.0, 400 + 60600 * 1.1]) and fixed.tolist() == [0.0, 400.0]
    ok(e, signed("feed", "USDC", 0.97, T0))
    assert e.state.markets["USDC"].index == 0.97
    assert replay(e.state.profile, e.journal) == e.state


def test_the_perp_mark_not_the_index_decides_and_prices_a_liquidation():
    e = engine("deribit")
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"})
    for name, amount in (("trader", "13000"), ("maker", "1000000"), ("keeper", "1000000")):
        ok(e, {"type": "open_account", "account": name})
        ok(e, {"type": "deposit", "account": name, "amount": amount})
    ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": "5000"})
    ok(
        e,
        {
            "type": "trade",
            "buyer": "trader",
            "seller": "maker",
            "instrument": "BTC-PERP",
            "size": "10",
            "price": "60000",
        },
    )
    # the index stays at 60,000 while the perp's mark falls to 59,000: equity 13,000 - 10 x 1,000
    # = 3,000 (no aggressor, no taker fee) against MM (1% + 10 x 0.005%) x 590,000 = 6,195
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6", "perp": "59000"})
    m = e.state.margin("trader")
    assert (m.equity, m.maintenance_margin, m.liquidatable) == (3_000 * U, 6_195 * U, True)
    out = ok(e, {"type": "start_liquidation", "account": "trader", "liquidator": "keeper"})
    # the keeper takes the whole long at the mark, 10 x 59,000 (not the index's 600,000), and the
    # penalty, 0.75% x 590,000 = 4,425, is capped by the 3,000 of equity left
    assert e.state.accounts["keeper"].positions["BTC-PERP"].quote == -590_000 * U
    (fill,) = [x.to_json() for x in out if x.to_json()["type"] == "liquidation_fill"]
    assert (fill["fraction"], fill["penalty_units"]) == ("1", 3_000 * U)

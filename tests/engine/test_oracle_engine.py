"""Oracle guards in the engine: signed updates move the mark, a spike or a stale feed cannot
liquidate anyone, a real crash does, and a stale or halted mark fails closed."""

import hashlib
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from engine_checks import ok, rejected

from margin_engine.engine import Engine
from margin_engine.margin.profile import OracleConfig, load_profile
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import dump_public_key, sign_update

SOURCES = ("binance", "coinbase", "kraken")
KEYS = {s: Ed25519PrivateKey.from_private_bytes(hashlib.sha256(s.encode()).digest()) for s in SOURCES}
PROFILE = load_profile("deribit").model_copy(
    update={"oracle": OracleConfig(sources={s: dump_public_key(k.public_key()) for s, k in KEYS.items()})}
)
T0 = 1795593600  # 2026-11-25T08:00:00Z


def update(source, price, t, confidence=None, key=None, underlying="BTC"):
    u = PriceUpdate(underlying, source, price, confidence, t)
    sig = sign_update(key or KEYS[source], u).hex()
    cmd = {
        "type": "oracle_update",
        "underlying": underlying,
        "source": source,
        "price": repr(price),
        "timestamp": t,
        "signature": sig,
    }
    if confidence is not None:
        cmd["confidence"] = repr(confidence)
    return cmd


def feed(engine, prices, t):
    for source, price in zip(SOURCES, prices, strict=True):
        ok(engine, {"type": "advance_time", "time": t})
        ok(engine, update(source, price, t))


def leveraged_book():
    """A 10 BTC long with 13,000 USDC at 60,000: liquidatable below about 59,300 (MM 1.05%)."""
    e = Engine(PROFILE)
    for cmd in (
        {"type": "advance_time", "time": T0},
        {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
        {"type": "open_account", "account": "trader"},
        {"type": "open_account", "account": "maker"},
        {"type": "open_account", "account": "keeper"},
        {"type": "deposit", "account": "trader", "amount": "13000"},
        {"type": "deposit", "account": "maker", "amount": "1000000"},
        {"type": "deposit", "account": "keeper", "amount": "1000000"},
        {
            "type": "trade",
            "buyer": "trader",
            "seller": "maker",
            "instrument": "BTC-PERP",
            "size": "10",
            "price": "60000",
        },
    ):
        ok(e, cmd)
    feed(e, (60000.0, 60010.0, 59990.0), T0)
    return e


def test_accepted_update_moves_the_index_to_the_guarded_mark():
    e = leveraged_book()
    assert e.state.markets["BTC"].index == 60000.0  # median of 60,000, 60,010, 59,990
    assert str(e.state.oracle_mark("BTC").status) == "ok"


def test_single_source_spike_moves_the_mark_little_and_liquidates_no_one():
    e = leveraged_book()
    ok(e, {"type": "advance_time", "time": T0 + 10})
    # coinbase prints -30% once: at 42,000 the trader would be deep under water
    ok(e, update("coinbase", 42000.0, T0 + 10))
    mark = e.state.markets["BTC"].index
    assert abs(mark / 60000.0 - 1) < PROFILE.oracle.params.jump_ratio_max
    rejected(e, {"type": "start_liquidation", "account": "trader", "liquidator": "keeper"}, "not_liquidatable")


def test_all_sources_stale_fails_closed():
    e = leveraged_book()
    ok(e, {"type": "advance_time", "time": T0 + 61})  # staleness_s_max 60: every source is stale
    assert str(e.state.oracle_mark("BTC").status) == "stale"
    rejected(
        e,
        {
            "type": "trade",
            "buyer": "trader",
            "seller": "maker",
            "instrument": "BTC-PERP",
            "size": "1",
            "price": "60000",
        },
        "oracle_stale",
    )
    rejected(e, {"type": "withdraw", "account": "trader", "amount": "1"}, "oracle_stale")
    ok(e, {"type": "deposit", "account": "trader", "amount": "1000"})  # deposits still work
    # a trade that only reduces risk still works
    ok(
        e,
        {
            "type": "trade",
            "buyer": "maker",
            "seller": "trader",
            "instrument": "BTC-PERP",
            "size": "1",
            "price": "60000",
        },
    )
    # fresh quotes: trading resumes
    feed(e, (60000.0, 60000.0, 60000.0), T0 + 62)
    ok(
        e,
        {
            "type": "trade",
            "buyer": "trader",
            "seller": "maker",
            "instrument": "BTC-PERP",
            "size": "1",
            "price": "60000",
        },
    )


def test_a_real_crash_is_followed_and_liquidates():
    e = leveraged_book()
    # a steady 40% fall over an hour, three sources every 10 s: every update is accepted
    for step in range(1, 361):
        feed(e, (60000.0 * (1 - 0.4 * step / 360),) * 3, T0 + 10 * step)
    assert e.state.markets["BTC"].index == pytest.approx(36000.0, rel=0.02)
    assert str(e.state.oracle_mark("BTC").status) == "ok"
    out = ok(e, {"type": "start_liquidation", "account": "trader", "liquidator": "keeper"})
    assert [ev.type for ev in out].count("liquidation_fill") == 1


def test_forged_replayed_and_future_updates_are_rejected():
    e = leveraged_book()
    ok(e, {"type": "advance_time", "time": T0 + 20})
    intruder = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
    rejected(e, update("binance", 61000.0, T0 + 20, key=intruder), "bad_signature")
    unsigned = update("binance", 61000.0, T0 + 20)
    del unsigned["signature"]
    rejected(e, unsigned, "unsigned")
    rejected(e, update("binance", 60000.0, T0), "oracle_replayed")  # not after binance's last timestamp
    rejected(e, update("binance", 60000.0, T0 + 3600), "oracle_future")
    stranger = dict(update("binance", 60000.0, T0 + 20), source="mallory")
    rejected(e, stranger, "unknown_source")
    # a valid signature over other numbers does not carry over to a changed price
    tampered = dict(update("binance", 60000.0, T0 + 20), price="65000")
    rejected(e, tampered, "bad_signature")


def test_low_confidence_raises_initial_margin_only():
    e = leveraged_book()
    before = {m.id: m for m in e.margins()}["trader"]
    # bands of 1.5% of price against a 2% maximum: confidence score 1 - 0.75 = 0.25 < 0.55
    for source in SOURCES:
        ok(e, {"type": "advance_time", "time": T0 + 10})
        ok(e, update(source, 60000.0, T0 + 10, confidence=900.0))
    assert e.state.markets["BTC"].confidence == pytest.approx(0.25)
    after = {m.id: m for m in e.margins()}["trader"]
    # (1 - 0.25) * factor 1 * 60,000 * 10 BTC = 450,000 on initial margin; maintenance unchanged
    assert after.initial_margin - before.initial_margin == 450_000 * 10**6
    assert after.maintenance_margin == before.maintenance_margin
    assert any(a.kind == "oracle_confidence" for a in after.adjustments)


def test_oracle_events_replay_to_the_same_state():
    from margin_engine.engine import event_from_json, replay

    e = leveraged_book()
    ok(e, {"type": "advance_time", "time": T0 + 10})
    ok(e, update("kraken", 60100.0, T0 + 10, confidence=12.5))
    back = [event_from_json(ev.to_json()) for ev in e.journal]
    r = replay(PROFILE, back)
    assert r.markets == e.state.markets and r.oracles == e.state.oracles
    assert Decimal(str(r.markets["BTC"].index)) == Decimal(str(e.state.markets["BTC"].index))

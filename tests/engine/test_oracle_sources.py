"""Price sources registered by command (`register_source`, `revoke_source`): accepted, used by
`oracle_update` beside the profile's `[oracle.sources]`, replayed from their events, kept in snapshots and
journal loads, and refused with a reason (or as bad input) when they would be wrong."""

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from engine_checks import ok, rejected

from margin_engine.engine import Engine, replay
from margin_engine.engine.oracle_feed import SOURCES_REGISTERED_MAX, sources_json
from margin_engine.errors import InputError
from margin_engine.margin.profile import OracleConfig, load_profile, profile_text
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import dump_public_key, sign_update
from margin_engine.storage import Journal
from margin_engine.storage.snapshot import canonical_json, state_from_json, state_to_json

T0 = 1795593600  # 2026-11-25T08:00:00Z


def key(name: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(name.encode()).digest())


def public(name: str) -> str:
    return dump_public_key(key(name).public_key())


def register(source: str, **extra) -> dict:
    return {"type": "register_source", "source": source, "public_key": public(source), **extra}


def update(source: str, price: float, t: int, underlying: str = "BTC", signer: str | None = None) -> dict:
    u = PriceUpdate(underlying, source, price, None, t)
    return {
        "type": "oracle_update",
        "underlying": underlying,
        "source": source,
        "price": repr(price),
        "timestamp": t,
        "signature": sign_update(key(signer or source), u).hex(),
    }


def market(engine: Engine) -> Engine:
    ok(engine, {"type": "advance_time", "time": T0})
    ok(engine, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"})
    ok(engine, {"type": "set_market", "underlying": "ETH", "index": "3000", "vol": "0.7"})
    return engine


def test_packaged_profiles_register_no_source_so_updates_are_refused():
    e = market(Engine(load_profile("deribit")))
    r = rejected(e, update("feed-a", 61000.0, T0), "unknown_source")
    assert "registered: none" in r.message


def test_a_registered_source_moves_the_mark_and_two_make_it_ok():
    e = market(Engine(load_profile("deribit")))
    (event,) = ok(e, register("feed-a"))
    assert event.to_json() == {
        "type": "source_registered",
        "source": "feed-a",
        "public_key": public("feed-a"),
        "underlyings": ["BTC", "ETH"],  # default: every underlying of the profile
    }
    ok(e, register("feed-b", underlyings=["BTC"]))
    (updated,) = ok(e, update("feed-a", 60600.0, T0))
    assert updated.status == "degraded"  # one source of the two sources_min asks for
    assert e.state.markets["BTC"].index == 60600.0
    ok(e, {"type": "advance_time", "time": T0 + 1})
    (updated,) = ok(e, update("feed-b", 60800.0, T0 + 1))
    assert updated.status == "ok" and updated.mark == 60700.0  # the median of both
    assert e.state.markets["BTC"].index == 60700.0
    # feed-b quotes BTC only; a signature by another key is refused
    rejected(e, update("feed-b", 3000.0, T0 + 1, "ETH"), "underlying_not_allowed")
    rejected(e, update("feed-a", 60000.0, T0 + 2, signer="feed-b"), "bad_signature")
    assert [s["source"] for s in sources_json(e.state)] == ["feed-a", "feed-b"]
    assert sources_json(e.state)[1] == {
        "source": "feed-b",
        "public_key": public("feed-b"),
        "underlyings": ["BTC"],
        "registered_by": "command",
    }


def test_events_replay_to_the_same_state_and_snapshots_keep_the_sources():
    e = market(Engine(load_profile("deribit")))
    ok(e, register("feed-a"))
    ok(e, register("feed-b", underlyings=["ETH", "BTC"]))
    ok(e, {"type": "revoke_source", "source": "feed-a"})
    ok(e, register("feed-c"))
    ok(e, update("feed-c", 60100.0, T0))
    replayed = replay(e.state.profile, e.journal)
    assert replayed == e.state
    assert list(replayed.sources) == ["feed-b", "feed-c"] and replayed.sources["feed-b"].underlyings == ("BTC", "ETH")
    restored = state_from_json(e.state.profile, state_to_json(e.state))
    assert restored == e.state


def test_a_snapshot_without_sources_restores_to_its_own_text():
    """Snapshots taken before sources existed hold no `sources` field: they still restore exactly."""
    e = market(Engine(load_profile("deribit")))
    encoded = state_to_json(e.state)
    assert "sources" not in encoded["state"]
    restored = state_from_json(e.state.profile, encoded)
    assert canonical_json(state_to_json(restored)) == canonical_json(encoded)


def test_a_journal_loads_its_sources_from_snapshots_and_events(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    with Journal.create(url, profile_text("deribit"), snapshot_every=2) as journal:
        engine = journal.load()
        for cmd in (register("feed-a"), register("feed-b"), {"type": "advance_time", "time": T0}):
            assert journal.submit(engine, cmd).accepted
        assert journal.latest_snapshot() is not None  # the sources went through a snapshot
        state = engine.state
    with Journal.open(url) as journal:
        loaded = journal.load()
        assert loaded.state == state and list(loaded.state.sources) == ["feed-a", "feed-b"]
        receipt = journal.submit(loaded, register("feed-a"))
        assert receipt.outcome.code == "source_exists"


def test_rejections_name_what_is_wrong():
    sources = {"desk": public("desk")}
    e = market(Engine(load_profile("deribit").model_copy(update={"oracle": OracleConfig(sources=sources)})))
    ok(e, register("feed-a"))
    r = rejected(e, register("feed-a"), "source_exists")
    assert "with this key" in r.message
    r = rejected(e, {**register("feed-a"), "public_key": public("other")}, "source_exists")
    assert "another key" in r.message
    r = rejected(e, {**register("desk"), "public_key": public("other")}, "source_exists")
    assert "profile" in r.message
    r = rejected(e, {**register("feed-b"), "public_key": public("feed-a")}, "duplicate_key")
    assert "'feed-a'" in r.message
    rejected(e, {**register("feed-b"), "public_key": public("desk").upper()}, "duplicate_key")  # the profile's key
    rejected(e, {"type": "revoke_source", "source": "desk"}, "source_in_profile")
    rejected(e, {"type": "revoke_source", "source": "nobody"}, "unknown_source")
    ok(e, update("desk", 60000.0, T0))  # the profile's source works as before
    ok(e, {"type": "revoke_source", "source": "feed-a"})
    rejected(e, update("feed-a", 60000.0, T0), "unknown_source")
    ok(e, {**register("feed-a"), "public_key": public("rotated")})  # a new key after the revocation


def test_registrations_are_bounded():
    e = Engine(load_profile("deribit"))
    for i in range(SOURCES_REGISTERED_MAX):
        ok(e, register(f"feed-{i}"))
    rejected(e, register("one-more"), "sources_limit")


@pytest.mark.parametrize(
    ("cmd", "field"),
    [
        ({"public_key": "zz" + "00" * 31}, "public_key"),  # not hex
        ({"public_key": "00" * 31}, "public_key"),  # 62 digits
        ({"public_key": "00" * 33}, "public_key"),  # 66 digits
        ({"public_key": 12}, "public_key"),
        ({"public_key": None}, "public_key"),
        ({"source": "bad name"}, "source"),
        ({"source": "-feed"}, "source"),
        ({"source": "a=b"}, "source"),
        ({"source": "x" * 65}, "source"),
        ({"underlyings": []}, "underlyings"),
        ({"underlyings": "BTC"}, "underlyings"),
        ({"underlyings": ["BTC", "BTC"]}, "underlyings"),
        ({"underlyings": ["DOGE"]}, "underlyings[0]"),
        ({"underlyings": ["BTC", 1]}, "underlyings[1]"),
        ({"extra": 1}, "extra"),
    ],
)
def test_malformed_registrations_are_bad_input(cmd, field):
    e = Engine(load_profile("deribit"))
    with pytest.raises(InputError) as info:
        e.submit({**register("feed-a"), **cmd})
    assert info.value.field == field
    assert not e.state.sources and not e.journal


def test_keys_are_stored_lowercase():
    e = Engine(load_profile("deribit"))
    ok(e, {**register("feed-a"), "public_key": public("feed-a").upper()})
    assert e.state.sources["feed-a"].public_key == public("feed-a")
    with pytest.raises(InputError):
        e.submit({"type": "revoke_source", "source": ""})

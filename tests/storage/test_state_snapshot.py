"""Snapshots: state to JSON and back is exact, at every step of random command scripts, including
oracle histories, auctions with sealed bids, bankruptcies, settled expiries and isolated allocations."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, fields, replace
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_workload import MECHANISMS, profile_text, workload

from margin_engine.engine import Engine, State, audit, event_from_json, replay
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.margin.profile import parse_profile
from margin_engine.market.snapshot import Smile
from margin_engine.storage import SnapshotFormatError, state_from_json, state_hash, state_to_json

PROFILES = {m: parse_profile(profile_text(m)) for m in MECHANISMS}


def assert_same_state(a: State, b: State) -> None:
    """`==` field by field, and mappings in the same order (opening order decides event order). The
    ledger is compared by its balances: Ledger has no __eq__ of its own."""
    for f in fields(State):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "ledger":
            x, y = x.balances, y.balances
        assert x == y, f.name
        if isinstance(x, dict):
            assert list(x) == list(y), f"{f.name}: order"


def round_trip(state: State) -> State:
    return state_from_json(state.profile, json.loads(json.dumps(state_to_json(state))))


def run_checking_every_step(engine: Engine, commands: list[dict], seen: set[str] | None = None) -> None:
    for cmd in commands:
        try:
            engine.submit(cmd)
        except InputError:
            continue
        restored = round_trip(engine.state)
        assert_same_state(engine.state, restored)
        assert state_hash(restored) == state_hash(engine.state)
        audit(restored)
        if seen is not None:
            seen |= _features(engine.state)


def _features(s: State) -> set[str]:
    out = set()
    if s.auctions:
        out.add("auction")
    if any(a.bids for a in s.auctions.values()):
        out.add("bids")
    if any(a.phase == "insolvent" for a in s.auctions.values()):
        out.add("insolvent auction")
    if s.bankrupt:
        out.add("bankrupt")
    if s.settled:
        out.add("settled")
    if any(o.reports and o.medians and o.base for o in s.oracles.values()):
        out.add("oracle histories")
    if any(a.mode == "isolated" and a.positions for a in s.accounts.values()):
        out.add("isolated")
    if any(p.instrument.is_option for a in s.accounts.values() for p in a.positions.values()):
        out.add("options")
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), mechanism=st.sampled_from(MECHANISMS), steps=st.integers(5, 60))
def test_round_trip_is_exact_at_every_step(rng, mechanism, steps):
    engine = Engine(PROFILES[mechanism])
    run_checking_every_step(engine, workload(rng, steps))
    # a restored engine goes on exactly as the original: same events for the same commands
    twin = Engine(engine.state.profile)
    twin.state = round_trip(engine.state)
    more = workload(random.Random(rng.random()), 20)[10:]
    for cmd in more:
        try:
            a, b = engine.submit(cmd), twin.submit(cmd)
        except InputError:
            continue
        assert a == b
    assert state_hash(twin.state) == state_hash(engine.state)


def test_the_seeded_scripts_reach_every_part_of_the_state():
    """The hypothesis test relies on the workload; this pins that it covers what a snapshot must carry."""
    seen: dict[str, set[str]] = {}
    for mechanism in MECHANISMS:
        seen[mechanism] = set()
        for seed in range(12):
            run_checking_every_step(Engine(PROFILES[mechanism]), workload(random.Random(seed), 60), seen[mechanism])
    everywhere = {"bankrupt", "settled", "oracle histories", "isolated", "options"}
    for mechanism in MECHANISMS:
        assert everywhere <= seen[mechanism], (mechanism, seen[mechanism])
    assert {"auction", "bids"} <= seen["batch"]
    assert "auction" in seen["dutch"]


def test_a_state_replayed_from_journaled_events_hashes_as_the_live_one():
    """Live Decimals keep the digits they came with (0.10000000), replayed ones are normalized (0.1):
    equal, and the hash must say so, or every replay would disagree with its snapshot."""
    engine = Engine(PROFILES["fixed"])
    for cmd in workload(random.Random(7), 60):
        try:
            engine.submit(cmd)
        except InputError:
            pass
    journaled = [event_from_json(json.loads(json.dumps(e.to_json()))) for e in engine.journal]
    replayed = replay(engine.state.profile, journaled)
    assert_same_state(engine.state, replayed)
    assert state_hash(replayed) == state_hash(engine.state)


@dataclass(frozen=True)
class _Stranger:
    x: int


def test_decimals_floats_and_order_are_exact():
    state = State(PROFILES["fixed"])
    wide = Decimal("1.00000000000000000000000000000000001")  # 36 digits: a 28-digit context would round it
    state.settled[("BTC", 1)] = wide
    state.settled[("ETH", 2)] = Decimal("1E+30")
    state.settled[("XRP", 3)] = Decimal("-0.000")
    state.deposits["USDC"] = 10**40  # beyond int64
    data = state_to_json(state)
    back = round_trip(state)
    assert back.settled == {("BTC", 1): wide, ("ETH", 2): Decimal(10**30), ("XRP", 3): Decimal(0)}
    assert back.deposits == {"USDC": 10**40}
    assert data["state"]["settled"]["$dict"][0] == [{"$tuple": ["BTC", 1]}, {"$decimal": str(wide)}]
    # floats: exact through JSON, NaN and infinities tagged; a flat smile's NaN strike compares equal
    smile = Smile((math.nan, math.inf, -math.inf, -0.0, 0.1 + 0.2), (0.6, 1e-300, 5e-324, 1.7976931348623157e308, 3.0))
    back_smile = state_from_json(state.profile, _with_market_smile(state, smile)).markets["BTC"].vol.smiles[0]
    assert back_smile == smile
    assert math.copysign(1, back_smile.strikes[3]) == -1
    # order is part of the hash: the same entries in another order is another state
    other = replace(state, settled=dict(reversed(list(state.settled.items()))))
    assert other.settled == state.settled and state_hash(other) != state_hash(state)


def _with_market_smile(state: State, smile: Smile) -> dict:
    from margin_engine.market.snapshot import MarketSnapshot, VolSurface

    withmarket = replace(state, markets={"BTC": MarketSnapshot("BTC", 60000.0, 0.0, VolSurface((), (smile,)))})
    return json.loads(json.dumps(state_to_json(withmarket), allow_nan=False))


def test_a_type_the_registry_does_not_know_is_refused_by_name():
    state = State(PROFILES["fixed"])
    state.settled[("BTC", 1)] = _Stranger(1)  # type: ignore[assignment]
    with pytest.raises(InvariantViolation, match="_Stranger.*DATACLASSES"):
        state_to_json(state)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["state"]["accounts"]["$dict"][0][1].update({"$type": "Nope"}), r"snapshot\.state\.accounts\[0\]"),
        (lambda d: d["state"].update({"colour": 1}), r"snapshot\.state\.colour"),
        (lambda d: d["state"]["deposits"]["$dict"].append(["USDC"]), r"snapshot\.state\.deposits\[1\]"),
        (lambda d: d["state"]["settled"].update({"$tuple": []}), r"snapshot\.state\.settled"),
        (lambda d: d.update({"profile": "derive"}), r"snapshot\.profile"),
        (lambda d: d.update({"format": 99}), r"snapshot\.format"),
    ],
)
def test_a_broken_snapshot_names_where(edit, field):
    engine = Engine(PROFILES["fixed"])
    for cmd in workload(random.Random(1), 5)[:12]:
        engine.submit(cmd)
    data = json.loads(json.dumps(state_to_json(engine.state)))
    edit(data)
    with pytest.raises(SnapshotFormatError, match=field):
        state_from_json(engine.state.profile, data)


def test_perp_market_state_round_trips_and_old_markets_keep_their_text():
    """The mark's basis, funding's window and the open interest on the market snapshot survive a
    snapshot; a market without open interest encodes as before the field existed."""
    from margin_engine.margin.profile import FundingParams, load_profile

    t0 = 1_795_593_600
    base = load_profile("deribit")
    btc = base.underlyings["BTC"]
    perp = btc.perp.model_copy(
        update={"basis_ema_s": 30, "open_interest_lower_cap_usd": 1e6, "open_interest_upper_cap_usd": 1e7}
    )
    p = base.model_copy(
        update={
            "underlyings": {**base.underlyings, "BTC": btc.model_copy(update={"perp": perp})},
            "funding": FundingParams(rule="hyperliquid"),
        }
    )
    e = Engine(p)
    e.submit({"type": "advance_time", "time": t0})
    e.submit({"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    for a in ("alice", "bob"):
        e.submit({"type": "open_account", "account": a, "mode": "cross"})
        e.submit({"type": "deposit", "account": a, "asset": "USDC", "amount": "100000"})
    trade = {"type": "trade", "buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "2"}
    e.submit({**trade, "price": "60300"})
    e.submit({"type": "advance_time", "time": t0 + 5000})
    s = e.state
    assert s.basis and s.premiums and s.markets["BTC"].open_interest == 2.0
    data = json.loads(json.dumps(state_to_json(s)))
    back = state_from_json(p, data)
    assert state_hash(back) == state_hash(s) and back.basis == s.basis and back.markets == s.markets
    plain = Engine(load_profile("deribit"))
    plain.submit({"type": "advance_time", "time": t0})
    plain.submit({"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    assert "open_interest" not in json.dumps(state_to_json(plain.state))

"""`set_price_range`: an admin's change of a portfolio underlying's scenario range, journaled
(`price_range_set`), applied to the margin at once, kept by snapshots and replays."""

import pytest

from margin_engine.engine import Engine, Rejection
from margin_engine.engine.describe import describe
from margin_engine.engine.events import PriceRangeSet, event_from_json
from margin_engine.engine.state import State, evolve
from margin_engine.errors import InputError
from margin_engine.margin.profile import load_profile
from margin_engine.storage.snapshot import state_from_json, state_hash, state_to_json

SETUP = [
    {"type": "advance_time", "time": 1_795_593_600},
    {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
    {"type": "open_account", "account": "a", "mode": "portfolio"},
    {"type": "open_account", "account": "b"},
    {"type": "deposit", "account": "a", "amount": "100000"},
    {"type": "deposit", "account": "b", "amount": "100000"},
    {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1", "price": "60000"},
]


def engine() -> Engine:
    e = Engine(load_profile("deribit-pm"))
    for cmd in SETUP:
        assert not isinstance(e.submit(cmd), Rejection)
    return e


def test_the_range_changes_the_portfolio_margin_by_hand():
    e = engine()
    # 1 BTC long at 60,000: worst bucket -16% = 9,600, plus the delta shock 1% x 60,000 = 600
    assert e.state.margin("a").initial_margin == 10_200 * 10**6
    out = e.submit({"type": "set_price_range", "underlying": "BTC", "price_range": "0.32"})
    assert out == [PriceRangeSet("BTC", 0.32)]
    assert describe(out[0], e.state.profile) == "BTC portfolio price range set to +/-32.0%"
    # -32% = 19,200, plus 600; the cross account b keeps Deribit's standard perp margin
    assert e.state.margin("a").initial_margin == 19_800 * 10**6
    assert e.margin_totals().initial_margin.tolist() == [19_800 * 10**6, e.state.margin("b").initial_margin]
    assert event_from_json(out[0].to_json()) == out[0]


def test_snapshots_and_replays_keep_the_range():
    e = engine()
    e.submit({"type": "set_price_range", "underlying": "BTC", "price_range": "0.25"})
    restored = state_from_json(load_profile("deribit-pm"), state_to_json(e.state))
    assert restored.profile.portfolio.underlyings["BTC"].price_range == 0.25
    assert state_hash(restored) == state_hash(e.state)
    replayed = State(load_profile("deribit-pm"))
    for event in e.journal:
        evolve(replayed, event)
    assert state_hash(replayed) == state_hash(e.state)
    assert replayed.margin("a").initial_margin == e.state.margin("a").initial_margin


@pytest.mark.parametrize(
    "fields, where",
    [
        ({"underlying": "SOL", "price_range": "0.2"}, "underlying"),
        ({"underlying": "BTC", "price_range": "0.96"}, "price_range"),
        ({"underlying": "BTC", "price_range": "0"}, "price_range"),
        ({"underlying": "BTC", "price_range": "nan"}, "price_range"),
        ({"underlying": "BTC"}, "price_range"),
        ({"underlying": "BTC", "price_range": "0.2", "price_step": "0.1"}, "price_step"),
    ],
)
def test_bad_ranges_are_refused_and_change_nothing(fields, where):
    e = engine()
    before = state_hash(e.state)
    with pytest.raises(InputError) as err:
        e.submit({"type": "set_price_range", **fields})
    assert err.value.field == where
    assert state_hash(e.state) == before


@pytest.mark.parametrize("profile", ["deribit", "derive-pmrm"])  # no [portfolio]; scenarios as a fixed list
def test_a_profile_without_a_range_grid_refuses_it(profile):
    with pytest.raises(InputError) as err:
        Engine(load_profile(profile)).submit({"type": "set_price_range", "underlying": "BTC", "price_range": "0.2"})
    assert err.value.field == "underlying" and "price_range grid" in str(err.value)

"""Dated futures (`BTC-25DEC26`): margined as the perp of their underlying on their own mark, the
forward of their expiry (the one its options are priced on); no funding; delivered at expiry on
the delivery price, Deribit's 30-minute TWAP of the index. Hand-worked under the deribit profile
(IM 2% + 0.005% per BTC of size, taker fee 0.05%, maker 0)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest
from engine_checks import buyer_takes, ok, rejected

from margin_engine.engine import Engine
from margin_engine.engine.events import event_from_json
from margin_engine.engine.state import replay
from margin_engine.errors import InputError
from margin_engine.instruments.names import Future, parse_instrument
from margin_engine.ledger.ledger import FEES, SETTLEMENT, user_key
from margin_engine.margin.profile import load_profile
from margin_engine.perp.mark import delivery_price
from margin_engine.storage.snapshot import state_from_json, state_to_json

U = 10**6
T0 = 1795593600  # 2026-11-25T08:00:00Z
EXPIRY = 1798185600  # 2026-12-25T08:00:00Z, 30 days later
FUT = "BTC-25DEC26"


def book(rate: str = "0.05") -> Engine:
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "advance_time", "time": T0})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6, "rate": rate})
    for a in ("alice", "bob", "carl", "dan"):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": "100000"})
    return e


def trade(buyer, seller, size, price, instrument=FUT):
    return buyer_takes(buyer, seller, instrument, size, price)


def usdc(e: Engine, account: str) -> int:
    return e.state.ledger.balance(user_key(account), "USDC")


def test_names_parse_and_print_as_deribits():
    f = parse_instrument("BTC-25DEC26")
    assert f == Future("BTC", f.expiry) and f.expiry_s == EXPIRY and f.name == "BTC-25DEC26"
    assert parse_instrument("ETH-5JAN27").name == "ETH-5JAN27"
    with pytest.raises(InputError, match="not a calendar date"):
        parse_instrument("BTC-31NOV26")


def test_a_future_is_marked_at_its_expirys_forward_and_margined_as_the_perp():
    e = book()
    ok(e, trade("alice", "bob", "2", "60250"))
    assert usdc(e, "alice") == 100_000 * U - 60_250_000  # 0.05% x 120,500
    (pos,) = e.state.margin("alice").positions
    forward = 60_000 * math.exp(0.05 * 30 / 365)  # 60,247.12
    assert pos.mark_price == pytest.approx(forward, rel=1e-12)
    assert pos.value == pytest.approx(2 * forward - 120_500, rel=1e-9)
    assert pos.initial_margin == pytest.approx(2 * forward * (0.02 + 0.00005 * 2), rel=1e-12)
    assert pos.basis == pytest.approx(forward - 60_000, rel=1e-9)
    # no funding on a future, and no basis observed from its fills
    with pytest.raises(InputError, match="funding applies to perpetuals"):
        e.submit({"type": "apply_funding", "instrument": FUT, "rate": "0.001"})
    assert e.state.basis == {}


def test_delivery_at_the_30_minute_twap_closes_both_sides():
    e = book(rate="0")
    ok(e, trade("alice", "bob", "2", "60250"))
    # the index's last 30 minutes: 61,000 for 10 minutes, then 61,300: TWAP 61,200
    points = [(EXPIRY - 3_600, 61_000.0), (EXPIRY - 1_200, 61_300.0)]
    price = delivery_price(points, EXPIRY)
    assert price == pytest.approx(61_200)
    rejected(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61200"}, "not_expired")
    ok(e, {"type": "advance_time", "time": EXPIRY})
    rejected(e, trade("carl", "dan", "1", "61200"), "instrument_expired")
    out = ok(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61200"})
    pnl = {x.credit if x.debit == SETTLEMENT else x.debit: x.amount_units for x in out if x.type == "transfer"}
    assert pnl == {user_key("alice"): 1_900 * U, user_key("bob"): 1_900 * U}  # 2 x (61,200 - 60,250), each way
    assert usdc(e, "alice") == 100_000 * U - 60_250_000 + 1_900 * U
    assert usdc(e, "bob") == 98_100 * U
    assert not e.state.accounts["alice"].positions and not e.state.holders.get(FUT)
    assert e.state.ledger.balance(SETTLEMENT, "USDC") == 0


def test_delivery_rounds_against_both_sides_and_the_dust_goes_to_the_fee_pool():
    e = book(rate="0")
    ok(e, trade("carl", "dan", "0.3", "60000"))
    fees = e.state.ledger.balance(FEES, "USDC")
    ok(e, {"type": "advance_time", "time": EXPIRY})
    ok(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61200.123457"})
    # 0.3 x 61,200.123457 = 18,360.0370371: the long gets 18,360.037037, the short pays 18,360.037038
    assert usdc(e, "carl") == 100_000 * U - 9 * U + 360_037_037  # fee 0.05% of 18,000 = 9
    assert usdc(e, "dan") == 100_000 * U - 360_037_038
    assert e.state.ledger.balance(FEES, "USDC") == fees + 1


def test_a_futures_account_is_liquidated_at_the_futures_mark():
    e = book()
    ok(e, {"type": "open_account", "account": "thin", "mode": "cross"})
    ok(e, {"type": "deposit", "account": "thin", "asset": "USDC", "amount": "2000"})
    ok(e, trade("thin", "bob", "1", "60200"))
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "58500", "vol": 0.6, "rate": "0.05"})
    out = ok(e, {"type": "start_liquidation", "account": "thin", "liquidator": "carl"})
    fill = next(x for x in out if x.type == "liquidation_fill")
    taken = e.state.accounts["carl"].positions[FUT]
    assert 0 < taken.size <= 1 and abs(taken.size - fill.fraction) < Decimal("1e-8")  # size steps of 1e-8
    forward = 58_500 * math.exp(0.05 * 30 / 365)  # the future's mark, not the index
    assert taken.quote == -round(float(taken.size) * forward * U)


def test_futures_positions_survive_snapshot_and_replay():
    e = book()
    ok(e, trade("alice", "bob", "1.5", "60100"))
    data = json.loads(json.dumps(state_to_json(e.state)))
    restored = state_from_json(e.state.profile, data)
    assert restored.accounts["alice"].positions[FUT] == e.state.accounts["alice"].positions[FUT]
    again = replay(e.state.profile, [event_from_json(json.loads(json.dumps(x.to_json()))) for x in e.journal])
    assert again.ledger == e.state.ledger and again.accounts == e.state.accounts

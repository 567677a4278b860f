"""Engine flows with hand-worked numbers (deribit profile unless said otherwise).

Units: USDC has 6 decimals, so 1 USDC = 1_000_000 units (`U`). Every expected amount below is
derived in a comment from the spec: perp quote = -(entry notional), realized P&L paid between
`settlement` and the user, option premium buyer -> seller, fees rounded up to `fees`, funding and
expiry payers rounded up / receivers rounded down with the dust to `fees`.
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from engine_checks import ok, rejected, snapshot

from margin_engine.engine import Engine, Rejection, audit, decide, event_from_json, parse_command, replay
from margin_engine.ledger.ledger import FEES, SETTLEMENT, allocation_key, user_key
from margin_engine.ledger.units import ceil_units
from margin_engine.margin.profile import load_profile

U = 1_000_000  # USDC units per USDC
T0 = "2026-11-25T08:00:00Z"
EXPIRY = "2026-12-25T08:00:00Z"  # 25DEC26 08:00 UTC
CALL = "BTC-25DEC26-60000-C"
PUT = "BTC-25DEC26-55000-P"
DERIBIT = load_profile("deribit")


# ----------------------------------------------------------------------------------------- helpers


def bal(engine: Engine, key: str, asset: str = "USDC") -> int:
    return engine.state.ledger.balance(key, asset)


def user(engine: Engine, account: str, asset: str = "USDC") -> int:
    return bal(engine, user_key(account), asset)


def pos(engine: Engine, account: str, instrument: str):
    p = engine.state.accounts[account].positions.get(instrument)
    return None if p is None else (p.size, p.quote)


def margin(engine: Engine, account: str):
    return next(m for m in engine.margins() if m.id == account)


def trade(buyer, seller, instrument, size, price, aggressor=None) -> dict:
    cmd = {
        "type": "trade",
        "buyer": buyer,
        "seller": seller,
        "instrument": instrument,
        "size": str(size),
        "price": str(price),
    }
    if aggressor:
        cmd["aggressor"] = aggressor
    return cmd


def setup(
    accounts=("alice", "bob", "carl", "dan"), deposit="100000", index="60000", mode="cross", profile=DERIBIT, time=T0
) -> Engine:
    e = Engine(profile)
    if time:
        ok(e, {"type": "advance_time", "time": time})
    if index:
        ok(e, {"type": "set_market", "underlying": "BTC", "index": index, "vol": 0.6})
    for a in accounts:
        ok(e, {"type": "open_account", "account": a, "mode": mode})
        if deposit:
            ok(e, {"type": "deposit", "account": a, "asset": "USDC", "amount": deposit})
    return e


def of_type(events, kind):
    return [ev for ev in events if ev.type == kind]


def transfers(events, reason):
    return [(ev.debit, ev.credit, ev.amount_units) for ev in events if ev.type == "transfer" and ev.reason == reason]


# ------------------------------------------------------------------------------------------- perps


def test_perp_open_partial_close_full_close_and_flip():
    e = setup()

    # Open: bob buys 2 BTC-PERP from alice at 61000, bob is the taker.
    out = ok(e, trade("bob", "alice", "BTC-PERP", "2", "61000", "buyer"))
    # notional 2 * 61000 = 122000 USDC -> bob quote -122_000_000_000, alice +122_000_000_000
    assert pos(e, "bob", "BTC-PERP") == (Decimal(2), -122_000 * U)
    assert pos(e, "alice", "BTC-PERP") == (Decimal(-2), 122_000 * U)
    # taker fee 0.05% * 122000 = 61 USDC; maker 0
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (61 * U, 0)
    assert transfers(out, "fee") == [(user_key("bob"), FEES, 61 * U)]
    assert transfers(out, "realized_pnl") == []  # no cash moves at a perp trade
    assert user(e, "bob") == 100_000 * U - 61 * U
    assert user(e, "alice") == 100_000 * U
    assert bal(e, SETTLEMENT) == 0  # sum of quotes -122000 + 122000 = 0
    assert bal(e, FEES) == 61 * U

    # Partial close: bob sells 1 to carl at 63000 (no aggressor: maker fees 0 on both sides).
    out = ok(e, trade("carl", "bob", "BTC-PERP", "1", "63000"))
    # bob: raw quote -122000 + 63000 = -59000; kept basis -122000 * 1/2 = -61000;
    # realized = -59000 - (-61000) = +2000 USDC, paid settlement -> bob
    assert transfers(out, "realized_pnl") == [(SETTLEMENT, user_key("bob"), 2_000 * U)]
    assert pos(e, "bob", "BTC-PERP") == (Decimal(1), -61_000 * U)
    assert pos(e, "carl", "BTC-PERP") == (Decimal(1), -63_000 * U)  # carl opens at 63000
    assert user(e, "bob") == 100_000 * U - 61 * U + 2_000 * U
    # settlement = -2000 USDC = quotes 122000 - 61000 - 63000
    assert bal(e, SETTLEMENT) == -2_000 * U

    # Full close: bob sells his last 1 to alice at 60000; alice reduces her short from -2 to -1.
    out = ok(e, trade("alice", "bob", "BTC-PERP", "1", "60000"))
    # bob: realized = -61000 + 60000 = -1000 USDC, bob -> settlement; position gone
    # alice: raw 122000 - 60000 = 62000, kept 122000 * 1/2 = 61000, realized +1000 settlement -> alice
    assert sorted(transfers(out, "realized_pnl")) == sorted(
        [(user_key("bob"), SETTLEMENT, 1_000 * U), (SETTLEMENT, user_key("alice"), 1_000 * U)]
    )
    assert pos(e, "bob", "BTC-PERP") is None
    assert "bob" not in e.state.holders["BTC-PERP"]
    assert pos(e, "alice", "BTC-PERP") == (Decimal(-1), 61_000 * U)
    assert user(e, "bob") == 100_000 * U - 61 * U + 2_000 * U - 1_000 * U
    assert user(e, "alice") == 100_000 * U + 1_000 * U
    # settlement -2000 + 1000 - 1000 = -2000 = quotes 61000 - 63000
    assert bal(e, SETTLEMENT) == -2_000 * U

    # Flip: alice (-1 @61000) buys 3 from carl (+1 @63000) at 62000: both flip.
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "62000", "vol": 0.6})
    out = ok(e, trade("alice", "carl", "BTC-PERP", "3", "62000"))
    # notional 3 * 62000 = 186000. alice: raw 61000 - 186000 = -125000; opening 2/3 of 186000 = 124000
    # -> quote -124000, realized -125000 + 124000 = -1000 (short 61000, covered 62000)
    # carl: raw -63000 + 186000 = 123000; opening quote +124000; realized -1000 (long 63000, sold 62000)
    assert pos(e, "alice", "BTC-PERP") == (Decimal(2), -124_000 * U)
    assert pos(e, "carl", "BTC-PERP") == (Decimal(-2), 124_000 * U)
    assert sorted(transfers(out, "realized_pnl")) == sorted(
        [(user_key("alice"), SETTLEMENT, 1_000 * U), (user_key("carl"), SETTLEMENT, 1_000 * U)]
    )
    assert user(e, "alice") == 100_000 * U + 1_000 * U - 1_000 * U
    assert user(e, "carl") == 100_000 * U - 1_000 * U
    # settlement -2000 + 1000 + 1000 = 0 = quotes -124000 + 124000
    assert bal(e, SETTLEMENT) == 0
    assert bal(e, FEES) == 61 * U
    report = audit(e.state)["USDC"]
    assert report["deposits"] == 400_000 * U
    assert report["users"] + report["fees"] + report["settlement"] == 400_000 * U


def test_perp_taker_fee_seller_aggressor_and_sub_unit_rounding():
    e = setup(("alice", "bob"))
    # seller taker: 0.05% * 1.5 * 60000 = 45 USDC from alice, bob maker pays 0
    out = ok(e, trade("bob", "alice", "BTC-PERP", "1.5", "60000", "seller"))
    assert transfers(out, "fee") == [(user_key("alice"), FEES, 45 * U)]
    # one satoshi at 60001: notional 0.00060001 USDC = 600.01 units -> 600 (half-even, both sides)
    # taker fee 0.0005 * 0.00060001 USDC = 0.300005 units -> rounded up to 1 unit
    out = ok(e, trade("bob", "alice", "BTC-PERP", "0.00000001", "60001", "buyer"))
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (1, 0)
    assert pos(e, "bob", "BTC-PERP") == (Decimal("1.50000001"), -90_000 * U - 600)
    assert pos(e, "alice", "BTC-PERP") == (Decimal("-1.50000001"), 90_000 * U + 600)
    # 0.00000001 * 60050 = 600.5 units -> half-even 600; 0.00000001 * 60150 = 601.5 units -> 602
    ok(e, trade("bob", "alice", "BTC-PERP", "0.00000001", "60050"))
    assert pos(e, "bob", "BTC-PERP")[1] == -90_000 * U - 1200
    ok(e, trade("bob", "alice", "BTC-PERP", "0.00000001", "60150"))
    assert pos(e, "bob", "BTC-PERP")[1] == -90_000 * U - 1802
    assert pos(e, "alice", "BTC-PERP")[1] == 90_000 * U + 1802
    assert bal(e, FEES) == 45 * U + 1


def test_perp_maker_fee_when_the_profile_charges_one():
    fees = DERIBIT.fees.model_copy(update={"perp_maker_rate": 0.0002})
    e = setup(("alice", "bob"), profile=DERIBIT.model_copy(update={"fees": fees}))
    out = ok(e, trade("bob", "alice", "BTC-PERP", "0.3", "60000.7", "buyer"))
    # notional 0.3 * 60000.7 = 18000.21 USDC; taker 0.05% = 9.000105 -> 9_000_105 units;
    # maker 0.02% = 3.600042 -> 3_600_042 units
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (9_000_105, 3_600_042)
    # 0.3 * 60000.71 = 18000.213: taker 9.0001065 USDC -> up 9_000_107; maker 3.6000426 -> up 3_600_043
    out = ok(e, trade("bob", "alice", "BTC-PERP", "0.3", "60000.71", "seller"))
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (3_600_043, 9_000_107)
    assert bal(e, FEES) == 9_000_105 + 3_600_042 + 3_600_043 + 9_000_107


def test_perp_partial_close_cost_basis_rounds_half_even():
    e = setup(("alice", "bob"))
    # bob buys 3 at 60000.01: quote -(3 * 60000.01) = -180000.03 USDC = -180_000_030_000
    ok(e, trade("bob", "alice", "BTC-PERP", "3", "60000.01"))
    # bob sells 2 at 60001: kept basis -180_000_030_000 * 1/3 = -60_000_010_000
    # raw -180_000_030_000 + 120_002_000_000 = -59_998_030_000; realized = +1_980_000 (2 * 0.99 USDC)
    out = ok(e, trade("alice", "bob", "BTC-PERP", "2", "60001"))
    assert pos(e, "bob", "BTC-PERP") == (Decimal(1), -60_000_010_000)
    # alice mirrors it: her short of -3 at 60000.01 loses 2 * 0.99 USDC
    assert sorted(transfers(out, "realized_pnl")) == sorted(
        [(SETTLEMENT, user_key("bob"), 1_980_000), (user_key("alice"), SETTLEMENT, 1_980_000)]
    )
    # 3 satoshi at 33333.33333: 0.0009999999999 USDC = 999.9999999 units -> half-even 1000
    e2 = setup(("alice", "bob"))
    ok(e2, trade("bob", "alice", "BTC-PERP", "0.00000003", "33333.33333"))
    assert pos(e2, "bob", "BTC-PERP") == (Decimal("0.00000003"), -1000)
    # sells 0.00000002 at the same price: notional 666.6666666 units -> 667; kept basis -1000 * 1/3 = -333.3 -> -333
    # raw -1000 + 667 = -333 -> realized 0
    out = ok(e2, trade("alice", "bob", "BTC-PERP", "0.00000002", "33333.33333"))
    assert pos(e2, "bob", "BTC-PERP") == (Decimal("0.00000001"), -333)
    assert pos(e2, "alice", "BTC-PERP") == (Decimal("-0.00000001"), 333)
    assert transfers(out, "realized_pnl") == []
    assert bal(e2, SETTLEMENT) == 0


# ----------------------------------------------------------------------------------------- options


def test_option_premium_and_fee_cap_not_binding():
    e = setup(("alice", "bob"))
    out = ok(e, trade("bob", "alice", CALL, "1", "3000", "buyer"))
    # premium 1 * 3000 = 3000 USDC bob -> alice
    assert transfers(out, "premium") == [(user_key("bob"), user_key("alice"), 3_000 * U)]
    # fee min(0.03% * 60000 * 1 = 18, 12.5% * 3000 * 1 = 375) = 18 USDC, both sides (aggressor irrelevant)
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (18 * U, 18 * U)
    assert user(e, "bob") == 100_000 * U - 3_000 * U - 18 * U
    assert user(e, "alice") == 100_000 * U + 3_000 * U - 18 * U
    assert bal(e, FEES) == 36 * U
    assert pos(e, "bob", CALL) == (Decimal(1), 0)  # options keep no quote
    assert pos(e, "alice", CALL) == (Decimal(-1), 0)
    assert bal(e, SETTLEMENT) == 0


def test_option_fee_cap_binding():
    e = setup(("alice", "bob"))
    out = ok(e, trade("bob", "alice", "BTC-25DEC26-90000-C", "2", "100"))
    # premium 2 * 100 = 200 USDC
    assert transfers(out, "premium") == [(user_key("bob"), user_key("alice"), 200 * U)]
    # fee min(0.03% * 60000 * 2 = 36, 12.5% * 100 * 2 = 25) = 25 USDC each
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (25 * U, 25 * U)
    assert bal(e, FEES) == 50 * U
    assert user(e, "bob") == 100_000 * U - 200 * U - 25 * U
    assert user(e, "alice") == 100_000 * U + 200 * U - 25 * U


def test_option_fee_sub_unit_rounds_up_and_zero_price_has_zero_fee():
    e = setup(("alice", "bob"))
    out = ok(e, trade("bob", "alice", CALL, "0.00000001", "3000"))
    # premium 1e-8 * 3000 = 0.00003 USDC = 30 units
    assert transfers(out, "premium") == [(user_key("bob"), user_key("alice"), 30)]
    # fee min(0.0003 * 60000 * 1e-8 = 0.18 units, 0.125 * 3000 * 1e-8 = 3.75 units) = 0.18 -> 1 unit
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (1, 1)
    # a zero premium: cap 12.5% * 0 = 0 -> no fee, no premium transfer
    out = ok(e, trade("bob", "alice", "BTC-25DEC26-200000-C", "1", "0"))
    (t,) = of_type(out, "trade")
    assert (t.buyer_fee_units, t.seller_fee_units) == (0, 0)
    assert transfers(out, "premium") == [] and transfers(out, "fee") == []


# ----------------------------------------------------------------------------------------- funding


def _funding_book() -> Engine:
    e = setup()
    # positions: dan +0.2, bob +0.12345678, alice -0.3, carl -0.02345678 (all at 60000, no fees)
    ok(e, trade("dan", "alice", "BTC-PERP", "0.2", "60000"))
    ok(e, trade("bob", "alice", "BTC-PERP", "0.1", "60000"))
    ok(e, trade("bob", "carl", "BTC-PERP", "0.02345678", "60000"))
    assert bal(e, SETTLEMENT) == 0
    return e


def test_funding_positive_rate_longs_pay_with_dust():
    e = _funding_book()
    before = {a: user(e, a) for a in ("alice", "bob", "carl", "dan")}
    out = ok(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"})
    # per BTC: 60000 * 0.0001 = 6 USDC = 6_000_000 units
    # dan pays 0.2 * 6e6 = 1_200_000; bob pays 0.12345678 * 6e6 = 740_740.68 -> up 740_741
    # alice receives 0.3 * 6e6 = 1_800_000; carl receives 0.02345678 * 6e6 = 140_740.68 -> down 140_740
    # dust = 1_200_000 + 740_741 - 1_800_000 - 140_740 = 1 unit to fees
    assert user(e, "dan") - before["dan"] == -1_200_000
    assert user(e, "bob") - before["bob"] == -740_741
    assert user(e, "alice") - before["alice"] == 1_800_000
    assert user(e, "carl") - before["carl"] == 140_740
    assert transfers(out, "rounding") == [(SETTLEMENT, FEES, 1)]
    assert bal(e, FEES) == 1
    assert bal(e, SETTLEMENT) == 0  # funding leaves the settlement account where it was
    (f,) = of_type(out, "funding_applied")
    assert f.rate == Decimal("0.0001")


def test_funding_negative_rate_shorts_pay_with_dust():
    e = _funding_book()
    before = {a: user(e, a) for a in ("alice", "bob", "carl", "dan")}
    ok(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "-0.0001"})
    # alice pays 1_800_000; carl pays 140_740.68 -> 140_741
    # dan receives 1_200_000; bob receives 740_740.68 -> 740_740
    # dust = 1_800_000 + 140_741 - 1_200_000 - 740_740 = 1
    assert user(e, "alice") - before["alice"] == -1_800_000
    assert user(e, "carl") - before["carl"] == -140_741
    assert user(e, "dan") - before["dan"] == 1_200_000
    assert user(e, "bob") - before["bob"] == 740_740
    assert bal(e, FEES) == 1
    assert bal(e, SETTLEMENT) == 0


def test_funding_uses_current_index_and_isolated_positions_pay_from_allocation():
    e = setup(("alice",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "10000"})
    ok(e, trade("iso", "alice", "BTC-PERP", "1", "60000"))
    alloc = bal(e, allocation_key("iso", "BTC-PERP"))
    free = user(e, "iso")
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "65000", "vol": 0.6})
    ok(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"})
    # 1 * 65000 * 0.0001 = 6.5 USDC from iso's allocation; alice receives 6.5
    assert bal(e, allocation_key("iso", "BTC-PERP")) == alloc - 6_500_000
    assert user(e, "iso") == free
    assert user(e, "alice") == 100_000 * U + 6_500_000
    assert bal(e, FEES) == 0


def test_funding_without_positions_or_with_zero_rate_moves_nothing():
    e = setup(("alice", "bob"))
    out = ok(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.001"})
    assert [ev.type for ev in out] == ["funding_applied"]
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))
    out = ok(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0"})
    assert [ev.type for ev in out] == ["funding_applied"]


# ------------------------------------------------------------------------------------------ expiry


def test_expiry_itm_call_otm_put_with_dust():
    e = setup()
    # longs bob +0.33333333 and dan +0.33333334 of the 60000 call, alice short -0.66666667
    ok(e, trade("bob", "alice", CALL, "0.33333333", "3000"))
    ok(e, trade("dan", "alice", CALL, "0.33333334", "3000"))
    # carl long 1 of the 55000 put from alice
    ok(e, trade("carl", "alice", PUT, "1", "1000"))
    before = {a: user(e, a) for a in ("alice", "bob", "carl", "dan")}
    fees_before = bal(e, FEES)

    rejected(
        e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61000.0003"}, "not_expired"
    )
    ok(e, {"type": "advance_time", "time": EXPIRY})
    out = ok(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61000.0003"})
    # call intrinsic 61000.0003 - 60000 = 1000.0003 per BTC
    # bob:  0.33333333 * 1000.0003 = 333.333429999999 USDC -> floor 333_333_429 units
    # dan:  0.33333334 * 1000.0003 = 333.333440000002 USDC -> floor 333_333_440 units
    # alice pays 0.66666667 * 1000.0003 = 666.666870000001 USDC -> ceil 666_666_871 units
    # put 55000 at 61000.0003 is out of the money: no transfer
    # dust = 666_666_871 - 333_333_429 - 333_333_440 = 2 units
    assert user(e, "bob") - before["bob"] == 333_333_429
    assert user(e, "dan") - before["dan"] == 333_333_440
    assert user(e, "alice") - before["alice"] == -666_666_871
    assert user(e, "carl") == before["carl"]
    assert transfers(out, "rounding") == [(SETTLEMENT, FEES, 2)]
    assert bal(e, FEES) - fees_before == 2
    assert bal(e, SETTLEMENT) == 0
    for a in ("alice", "bob", "carl", "dan"):
        assert e.state.accounts[a].positions == {}
    closes = [(ev.account, ev.instrument) for ev in of_type(out, "position_changed")]
    assert sorted(closes) == sorted([("bob", CALL), ("dan", CALL), ("alice", CALL), ("alice", PUT), ("carl", PUT)])
    assert all(ev.size == 0 and ev.quote_units == 0 for ev in of_type(out, "position_changed"))
    # settle twice
    rejected(
        e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "61000.0003"}, "already_settled"
    )


def test_expiry_itm_put_isolated_short_pays_from_allocation_and_releases():
    e = setup(("bob",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "20000"})
    # iso sells 1 put 60000 to bob at 2000: premium 2000 to iso's free pool; fee min(18, 250) = 18 each
    ok(e, trade("bob", "iso", "BTC-25DEC26-60000-P", "1", "2000"))
    pm = next(p for p in margin(e, "iso").positions if p.instrument == "BTC-25DEC26-60000-P")
    alloc = ceil_units(pm.initial_margin - pm.value, 6)  # IM - value moved in at the fill
    assert alloc > 0
    assert bal(e, allocation_key("iso", "BTC-25DEC26-60000-P")) == alloc
    assert user(e, "iso") == 20_000 * U + 2_000 * U - 18 * U - alloc
    ok(e, {"type": "advance_time", "time": "2026-12-26T00:00:00Z"})
    ok(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "2026-12-25T08:00:00Z", "price": "59000"})
    # put intrinsic 60000 - 59000 = 1000 USDC: iso's allocation pays it, the rest is released
    assert bal(e, allocation_key("iso", "BTC-25DEC26-60000-P")) == 0
    assert user(e, "iso") == 20_000 * U + 2_000 * U - 18 * U - 1_000 * U
    assert user(e, "bob") == 100_000 * U - 2_000 * U - 18 * U + 1_000 * U
    assert bal(e, FEES) == 36 * U  # no dust: whole numbers


def test_expiry_settles_only_that_underlying_and_expiry():
    e = setup(("alice", "bob"))
    ok(e, trade("bob", "alice", CALL, "1", "3000"))
    ok(e, trade("bob", "alice", "BTC-26MAR27-60000-C", "1", "5000"))
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))
    ok(e, {"type": "advance_time", "time": EXPIRY})
    ok(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "60000"})
    assert set(e.state.accounts["bob"].positions) == {"BTC-26MAR27-60000-C", "BTC-PERP"}
    # ETH 25DEC26 is a different settlement: allowed, settles nothing here
    ok(e, {"type": "settle_expiry", "underlying": "ETH", "expiry": "25DEC26", "price": "3000"})
    assert set(e.state.accounts["bob"].positions) == {"BTC-26MAR27-60000-C", "BTC-PERP"}


# -------------------------------------------------------------------------------------- rejections


def test_rejection_unknown_account_and_account_exists():
    e = setup(("alice",))
    r = rejected(e, {"type": "deposit", "account": "ghost", "amount": "1"}, "unknown_account")
    assert r.account == "ghost"
    rejected(e, {"type": "withdraw", "account": "ghost", "amount": "1"}, "unknown_account")
    r = rejected(e, trade("alice", "ghost", "BTC-PERP", "1", "60000"), "unknown_account")
    assert r.account == "ghost"
    rejected(e, trade("ghost", "alice", "BTC-PERP", "1", "60000"), "unknown_account")
    rejected(e, {"type": "open_account", "account": "alice", "mode": "isolated"}, "account_exists")


def test_rejection_no_market():
    e = setup(("alice", "bob"), index=None)
    rejected(e, trade("bob", "alice", "BTC-PERP", "1", "60000"), "no_market")
    rejected(e, {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.0001"}, "no_market")
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    rejected(e, trade("bob", "alice", "ETH-PERP", "1", "3000"), "no_market")
    rejected(e, trade("bob", "alice", "ETH-25DEC26-3000-C", "1", "100"), "no_market")
    # ETH collateral without an ETH market cannot be valued: bob's risk-adding trade cannot be checked
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))
    ok(e, {"type": "deposit", "account": "bob", "asset": "ETH", "amount": "1"})
    rejected(e, trade("bob", "alice", "BTC-PERP", "1", "60000"), "no_market")
    # ... but a reduction needs no check and is always allowed
    ok(e, trade("alice", "bob", "BTC-PERP", "0.5", "60000"))
    assert pos(e, "bob", "BTC-PERP") == (Decimal("0.5"), -30_000 * U)


def test_rejection_time_unset_for_options_but_perps_trade():
    e = setup(("alice", "bob"), time=None)
    rejected(e, trade("bob", "alice", CALL, "1", "3000"), "time_unset")
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))
    rejected(e, {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "60000"}, "not_expired")


def test_rejection_expired_instrument_and_time_backwards():
    e = setup(("alice", "bob"))
    ok(e, {"type": "advance_time", "time": "2026-12-25T07:59:59Z"})
    ok(e, trade("bob", "alice", CALL, "1", "3000"))  # one second before expiry: tradable
    ok(e, {"type": "advance_time", "time": EXPIRY})
    rejected(e, trade("bob", "alice", CALL, "1", "3000"), "instrument_expired")
    rejected(e, {"type": "advance_time", "time": "2026-12-25T07:59:59Z"}, "time_backwards")
    ok(e, {"type": "advance_time", "time": EXPIRY})  # the same time is not backwards
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))  # perps never expire


def test_rejection_settle_before_expiry_and_twice():
    e = setup(("alice", "bob"))
    ok(e, trade("bob", "alice", CALL, "1", "3000"))
    cmd = {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "65000"}
    rejected(e, cmd, "not_expired")
    ok(e, {"type": "advance_time", "time": "2026-12-25T07:59:59Z"})
    rejected(e, cmd, "not_expired")
    ok(e, {"type": "advance_time", "time": EXPIRY})
    ok(e, cmd)
    rejected(e, cmd, "already_settled")
    rejected(e, {**cmd, "price": "1"}, "already_settled")
    assert e.state.settled[("BTC", 1798185600)] == Decimal(65000)  # 2026-12-25T08:00Z


def test_rejection_too_many_positions():
    profile = DERIBIT.model_copy(update={"max_positions_per_account": 2})
    e = setup(("alice", "bob", "carl"), profile=profile)
    ok(e, {"type": "set_market", "underlying": "ETH", "index": "3000", "vol": 0.7})
    ok(e, trade("bob", "alice", "BTC-PERP", "1", "60000"))
    ok(e, trade("bob", "alice", "ETH-PERP", "1", "3000"))
    r = rejected(e, trade("bob", "carl", CALL, "1", "3000"), "too_many_positions")
    assert r.account == "bob"
    r = rejected(e, trade("carl", "alice", CALL, "1", "3000"), "too_many_positions")
    assert r.account == "alice"  # the seller's side is checked too
    ok(e, trade("bob", "carl", "BTC-PERP", "1", "60000"))  # an existing instrument is fine at the cap
    ok(e, trade("alice", "bob", "ETH-PERP", "1", "3000"))  # both close ETH-PERP ...
    ok(e, trade("bob", "carl", CALL, "1", "3000"))  # ... which frees a slot for bob


def test_rejection_withdraw_beyond_balance():
    e = setup(("alice",), deposit="1000")
    r = rejected(e, {"type": "withdraw", "account": "alice", "amount": "1000.000001"}, "insufficient_balance")
    # needed 1000.000001 USDC = 1_000_000_001 units, available 1000 USDC
    assert (r.needed, r.available, r.asset, r.decimals) == (1_000_000_001, 1_000 * U, "USDC", 6)
    r = rejected(e, {"type": "withdraw", "account": "alice", "asset": "BTC", "amount": "0.1"}, "insufficient_balance")
    assert (r.needed, r.available, r.asset, r.decimals) == (10_000_000, 0, "BTC", 8)
    out = ok(e, {"type": "withdraw", "account": "alice", "amount": "1000"})
    assert transfers(out, "withdrawal") == [(user_key("alice"), "external", 1_000 * U)]
    assert audit(e.state)["USDC"]["withdrawals"] == 1_000 * U


def test_rejection_withdraw_beyond_margin_reports_numbers():
    e = setup(("alice", "bob"), deposit="10000")
    ok(e, trade("alice", "bob", "BTC-PERP", "1", "60000"))
    # IM = 1 * 60000 * (2% + 0.005% * 1) = 60000 * 0.02005 = 1203 USDC
    assert margin(e, "alice").initial_margin == 1_203 * U
    r = rejected(e, {"type": "withdraw", "account": "alice", "amount": "9000"}, "insufficient_margin")
    # equity after = 10000 - 9000 + (60000 - 60000) = 1000 USDC < 1203
    assert (r.needed, r.available) == (1_203 * U, 1_000 * U)
    assert r.account == "alice" and r.asset == "USDC"
    # 10000 - 1203 = 8797 USDC is the most alice can take
    rejected(e, {"type": "withdraw", "account": "alice", "amount": "8797.000001"}, "insufficient_margin")
    ok(e, {"type": "withdraw", "account": "alice", "amount": "8797"})
    assert margin(e, "alice").free_collateral == 0


def test_withdraw_btc_collateral_counts_at_haircut():
    e = setup(("alice", "bob"), deposit=None)
    ok(e, {"type": "deposit", "account": "alice", "asset": "BTC", "amount": "0.1"})
    ok(e, {"type": "deposit", "account": "bob", "amount": "100000"})
    ok(e, trade("alice", "bob", "BTC-PERP", "1", "60000"))
    # collateral 0.1 BTC * 60000 = 6000 USD, IM haircut 10% -> 600; perp IM 1203 -> total IM 1803, equity 6000
    m = margin(e, "alice")
    assert (m.equity, m.initial_margin) == (6_000 * U, 1_803 * U)
    # withdrawing 0.07 BTC: equity 0.03 * 60000 = 1800, IM 1203 + 180 = 1383 -> fine
    ok(e, {"type": "withdraw", "account": "alice", "asset": "BTC", "amount": "0.07"})
    # withdrawing 0.01 more: equity 1200, IM 1203 + 120 = 1323 -> rejected
    r = rejected(e, {"type": "withdraw", "account": "alice", "asset": "BTC", "amount": "0.01"}, "insufficient_margin")
    assert (r.needed, r.available) == (1_323 * U, 1_200 * U)


def test_risk_increasing_rejected_while_reducing_accepted_on_undermargined_account():
    e = setup(("alice", "bob"), deposit=None)
    ok(e, {"type": "deposit", "account": "alice", "amount": "2000"})
    ok(e, {"type": "deposit", "account": "bob", "amount": "100000"})
    ok(e, trade("alice", "bob", "BTC-PERP", "1", "60000"))
    # index 59000: equity 2000 - 1000 = 1000; IM 59000 * 0.02005 = 1182.95 -> under-margined
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "59000", "vol": 0.6})
    m = margin(e, "alice")
    assert (m.equity, m.initial_margin) == (1_000 * U, 1_182_950_000)
    assert m.free_collateral < 0
    # adding 0.1 at 59000: size 1.1, notional 64900, IM 64900 * (0.02 + 0.00005 * 1.1) = 1301.5695
    # equity still 1000 (the new 0.1 is at the index): rejected with those numbers
    r = rejected(e, trade("alice", "bob", "BTC-PERP", "0.1", "59000"), "insufficient_margin")
    assert (r.account, r.needed, r.available) == ("alice", 1_301_569_500, 1_000 * U)
    # flipping is risk-adding too: +1 -> -2 realizes -1000 (equity stays 1000), IM 118000 * 0.0201 = 2371.8
    r = rejected(e, trade("bob", "alice", "BTC-PERP", "3", "59000"), "insufficient_margin")
    assert (r.account, r.needed, r.available) == ("alice", 2_371_800_000, 1_000 * U)
    # a new instrument on the same account adds risk as well
    rejected(e, trade("alice", "bob", CALL, "0.01", "3000"), "insufficient_margin")
    # reducing: alice sells 0.5 at 59000, taker too: realized 0.5 * (59000 - 60000) = -500; fee 14.75
    out = ok(e, trade("bob", "alice", "BTC-PERP", "0.5", "59000", "seller"))
    assert pos(e, "alice", "BTC-PERP") == (Decimal("0.5"), -30_000 * U)
    assert user(e, "alice") == 2_000 * U - 500 * U - 14_750_000
    assert (user_key("alice"), SETTLEMENT, 500 * U) in transfers(out, "realized_pnl")
    # closing the rest is allowed even if it leaves the account short of cash
    ok(e, trade("bob", "alice", "BTC-PERP", "0.5", "50000", "seller"))
    assert pos(e, "alice", "BTC-PERP") is None
    # 2000 - 500 - 14.75 - 0.5 * 10000 - 0.0005 * 25000 = -3527.25
    assert user(e, "alice") == -3_527_250_000


def test_counterparty_check_rejects_the_whole_trade():
    e = setup(("alice", "bob"), deposit=None)
    ok(e, {"type": "deposit", "account": "alice", "amount": "100000"})
    ok(e, {"type": "deposit", "account": "bob", "amount": "100"})
    r = rejected(e, trade("alice", "bob", "BTC-PERP", "1", "60000"), "insufficient_margin")
    assert r.account == "bob"  # the seller adds risk; IM 1203 > equity 100
    assert (r.needed, r.available) == (1_203 * U, 100 * U)


def test_bad_input_raises_and_leaves_state_untouched():
    from margin_engine.errors import InputError

    e = setup(("alice", "bob"))
    before = copy.deepcopy(snapshot(e))
    for cmd in (
        trade("alice", "alice", "BTC-PERP", "1", "60000"),  # self-trade
        trade("alice", "bob", "BTC-PERP", "0.000000001", "60000"),  # finer than a satoshi
        trade("alice", "bob", "BTC-PERP", "1", "0"),  # perps need a positive price
        {"type": "deposit", "account": "alice", "amount": "0.0000001"},  # finer than USDC's 6 decimals
        {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.11"},
        {"type": "apply_funding", "instrument": CALL, "rate": "0.01"},
        {"type": "nope"},
    ):
        with pytest.raises(InputError):
            e.submit(cmd)
        assert snapshot(e) == before


def test_instrument_names_are_canonical():
    e = setup(("alice", "bob"))
    # 060000 and 60000d0 are the 60000 strike: all three fills net into one position
    ok(e, trade("bob", "alice", "BTC-25DEC26-060000-C", "1", "3000"))
    ok(e, trade("bob", "alice", "BTC-25DEC26-60000d0-C", "1", "3000"))
    ok(e, trade("alice", "bob", CALL, "0.5", "3000"))
    assert e.state.accounts["bob"].positions.keys() == {CALL}
    assert pos(e, "bob", CALL) == (Decimal("1.5"), 0)


def test_option_close_by_trade_moves_premium_only():
    e = setup(("alice", "bob"))
    ok(e, trade("bob", "alice", CALL, "1", "3000"))
    out = ok(e, trade("alice", "bob", CALL, "1", "3500"))
    # bob sells back at 3500: premium 3500 alice -> bob, fee min(18, 437.5) = 18 each, no realized P&L transfer
    assert transfers(out, "premium") == [(user_key("alice"), user_key("bob"), 3_500 * U)]
    assert transfers(out, "realized_pnl") == []
    assert pos(e, "bob", CALL) is None and pos(e, "alice", CALL) is None
    # bob: -3000 - 18 + 3500 - 18 = +464; alice: +3000 - 18 - 3500 - 18 = -536
    assert user(e, "bob") == 100_000 * U + 464 * U
    assert user(e, "alice") == 100_000 * U - 536 * U
    assert bal(e, FEES) == 72 * U


def test_derive_profile_perp_margin_numbers():
    e = setup(("alice", "bob"), deposit="7000", profile=load_profile("derive"))
    ok(e, trade("alice", "bob", "BTC-PERP", "1", "60000", "buyer"))
    # derive mainnet: IM 10% of 60000 = 6000 (imPerpReq 0.1); taker fee 0.05% * 60000 = 30 -> equity 6970
    m = margin(e, "alice")
    assert (m.equity, m.initial_margin, m.free_collateral) == (6_970 * U, 6_000 * U, 970 * U)
    assert m.maintenance_margin == 3_900 * U  # mmPerpReq 0.065
    r = rejected(e, {"type": "withdraw", "account": "alice", "amount": "970.000001"}, "insufficient_margin")
    assert (r.needed, r.available) == (6_000 * U, 5_999_999_999)
    ok(e, {"type": "withdraw", "account": "alice", "amount": "970"})


# --------------------------------------------------------------------------------------- isolated


def test_isolated_allocation_grows_and_is_released_on_close():
    e = setup(("bob",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "50000"})
    alloc = allocation_key("iso", "BTC-PERP")

    out = ok(e, trade("iso", "bob", "BTC-PERP", "1", "60000", "buyer"))
    # IM 60000 * 0.02005 = 1203, value 0 -> 1203 USDC moved into the allocation; taker fee 30 from the pool
    assert transfers(out, "allocation") == [(user_key("iso"), alloc, 1_203 * U)]
    assert bal(e, alloc) == 1_203 * U
    assert user(e, "iso") == 50_000 * U - 30 * U - 1_203 * U
    assert margin(e, "iso").free_collateral == 50_000 * U - 30 * U - 1_203 * U

    ok(e, {"type": "set_market", "underlying": "BTC", "index": "61000", "vol": 0.6})
    out = ok(e, trade("iso", "bob", "BTC-PERP", "1", "61000"))
    # size 2, quote -121000, value 2 * 61000 - 121000 = 1000; IM 122000 * (0.02 + 0.0001) = 2452.2
    # needed 2452.2 - 1000 = 1452.2; held 1203 -> 249.2 USDC more
    assert transfers(out, "allocation") == [(user_key("iso"), alloc, 249_200_000)]
    assert bal(e, alloc) == 1_452_200_000

    out = ok(e, trade("bob", "iso", "BTC-PERP", "1", "62000"))
    # reduce 2 -> 1: kept basis -60500, raw -121000 + 62000 = -59000, realized +1500 into the allocation
    # (bob, short -2 at 121000, mirrors it: -1500 from his free balance)
    assert sorted(transfers(out, "realized_pnl")) == sorted(
        [(SETTLEMENT, alloc, 1_500 * U), (user_key("bob"), SETTLEMENT, 1_500 * U)]
    )
    assert transfers(out, "allocation") == [] and transfers(out, "release") == []
    assert bal(e, alloc) == 1_452_200_000 + 1_500 * U
    free = user(e, "iso")

    out = ok(e, trade("bob", "iso", "BTC-PERP", "1", "59000"))
    # close 1 -> 0: realized -60500 + 59000 = -1500 out of the allocation; then release the rest:
    # 1452.2 + 1500 - 1500 = 1452.2 USDC back to the free pool
    assert (alloc, SETTLEMENT, 1_500 * U) in transfers(out, "realized_pnl")
    assert transfers(out, "release") == [(alloc, user_key("iso"), 1_452_200_000)]
    assert bal(e, alloc) == 0
    assert user(e, "iso") == free + 1_452_200_000
    # overall: 50000 - 30 fee + 1500 - 1500 = 49970
    assert user(e, "iso") == 49_970 * U
    assert pos(e, "iso", "BTC-PERP") is None


def test_isolated_rejection_when_free_pool_cannot_fund_allocation():
    e = setup(("bob",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "1000"})
    r = rejected(e, trade("iso", "bob", "BTC-PERP", "1", "60000"), "insufficient_margin")
    # needs 1203 USDC in the allocation, the free pool holds 1000
    assert (r.account, r.needed, r.available) == ("iso", 1_203 * U, 1_000 * U)
    ok(e, {"type": "deposit", "account": "iso", "amount": "203"})
    ok(e, trade("iso", "bob", "BTC-PERP", "1", "60000"))
    assert user(e, "iso") == 0 and bal(e, allocation_key("iso", "BTC-PERP")) == 1_203 * U


def test_isolated_flip_realizes_into_allocation_then_tops_up():
    e = setup(("bob",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "50000"})
    alloc = allocation_key("iso", "BTC-PERP")
    ok(e, trade("iso", "bob", "BTC-PERP", "1", "60000"))  # allocation 1203
    out = ok(e, trade("bob", "iso", "BTC-PERP", "3", "60000"))
    # flip +1 -> -2 at 60000: realized 0; IM 120000 * 0.0201 = 2412, value 0 -> allocation 2412 (+1209)
    assert transfers(out, "realized_pnl") == []
    assert transfers(out, "allocation") == [(user_key("iso"), alloc, 1_209 * U)]
    assert bal(e, alloc) == 2_412 * U
    assert pos(e, "iso", "BTC-PERP") == (Decimal(-2), 120_000 * U)


def test_isolated_allocate_command():
    e = setup(("bob",))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "5000"})
    rejected(e, {"type": "allocate", "account": "bob", "instrument": "BTC-PERP", "amount": "1"}, "wrong_mode")
    rejected(e, {"type": "allocate", "account": "iso", "instrument": "BTC-PERP", "amount": "1"}, "no_position")
    ok(e, trade("iso", "bob", "BTC-PERP", "1", "60000"))  # allocation 1203, free 3797
    alloc = allocation_key("iso", "BTC-PERP")
    ok(e, {"type": "allocate", "account": "iso", "instrument": "BTC-PERP", "amount": "100"})
    assert (bal(e, alloc), user(e, "iso")) == (1_303 * U, 3_697 * U)
    r = rejected(
        e,
        {"type": "allocate", "account": "iso", "instrument": "BTC-PERP", "amount": "-100.000001"},
        "insufficient_margin",
    )
    assert (r.needed, r.available) == (1_203 * U, 1_202_999_999)
    ok(e, {"type": "allocate", "account": "iso", "instrument": "BTC-PERP", "amount": "-100"})
    # back to allocation 1203, free 3797: one unit more than the free pool is refused
    r = rejected(
        e,
        {"type": "allocate", "account": "iso", "instrument": "BTC-PERP", "amount": "3797.000001"},
        "insufficient_balance",
    )
    assert (r.needed, r.available) == (3_797_000_001, 3_797 * U)


# --------------------------------------------------------------------------- replay and determinism

SCENARIO = [
    {"type": "advance_time", "time": T0},
    {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6},
    {"type": "set_market", "underlying": "ETH", "index": "3000.5", "vol": {"25DEC26": 0.7, "26MAR27": 0.65}},
    {"type": "open_account", "account": "alice"},
    {"type": "open_account", "account": "bob", "mode": "cross"},  # deribit has no portfolio rules
    {"type": "open_account", "account": "iso", "mode": "isolated"},
    {"type": "deposit", "account": "alice", "asset": "USDC", "amount": "100000"},
    {"type": "deposit", "account": "bob", "asset": "USDC", "amount": "100000"},
    {"type": "deposit", "account": "bob", "asset": "BTC", "amount": "0.5"},
    {"type": "deposit", "account": "iso", "asset": "USDC", "amount": "50000"},
    trade("bob", "alice", "BTC-PERP", "2", "61000", "buyer"),
    trade("bob", "alice", CALL, "1", "3000"),
    trade("iso", "bob", "BTC-PERP", "1", "60000", "seller"),
    trade("iso", "alice", "ETH-PERP", "3.33333333", "3000.25", "buyer"),
    trade("alice", "iso", PUT, "0.5", "700"),
    {"type": "withdraw", "account": "alice", "asset": "USDC", "amount": "999999"},  # rejected
    {"type": "set_market", "underlying": "BTC", "index": "65000", "vol": 0.6},
    {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.00012345"},
    {"type": "apply_funding", "instrument": "ETH-PERP", "rate": "-0.0000777"},
    trade("alice", "bob", "BTC-PERP", "1", "65000"),
    trade("alice", "iso", "ETH-PERP", "5", "3100"),
    {"type": "withdraw", "account": "bob", "asset": "BTC", "amount": "0.1"},
    {"type": "advance_time", "time": EXPIRY},
    {"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "64000.123"},
    trade("bob", "iso", "BTC-PERP", "1", "64000"),
]


def _run(commands) -> tuple[Engine, list]:
    e = Engine(DERIBIT)
    outs = []
    for c in commands:
        out = e.submit(c)
        outs.append(out.to_json() if isinstance(out, Rejection) else [ev.to_json() for ev in out])
        audit(e.state)
    return e, outs


def test_scenario_is_accepted_as_expected():
    e, outs = _run(SCENARIO)
    codes = [o.get("code") if isinstance(o, dict) else None for o in outs]
    assert codes == [None] * 15 + ["insufficient_balance"] + [None] * 9


def test_replay_reproduces_ledger_and_positions():
    e, _ = _run(SCENARIO)
    r = replay(DERIBIT, e.journal)
    assert dict(r.ledger.balances) == dict(e.state.ledger.balances)
    assert {a: acct.positions for a, acct in r.accounts.items()} == {
        a: acct.positions for a, acct in e.state.accounts.items()
    }
    assert {a: acct.mode for a, acct in r.accounts.items()} == {a: acct.mode for a, acct in e.state.accounts.items()}
    assert (r.now_s, r.settled, r.deposits, r.withdrawals) == (
        e.state.now_s,
        e.state.settled,
        e.state.deposits,
        e.state.withdrawals,
    )
    assert {u: m.to_json() for u, m in r.markets.items()} == {u: m.to_json() for u, m in e.state.markets.items()}
    assert audit(r) == audit(e.state)
    assert [m.to_json() for m in Engine.margins(_with_state(r))] == [m.to_json() for m in e.margins()]


def _with_state(state):
    holder = Engine(state.profile)
    holder.state = state
    return holder


def test_events_round_trip_through_json():
    e, _ = _run(SCENARIO)
    assert {ev.type for ev in e.journal} == {
        "time_advanced",
        "market_set",
        "account_opened",
        "transfer",
        "trade",
        "position_changed",
        "funding_applied",
        "expiry_settled",
    }
    text = json.dumps([ev.to_json() for ev in e.journal])
    back = [event_from_json(d) for d in json.loads(text)]
    assert back == e.journal
    assert [ev.to_json() for ev in back] == [ev.to_json() for ev in e.journal]
    r = replay(DERIBIT, back)
    assert dict(r.ledger.balances) == dict(e.state.ledger.balances)
    assert {a: acct.positions for a, acct in r.accounts.items()} == {
        a: acct.positions for a, acct in e.state.accounts.items()
    }


def test_determinism_same_commands_same_event_json():
    _, a = _run(SCENARIO)
    _, b = _run(copy.deepcopy(SCENARIO))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_engine_apply_with_parsed_commands_matches_submit():
    e1, _ = _run(SCENARIO)
    e2 = Engine(DERIBIT)
    for c in SCENARIO:
        e2.apply(parse_command(c, DERIBIT))
    assert [ev.to_json() for ev in e1.journal] == [ev.to_json() for ev in e2.journal]


# ------------------------------------------------------------------------------- decide is a what-if


def test_decide_settle_expiry_does_not_touch_state():
    # Regression: State.scratch once shared the `settled` dict, so decide() alone marked the expiry
    # settled and the apply that followed was rejected already_settled (fixed in d6aa1a0).
    e = setup(("alice", "bob"))
    ok(e, trade("bob", "alice", CALL, "1", "3000"))
    ok(e, {"type": "advance_time", "time": EXPIRY})
    cmd = parse_command({"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "65000"}, DERIBIT)
    before = copy.deepcopy(snapshot(e))
    events = decide(e.state, cmd)
    assert not isinstance(events, Rejection)
    assert snapshot(e) == before
    assert not isinstance(e.apply(cmd), Rejection)


def test_decide_trade_and_withdraw_do_not_touch_state():
    e = setup(("alice", "bob"))
    ok(e, {"type": "open_account", "account": "iso", "mode": "isolated"})
    ok(e, {"type": "deposit", "account": "iso", "amount": "10000"})
    before = copy.deepcopy(snapshot(e))
    for c in (
        trade("bob", "alice", "BTC-PERP", "1", "60000", "buyer"),
        trade("iso", "alice", CALL, "1", "3000"),
        trade("bob", "iso", "BTC-PERP", "1", "60000"),
        {"type": "withdraw", "account": "alice", "amount": "10"},
        {"type": "apply_funding", "instrument": "BTC-PERP", "rate": "0.001"},
    ):
        out = decide(e.state, parse_command(c, DERIBIT))
        assert not isinstance(out, Rejection), (c, out)
        assert snapshot(e) == before, c


def test_a_bug_in_a_handler_is_an_invariant_violation_never_a_rejection(monkeypatch):
    """Only a missing market is `no_market`; any other error a handler raises (an InputError
    included) is a bug that must not pass for an ordinary rejection."""
    from margin_engine.engine import engine as engine_module
    from margin_engine.engine.commands import Deposit
    from margin_engine.errors import InputError, InvariantViolation

    e = Engine(load_profile("deribit"))
    e.submit({"type": "open_account", "account": "a"})

    def broken(state, cmd):
        raise InputError("liquidation.fraction", "a bug deep in the maths")

    monkeypatch.setitem(engine_module._HANDLERS, Deposit, broken)
    before = dict(e.state.ledger.balances)
    with pytest.raises(InvariantViolation, match="Deposit failed: InputError"):
        e.submit({"type": "deposit", "account": "a", "amount": "5"})
    assert dict(e.state.ledger.balances) == before
    monkeypatch.undo()
    e.submit({"type": "open_account", "account": "b"})
    for account in ("a", "b"):
        e.submit({"type": "deposit", "account": account, "amount": "100000"})
    out = e.submit(
        {"type": "trade", "buyer": "a", "seller": "b", "instrument": "ETH-PERP", "size": "1", "price": "3000"}
    )
    assert isinstance(out, Rejection) and out.code == "no_market"  # no set_market for ETH: the one rejection


@pytest.mark.parametrize(
    ("time", "message"),
    [
        (1_795_600_800_000, "looks like Unix milliseconds; send seconds (1795600800)"),
        (1_795_600_800_000_000, "looks like Unix microseconds"),
        (99_999_999_999_999_999_999, "Unix seconds must lie between 2009-01-03T00:00:00Z and 2200-01-01T00:00:00Z"),
        (-5, "Unix seconds must lie between"),
        ("1969-12-31T23:59:59Z", "Unix seconds must lie between"),
        ("9999-12-31T23:59:59Z", "Unix seconds must lie between"),
        ("2026-11-25T08:00:00", "needs a zone"),
    ],
)
def test_times_out_of_range_are_input_errors_naming_the_unit(time, message):
    from margin_engine.errors import InputError

    with pytest.raises(InputError, match="time") as info:
        parse_command({"type": "advance_time", "time": time}, load_profile("deribit"))
    assert message in info.value.message


def test_the_clock_moves_at_most_the_profile_step_in_one_command():
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    ok(e, {"type": "advance_time", "time": "2027-11-26T08:00:00Z"})  # 366 days: the limit itself
    r = rejected(e, {"type": "advance_time", "time": "2028-11-27T08:00:01Z"}, "clock_step_too_large")
    assert "limits.clock_step_max_s = 31,622,400 s" in r.message


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"type": "deposit", "account": "a", "amount": "1000000000001"}, "amount"),  # above 1e12
        ({"type": "fund_insurance", "amount": "1e13"}, "amount"),
        (
            {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1e10", "price": "1"},
            "size",
        ),
        (
            {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1", "price": "1e10"},
            "price",
        ),
        ({"type": "set_market", "underlying": "BTC", "index": "2e9", "vol": 0.6}, "index"),
        ({"type": "settle_expiry", "underlying": "BTC", "expiry": "25DEC26", "price": "1e12"}, "price"),
        ({"type": "deposit", "account": "a", "amount": "1_000"}, "amount"),
        ({"type": "deposit", "account": "a", "amount": "\u0661\u0662"}, "amount"),  # Arabic-Indic digits
        ({"type": "deposit", "account": "a", "amount": "1.0000000000000000000000000001"}, "amount"),  # 29 digits
        ({"type": "deposit", "account": "a", "amount": 10**40}, "amount"),
        ({"type": "deposit", "account": "a", "amount": True}, "amount"),
        ({"type": "deposit", "account": "a", "amount": {"$gt": 0}}, "amount"),
    ],
)
def test_numbers_beyond_the_profile_limits_are_input_errors_naming_the_field(command, field):
    from margin_engine.errors import InputError

    with pytest.raises(InputError) as info:
        parse_command(command, load_profile("deribit"))
    assert info.value.field == field, info.value


def test_a_deposit_may_not_lift_a_balance_past_the_limit():
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "open_account", "account": "a"})
    for _ in range(10):
        ok(e, {"type": "deposit", "account": "a", "amount": "1000000000000"})  # 10 x 1e12 = 1e13: the limit
    r = rejected(e, {"type": "deposit", "account": "a", "amount": "0.000001"}, "balance_limit")
    assert (r.needed, r.available) == (10**19 + 1, 10**19)


def test_fills_and_positions_are_bounded_in_notional_and_huge_accounts_still_margin():
    """The engine fuzz found a 1e9 ETH-PERP fill (5e13 USD) in portfolio mode ending in an int64
    OverflowError: fills and the positions they enlarge are bounded at limits.notional_max_usd
    (1e10 USD), and requirements past 2**62 units (a 100x index move) still margin. (Without
    Derive's open-interest caps, which would refuse these sizes first.)"""
    p = load_profile("derive-pmrm")
    uncapped = {
        u: x.model_copy(update={"perp": x.perp.model_copy(update={"open_interest_max_base": None})})
        for u, x in p.underlyings.items()
    }
    e = Engine(p.model_copy(update={"underlyings": uncapped}))
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    ok(e, {"type": "set_market", "underlying": "ETH", "index": "3000", "vol": "0.6"})
    for account, mode in (("p", "portfolio"), ("q", "cross")):
        ok(e, {"type": "open_account", "account": account, "mode": mode})
        for _ in range(5):
            ok(e, {"type": "deposit", "account": account, "amount": "1000000000000"})
    fill = {"type": "trade", "buyer": "p", "seller": "q", "instrument": "ETH-PERP", "price": "3000"}
    r = rejected(e, {**fill, "size": "1000000000"}, "notional_limit")  # 3e12 USD
    assert "3,000,000,000,000 USD" in r.message and "10,000,000,000" in r.message
    ok(e, {**fill, "size": "3000000"})  # 9e9 USD
    rejected(e, {**fill, "size": "500000"}, "notional_limit")  # the position would be 1.05e10 USD
    ok(e, {"type": "set_market", "underlying": "ETH", "index": "9000000", "vol": "0.6"})
    m = e.state.margin("p")  # long 3e6 ETH at 9e6: worth 2.7e13 USD; the risk matrix's loss ~4.9e12 USD
    assert m.equity > 2**63 and m.maintenance_margin > 2**62 and not m.liquidatable
    assert [x["account"] for x in e.liquidation_queue()] == ["q"]  # short the same: 2.7e13 USD under


def test_a_fill_far_from_the_mark_is_refused():
    """Issue 12: a risk-reducing fill at 1e12 once left an account at -999,999,835,918 USDC."""
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"})
    for account in ("a", "b"):
        ok(e, {"type": "open_account", "account": account})
        ok(e, {"type": "deposit", "account": account, "amount": "100000"})
    fill = {"type": "trade", "buyer": "a", "seller": "b", "instrument": "BTC-PERP", "size": "1"}
    ok(e, {**fill, "price": "60000"})
    back = {**fill, "buyer": "b", "seller": "a"}
    r = rejected(e, {**back, "price": "1000000000"}, "price_out_of_band")  # reduces a's risk, still refused
    assert "[30000.00, 90000.00]" in r.message
    ok(e, {**back, "price": "90000"})  # the band's edge: 50% of the index
    call = {**fill, "instrument": "BTC-25DEC26-50000-C"}
    rejected(e, {**call, "price": "70000.01"}, "price_out_of_band")  # above intrinsic 10,000 + 60,000
    ok(e, {**call, "price": "12000"})
    put = {**fill, "instrument": "BTC-25DEC26-50000-P"}
    rejected(e, {**put, "price": "60000.01"}, "price_out_of_band")  # above intrinsic 0 + the index 60,000
    ok(e, {**put, "price": "0"})

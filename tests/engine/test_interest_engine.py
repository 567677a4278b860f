"""Interest on borrowed USDC (profile `[interest]`, Derive's model): accrued when the clock crosses
an accrual boundary, paid by borrowers to the fund and lenders to the unit; borrow caps."""

from __future__ import annotations

import math

from engine_checks import ok, rejected

from margin_engine.engine import Engine
from margin_engine.engine.events import InterestAccrued, Transferred
from margin_engine.ledger.ledger import FEES, INSURANCE, user_key
from margin_engine.margin.profile import InterestParams, load_profile

T0 = "2026-11-25T08:00:00Z"
CALL = "BTC-25DEC26-60000-C"


def engine(**interest) -> Engine:
    e = Engine(load_profile("deribit").model_copy(update={"interest": InterestParams(**interest)}))
    ok(e, {"type": "advance_time", "time": T0})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    ok(e, {"type": "open_account", "account": "alice", "mode": "cross"})
    ok(e, {"type": "deposit", "account": "alice", "asset": "BTC", "amount": "1"})
    ok(e, {"type": "open_account", "account": "bob", "mode": "cross"})
    ok(e, {"type": "deposit", "account": "bob", "asset": "USDC", "amount": "100000"})
    return e


def buy_call(size="1"):
    return {"type": "trade", "buyer": "alice", "seller": "bob", "instrument": CALL, "size": size, "price": "4018"}


def usdc(e: Engine, key: str) -> int:
    return e.state.ledger.balance(key, "USDC")


def test_a_loan_accrues_at_the_utilization_rate_and_pays_fund_and_lenders():
    e = engine()
    ok(e, buy_call())
    owed, supply = -usdc(e, user_key("alice")), usdc(e, user_key("bob"))
    assert owed > 4_018_000_000  # the premium and its fee, borrowed against 1 BTC
    fund0, fees0 = usdc(e, INSURANCE), usdc(e, FEES)
    out = ok(e, {"type": "advance_time", "time": "2026-11-25T09:30:00Z"})  # crosses 09:00 once
    accrued = next(x for x in out if isinstance(x, InterestAccrued))
    rate = 0.02 + owed / supply * 0.08  # below the 85% kink
    assert float(accrued.rate) == rate and float(accrued.utilization) == owed / supply
    paid = math.ceil(owed * math.expm1(rate * 3600 / (365 * 86_400)))
    assert accrued.elapsed_s == 3600 and accrued.total_units == paid
    assert -usdc(e, user_key("alice")) == owed + paid
    assert usdc(e, INSURANCE) - fund0 == paid * 2 // 10  # Derive's CASH_SM_FEE: 20%
    lender = (paid - paid * 2 // 10) * supply // supply
    assert usdc(e, user_key("bob")) - supply == lender
    assert usdc(e, FEES) - fees0 == paid - paid * 2 // 10 - lender  # the rounding
    assert {t.reason for t in out if isinstance(t, Transferred)} == {"interest"}


def test_nothing_accrues_within_an_interval_and_a_long_jump_compounds_once():
    e = engine()
    ok(e, buy_call())
    owed = -usdc(e, user_key("alice"))
    assert not any(
        isinstance(x, InterestAccrued) for x in ok(e, {"type": "advance_time", "time": "2026-11-25T08:59:59Z"})
    )
    out = ok(e, {"type": "advance_time", "time": "2026-12-25T08:00:00Z"})  # 720 boundaries: 30 days
    accrued = next(x for x in out if isinstance(x, InterestAccrued))
    assert accrued.elapsed_s == 30 * 86_400
    assert accrued.total_units == math.ceil(owed * math.expm1(float(accrued.rate) * 30 / 365))


def test_borrow_caps_refuse_a_trade_that_would_owe_more():
    e = engine(borrow_max_usd_per_account=5_000)
    ok(e, buy_call("1"))
    r = rejected(e, buy_call("0.5"), "borrow_cap")
    assert r.account == "alice" and r.cap == "5000.000000" and r.unit == "USDC"
    e = engine(borrow_max_usd_total=3_000)
    r = rejected(e, buy_call("1"), "borrow_cap")
    assert r.current == "0.000000" and r.account is None


def test_the_accrual_reads_in_words_and_its_span_is_not_a_date():
    from margin_engine.engine.describe import event_view

    e = engine()
    ok(e, buy_call())
    out = ok(e, {"type": "advance_time", "time": "2026-11-25T09:30:00Z"})
    view = event_view(next(x for x in out if isinstance(x, InterestAccrued)), e.state.profile)
    assert view["elapsed_s"] == 3600 and "elapsed" not in view
    assert (
        view["text"].startswith("interest 2.") and "a year at" in view["text"] and "USDC from borrowers" in view["text"]
    )

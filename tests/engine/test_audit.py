"""The audit catches what would lose or create a unit: money moved without a deposit or withdrawal
on record, a ledger out of balance, a perp quote the settlement account does not hold."""

from dataclasses import replace

import pytest
from engine_checks import ok

from margin_engine.engine import Engine, audit
from margin_engine.errors import InvariantViolation
from margin_engine.ledger.ledger import EXTERNAL, Transfer
from margin_engine.margin.profile import load_profile


@pytest.fixture
def engine():
    e = Engine(load_profile("deribit"))
    ok(e, {"type": "advance_time", "time": 1_795_593_600})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"})
    for a in ("alice", "bob"):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "amount": "100000"})
    ok(e, {"type": "trade", "buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "60000"})
    return e


def test_a_consistent_state_reports_each_pool(engine):
    row = audit(engine.state)["USDC"]
    assert row["deposits"] == 200_000_000_000 and row["withdrawals"] == 0
    # no aggressor, no fee; the long's and the short's quotes (-60,000 and +60,000) net out
    assert (row["users"], row["insurance"], row["fees"], row["settlement"]) == (200_000_000_000, 0, 0, 0)


def test_money_out_without_a_withdrawal_on_record_breaks_conservation(engine):
    engine.state.ledger.post(Transfer("user:alice", EXTERNAL, "USDC", 1, "gift"))
    with pytest.raises(InvariantViolation, match="conservation broken for USDC"):
        audit(engine.state)


def test_a_ledger_out_of_balance_breaks_conservation(engine):
    engine.state.ledger.balances[("user:bob", "USDC")] += 1  # a unit from nowhere
    with pytest.raises(InvariantViolation, match="conservation broken for USDC"):
        audit(engine.state)


def test_a_perp_quote_the_settlement_account_does_not_hold_is_caught(engine):
    s = engine.state
    alice = s.accounts["alice"]
    perp = alice.positions["BTC-PERP"]
    s.accounts["alice"] = replace(alice, positions={"BTC-PERP": replace(perp, quote=perp.quote - 1)})
    with pytest.raises(InvariantViolation, match="settlement 0 != open perp quotes -1"):
        audit(s)

"""Isolated markets (`perp.isolated_market`, dYdX v4's market type ISOLATED): the market's own fund
takes its penalties and alone pays its bankruptcies, its traders hold nothing else, and an
unresolved deficit gates withdrawals of that market only. Hand-worked numbers under the dydx
profile (IMF 5%, MMF 3%, taker 5 bps, maker 1 bp, liquidation fee 0.5% to the fund)."""

from __future__ import annotations

import json

import pytest
from engine_checks import buyer_takes as trade
from engine_checks import ok, rejected

from margin_engine.engine import Engine
from margin_engine.engine.events import BankruptcyResolved, event_from_json
from margin_engine.engine.isolated_markets import withdrawal_gate
from margin_engine.engine.state import replay
from margin_engine.engine.views import state_json
from margin_engine.errors import InputError
from margin_engine.ledger.ledger import INSURANCE, market_fund_key, user_key
from margin_engine.margin.profile import load_profile
from margin_engine.storage.snapshot import state_from_json, state_to_json

U = 10**6
ETH_FUND = market_fund_key("ETH-PERP")


def isolated_eth(mode: str = "socialized"):
    """dydx with ETH-PERP an isolated market and the given waterfall after the fund."""
    p = load_profile("dydx")
    eth = p.underlyings["ETH"]
    perp = eth.perp.model_copy(update={"isolated_market": True})
    wf = p.liquidation.waterfall.model_copy(update={"mode": mode})
    liq = p.liquidation.model_copy(update={"waterfall": wf})
    return p.model_copy(
        update={"underlyings": {**p.underlyings, "ETH": eth.model_copy(update={"perp": perp})}, "liquidation": liq}
    )


def book(mode: str = "socialized", market_fund: int = 100) -> Engine:
    """iso: 1,000 USDC long 5 ETH-PERP at 3,000 (taker: 7.50 fee); maker: short 5 against 10 BTC of
    collateral and no USDC (its 1.50 fee is a debt, so it is no depositor); keeper and bob: cross
    accounts with 100,000 USDC; the main fund 50,000, ETH-PERP's own fund `market_fund`."""
    e = Engine(isolated_eth(mode))
    ok(e, {"type": "advance_time", "time": "2026-11-25T08:00:00Z"})
    ok(e, {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": 0.6})
    ok(e, {"type": "set_market", "underlying": "ETH", "index": "3000", "vol": 0.7})
    for a, asset, amount in (("iso", "USDC", "1000"), ("maker", "BTC", "10"), ("keeper", "USDC", "100000")):
        ok(e, {"type": "open_account", "account": a, "mode": "cross"})
        ok(e, {"type": "deposit", "account": a, "asset": asset, "amount": amount})
    ok(e, {"type": "open_account", "account": "bob", "mode": "cross"})
    ok(e, {"type": "deposit", "account": "bob", "asset": "USDC", "amount": "100000"})
    ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": "50000"})
    ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": str(market_fund), "market": "ETH-PERP"})
    ok(e, trade("iso", "maker", "ETH-PERP", "5", "3000"))
    return e


def balance(e: Engine, key: str) -> int:
    return e.state.ledger.balance(key, "USDC")


def eth_at(e: Engine, index: str) -> None:
    ok(e, {"type": "set_market", "underlying": "ETH", "index": index, "vol": 0.7})


def test_an_isolated_markets_trader_holds_nothing_else():
    e = book()
    assert balance(e, user_key("iso")) == 1_000 * U - 7_500_000  # 5 bps of 15,000
    r = rejected(e, trade("iso", "bob", "BTC-PERP", "0.01", "60000"), "isolated_market")
    assert r.account == "iso" and "ETH-PERP is an isolated market" in r.message
    # and the other way: bob trades BTC, then cannot take ETH-PERP into the same account
    ok(e, trade("bob", "keeper", "BTC-PERP", "0.1", "60000"))
    r = rejected(e, trade("bob", "iso", "ETH-PERP", "1", "3000"), "isolated_market")
    assert r.account == "bob"
    ok(e, trade("maker", "iso", "ETH-PERP", "1", "3000"))  # within the market: fine


def test_a_liquidation_penalty_goes_to_the_markets_fund():
    e = book()
    # ETH 2,860: iso's equity 1,000 - 7.50 - 5 x 140 = 292.50 < MM 3% x 14,300 = 429
    eth_at(e, "2860")
    out = ok(e, {"type": "start_liquidation", "account": "iso", "liquidator": "keeper"})
    to_fund = [x for x in out if x.type == "transfer" and x.reason == "liquidation_penalty"]
    assert [x.credit for x in to_fund] == [ETH_FUND]  # insurance_share 1: all of the 0.5% fee
    fill = next(x for x in out if x.type == "liquidation_fill")
    closed = abs(fill.fraction * 5)
    assert to_fund[0].amount_units == round(closed * 2860 * U * 5 / 1000)  # 0.5% of the notional taken
    assert balance(e, ETH_FUND) == 100 * U + to_fund[0].amount_units
    assert balance(e, INSURANCE) == 50_000 * U  # the main fund sees none of it


def test_the_markets_fund_alone_pays_and_the_gate_closes_that_market_only():
    e = book()
    # ETH 2,700: iso's equity 1,000 - 7.50 - 1,500 = -507.50: bankrupt
    eth_at(e, "2700")
    out = ok(e, {"type": "start_liquidation", "account": "iso", "liquidator": "keeper"})
    (b,) = [x for x in out if isinstance(x, BankruptcyResolved)]
    # the market's fund pays what it has (100); its only other trader (maker) holds no free USDC;
    # the keeper joined the market in this liquidation and the cross accounts never pay
    assert (b.fund, b.deficit_units, b.insurance_units, b.socialized_units, b.uncovered_units) == (
        ETH_FUND,
        507_500_000,
        100 * U,
        0,
        407_500_000,
    )
    assert balance(e, ETH_FUND) == 0 and balance(e, INSURANCE) == 50_000 * U
    assert balance(e, user_key("bob")) == 100_000 * U
    # withdrawals: the cross pool is open, the ETH-PERP market is gated
    assert withdrawal_gate(e.state, "bob") is None
    for account in ("maker", "keeper", "iso"):  # keeper now holds the long it took over
        assert withdrawal_gate(e.state, account) is not None
    withdraw = {"type": "withdraw", "asset": "USDC", "amount": "1"}
    ok(e, {**withdraw, "account": "bob"})
    r = rejected(e, {**withdraw, "account": "keeper"}, "withdrawals_gated")
    assert "isolated market ETH-PERP" in r.message
    # the market's fund is refilled and the account resolved again: the market's gate opens
    ok(e, {"type": "fund_insurance", "asset": "USDC", "amount": "1000", "market": "ETH-PERP"})
    out = ok(e, {"type": "start_liquidation", "account": "iso", "liquidator": "keeper"})
    (b,) = [x for x in out if isinstance(x, BankruptcyResolved)]
    assert (b.fund, b.insurance_units, b.uncovered_units) == (ETH_FUND, 407_500_000, 0)
    assert balance(e, ETH_FUND) == 1_000 * U - 407_500_000 and balance(e, user_key("iso")) == 0
    assert e.state.bankrupt_funds == {} and withdrawal_gate(e.state, "keeper") is None
    ok(e, {**withdraw, "account": "keeper"})


def test_adl_within_the_market_after_its_fund():
    e = book(mode="adl")
    eth_at(e, "2700")
    out = ok(e, {"type": "start_liquidation", "account": "iso", "liquidator": "keeper"})
    (b,) = [x for x in out if isinstance(x, BankruptcyResolved)]
    # 100 from the market's fund, the other 407.50 from the short it is deleveraged against
    assert (b.fund, b.insurance_units, b.adl_units, b.uncovered_units) == (ETH_FUND, 100 * U, 407_500_000, 0)
    (d,) = [x for x in out if x.type == "deleveraged"]
    assert (d.counterparty, d.size) == ("maker", 5)  # in the bankrupt side's direction
    assert balance(e, INSURANCE) == 50_000 * U


def test_market_funds_are_in_the_state_view_snapshot_and_journal():
    e = book()
    view = state_json(e.state)
    assert view["market_funds"] == {"ETH-PERP": {"USDC": "100.000000"}}
    assert view["insurance_fund"] == {"USDC": "50000.000000"}
    eth_at(e, "2700")
    ok(e, {"type": "start_liquidation", "account": "iso", "liquidator": "keeper"})
    assert state_json(e.state)["market_funds"] == {"ETH-PERP": {}}
    restored = state_from_json(e.state.profile, json.loads(json.dumps(state_to_json(e.state))))
    assert restored.bankrupt_funds == {"iso": ETH_FUND} and restored.ledger == e.state.ledger
    again = replay(e.state.profile, [event_from_json(json.loads(json.dumps(x.to_json()))) for x in e.journal])
    assert again.bankrupt_funds == e.state.bankrupt_funds and again.ledger == e.state.ledger


def test_a_cross_bankruptcy_keeps_its_event_text():
    """A bankruptcy the main fund pays leaves `fund` out of its JSON: older journals hash the same."""
    b = BankruptcyResolved("a", 5, 5, 0, 0, 0)
    assert "fund" not in b.to_json() and event_from_json(b.to_json()) == b
    assert event_from_json(BankruptcyResolved("a", 5, 5, 0, 0, 0, ETH_FUND).to_json()).fund == ETH_FUND


def test_funding_an_unknown_or_cross_market_is_refused():
    e = Engine(isolated_eth())
    with pytest.raises(InputError, match="not an isolated market"):
        e.submit({"type": "fund_insurance", "asset": "USDC", "amount": "1", "market": "BTC-PERP"})
    with pytest.raises(InputError, match="not an isolated market"):
        e.submit({"type": "fund_insurance", "asset": "USDC", "amount": "1", "market": "ETH-25DEC26-3000-C"})
    with pytest.raises(InputError, match="USDC only"):
        e.submit({"type": "fund_insurance", "asset": "BTC", "amount": "1", "market": "ETH-PERP"})

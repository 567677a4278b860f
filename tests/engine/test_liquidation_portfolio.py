"""Portfolio accounts under the fixed mechanism: the largest contributor to the worst scenario goes first."""

from engine_checks import ok

from margin_engine.engine import Engine
from margin_engine.margin.profile import load_profile


def run(engine, cmds):
    out = None
    for c in cmds:
        out = ok(engine, c)
    return out


def test_short_call_closed_before_its_hedge():
    e = Engine(load_profile("deribit-pm"))
    run(
        e,
        [
            {"type": "advance_time", "time": "2026-11-25T08:00:00Z"},
            {"type": "set_market", "underlying": "BTC", "index": "60000", "vol": "0.6"},
            {"type": "open_account", "account": "pm", "mode": "portfolio"},
            {"type": "open_account", "account": "maker"},
            {"type": "open_account", "account": "keeper"},
            {"type": "deposit", "account": "pm", "amount": "40000"},
            {"type": "deposit", "account": "maker", "amount": "10000000"},
            {"type": "deposit", "account": "keeper", "amount": "10000000"},
            {
                "type": "trade",
                "buyer": "pm",
                "seller": "maker",
                "instrument": "BTC-25DEC26-80000-C",
                "size": "10",
                "price": "300",
            },
            {
                "type": "trade",
                "buyer": "maker",
                "seller": "pm",
                "instrument": "BTC-25DEC26-70000-C",
                "size": "10",
                "price": "1000",
            },
            {"type": "set_market", "underlying": "BTC", "index": "72000", "vol": "1.3"},
        ],
    )
    before = {m.id: m for m in e.margins()}["pm"]
    assert before.liquidatable
    events = run(e, [{"type": "start_liquidation", "account": "pm", "liquidator": "keeper"}])
    closed = [ev.instrument for ev in events if ev.type == "position_changed" and ev.account == "pm"]
    assert closed[0] == "BTC-25DEC26-70000-C"  # the short call loses most in the worst scenario
    after = {m.id: m for m in e.margins()}["pm"]
    assert not after.liquidatable
    fill = next(ev for ev in events if ev.type == "liquidation_fill")
    # 0.75% of the underlying notional closed (10 BTC per position at 72,000 = 5,400 each), capped at
    # what the account has left; half to the keeper, half (the remainder) to the insurance fund
    assert fill.penalty_units <= 5_400_000_000 * len(closed)
    assert fill.insurance_fee_units == fill.penalty_units - fill.penalty_units // 2

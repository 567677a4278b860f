"""Checks the engine tests share: a command accepted (and conservation audited), or rejected with
its code and the state left exactly as it was."""

import copy

import pytest

from margin_engine.engine import Engine, Rejection, audit


def snapshot(engine: Engine) -> dict:
    """Everything a command may change, as plain comparable data."""
    s = engine.state
    return {
        "now": s.now_s,
        "balances": {k: v for k, v in dict(s.ledger.balances).items() if v != 0},
        "positions": {a: {n: (p.size, p.quote) for n, p in acct.positions.items()} for a, acct in s.accounts.items()},
        "modes": {a: acct.mode for a, acct in s.accounts.items()},
        "markets": {u: m.to_json() for u, m in s.markets.items()},
        "settled": dict(s.settled),
        "holders": {n: list(h) for n, h in s.holders.items() if h},
        "deposits": dict(s.deposits),
        "withdrawals": dict(s.withdrawals),
        "auctions": dict(s.auctions),
        "bankrupt": dict(s.bankrupt),
        "bankrupt_funds": dict(s.bankrupt_funds),
        "started": s.liquidations_started,
        "oracles": dict(s.oracles),
        "journal": len(engine.journal),
    }


def buyer_takes(buyer: str, seller: str, instrument: str, size: str, price: str) -> dict:
    """A trade command the buyer takes (pays the taker fee)."""
    return {
        "type": "trade",
        "buyer": buyer,
        "seller": seller,
        "instrument": instrument,
        "size": size,
        "price": price,
        "aggressor": "buyer",
    }


def ok(engine: Engine, cmd: dict) -> list:
    out = engine.submit(cmd)
    assert not isinstance(out, Rejection), f"{cmd} rejected: {out}"
    audit(engine.state)
    return out


def rejected(engine: Engine, cmd: dict, code: str) -> Rejection:
    before = copy.deepcopy(snapshot(engine))
    out = engine.submit(cmd)
    assert isinstance(out, Rejection), f"{cmd} accepted: {out}"
    assert out.code == code, out
    assert snapshot(engine) == before, "a rejected command changed the state"
    audit(engine.state)
    return out


def scan_is_fresh(engine: Engine) -> None:
    """The engine's cached margin scan equals each account margined alone from a fresh view
    (a stale cached account or a batching error shows here)."""
    from margin_engine.errors import InputError
    from margin_engine.margin.calculator import compute_margins

    s = engine.state
    try:
        alone_all = [compute_margins([s.view(a)], s.markets, s.profile, s.now_s or 0)[0] for a in s.accounts]
    except InputError:  # a market not set yet: the scan must say so too
        with pytest.raises(InputError, match="no market for"):
            engine.margin_totals()
        return
    totals = engine.margin_totals()
    for i, (account, alone) in enumerate(zip(s.accounts, alone_all, strict=True)):
        got = (totals.equity[i], totals.initial_margin[i], totals.maintenance_margin[i], totals.liquidatable[i])
        assert got == (alone.equity, alone.initial_margin, alone.maintenance_margin, alone.liquidatable), account
        assert totals.free_collateral[i] == alone.free_collateral, account


def replays_and_repeats(engine: Engine, commands: list[dict]) -> None:
    """The journal, through JSON, replays to the same state; the same commands on a fresh engine
    give the same events, bit for bit."""
    import json

    from margin_engine.engine import event_from_json, replay

    s, profile = engine.state, engine.state.profile
    r = replay(profile, [event_from_json(json.loads(json.dumps(e.to_json()))) for e in engine.journal])
    assert {k: v for k, v in dict(r.ledger.balances).items() if v} == {
        k: v for k, v in dict(s.ledger.balances).items() if v
    }
    assert {a: x.positions for a, x in r.accounts.items()} == {a: x.positions for a, x in s.accounts.items()}
    assert (r.now_s, r.settled) == (s.now_s, s.settled)
    assert dict(r.auctions) == dict(s.auctions) and dict(r.bankrupt) == dict(s.bankrupt)
    assert r.liquidations_started == s.liquidations_started
    twin = Engine(profile)
    for cmd in commands:
        twin.submit(cmd)
    assert json.dumps([e.to_json() for e in twin.journal]) == json.dumps([e.to_json() for e in engine.journal])

"""Checks the engine tests share: a command accepted (and conservation audited), or rejected with
its code and the state left exactly as it was."""

import copy

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
        "started": s.liquidations_started,
        "oracles": dict(s.oracles),
        "journal": len(engine.journal),
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

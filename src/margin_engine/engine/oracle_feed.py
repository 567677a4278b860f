"""The `oracle_update` command and the fail-closed policy that reads the guarded mark.

A source's update must be signed by that source's registered key; the guards (margin_engine.oracle)
then accept or reject it (replayed, future-dated, invalid, too uncertain). An accepted update
moves the market's index to the guarded mark. While an underlying's mark is stale or halted,
risk-adding trades, withdrawals of accounts exposed to it and liquidations on it wait; deposits
and risk-reducing trades go on.
"""

from __future__ import annotations

from margin_engine.engine.commands import OracleUpdate
from margin_engine.engine.events import Event, OracleUpdated
from margin_engine.engine.state import State
from margin_engine.engine.tx import reject
from margin_engine.ledger.ledger import user_key
from margin_engine.oracle.aggregator import OracleState, apply_update
from margin_engine.oracle.signing import KeyRegistry


def oracle_update(state: State, cmd: OracleUpdate) -> list[Event]:
    u = cmd.update
    config = state.profile.oracle
    if u.source not in config.sources:
        raise reject(
            "unknown_source",
            f"{u.source!r} is not a registered price source; registered: {', '.join(sorted(config.sources)) or 'none'}",
        )
    if cmd.signature is None:
        raise reject("unsigned", f"updates from {u.source!r} must be signed with its Ed25519 key")
    if not KeyRegistry.from_hex({u.source: config.sources[u.source]}, "oracle.sources").verify(u, cmd.signature):
        raise reject("bad_signature", f"the signature is not {u.source!r}'s over this update")
    if state.now_s is None:
        raise reject("time_unset", "the engine clock is not set; send advance_time first")
    if u.underlying not in state.markets:
        raise reject("no_market", f"no market for {u.underlying}: set_market gives it a vol surface first")
    params = config.params_for(u.underlying)
    _, outcome = apply_update(state.oracles.get(u.underlying, OracleState(u.underlying)), u, params, state.now_s)
    if not outcome.accepted:
        raise reject(f"oracle_{outcome.reason}", outcome.message)
    mark = outcome.mark
    return [
        OracleUpdated(
            u.underlying, u.source, u.price, u.confidence, u.volume, u.timestamp_s, mark.price, str(mark.status)
        )
    ]


def require_fresh(state: State, underlyings, what: str) -> None:
    """Fail closed: reject when any of the underlyings' guarded mark is stale or halted."""
    for underlying in sorted(set(underlyings)):
        mark = state.oracle_blocked(underlying)
        if mark is not None:
            raise reject(
                f"oracle_{mark.status}", f"{what} waits: the {underlying} mark is {mark.status} ({mark.reason})"
            )


def exposure(state: State, account: str) -> set[str]:
    """Underlyings an account's positions and crypto collateral depend on."""
    names = {p.instrument.underlying for p in state.accounts[account].positions.values()}
    settle = state.profile.settlement_asset
    return names | {a for a in state.profile.assets if a != settle and state.ledger.balance(user_key(account), a)}

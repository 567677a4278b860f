"""The `oracle_update` command and the fail-closed policy that reads the guarded mark.

A source's update must be signed by that source's registered key; the guards (margin_engine.oracle)
then accept or reject it (replayed, future-dated, invalid, too uncertain). An accepted update
moves the market's index to the guarded mark. While an underlying's mark is stale or halted,
risk-adding trades, withdrawals of accounts exposed to it and liquidations on it wait; deposits
and risk-reducing trades go on.

Sources are registered in the profile's `[oracle.sources]` or by `register_source` (journaled, so they
replay and survive snapshots); `revoke_source` removes the latter.
"""

from __future__ import annotations

from typing import Any

from margin_engine.engine.commands import OracleUpdate, RegisterSource, RevokeSource
from margin_engine.engine.events import Event, OracleUpdated, SourceRegistered, SourceRevoked
from margin_engine.engine.state import State, guard
from margin_engine.engine.tx import reject
from margin_engine.ledger.ledger import user_key
from margin_engine.oracle.aggregator import OracleState
from margin_engine.oracle.signing import KeyRegistry

SOURCES_REGISTERED_MAX = 64  # sources register_source may add (the guards use at most sources_max per underlying)


def registered_sources(state: State) -> dict[str, tuple[str, tuple[str, ...], str]]:
    """Source -> (public key hex, underlyings it may quote, where it is registered: `profile` or `command`)."""
    every = tuple(sorted(state.profile.underlyings))
    out = {name: (key.lower(), every, "profile") for name, key in state.profile.oracle.sources.items()}
    for name, s in state.sources.items():
        out.setdefault(name, (s.public_key, s.underlyings, "command"))
    return dict(sorted(out.items()))


def sources_json(state: State) -> list[dict[str, Any]]:
    """The registered sources, by name: what `oracle source list` and `GET /v1/oracle/sources` show."""
    return [
        {"source": name, "public_key": key, "underlyings": list(underlyings), "registered_by": by}
        for name, (key, underlyings, by) in registered_sources(state).items()
    ]


def register_source(state: State, cmd: RegisterSource) -> list[Event]:
    known = registered_sources(state)
    if cmd.source in known:
        key, _, by = known[cmd.source]
        where = "in the profile's [oracle.sources]" if by == "profile" else "by register_source"
        which = "this key" if key == cmd.public_key else "another key (revoke_source it first to change keys)"
        raise reject("source_exists", f"{cmd.source!r} is already registered {where}, with {which}")
    for name, (key, _, _) in known.items():
        if key == cmd.public_key:
            raise reject(
                "duplicate_key",
                f"this public key is registered for {name!r} already: one key per source, or one signer "
                "would count as several sources in the median",
            )
    if len(state.sources) >= SOURCES_REGISTERED_MAX:
        raise reject("sources_limit", f"{SOURCES_REGISTERED_MAX} sources are registered already; revoke one first")
    return [SourceRegistered(cmd.source, cmd.public_key, list(cmd.underlyings))]


def revoke_source(state: State, cmd: RevokeSource) -> list[Event]:
    if cmd.source in state.profile.oracle.sources:
        raise reject(
            "source_in_profile",
            f"{cmd.source!r} is registered by the profile's [oracle.sources]; only another profile removes it",
        )
    source = state.sources.get(cmd.source)
    if source is None:
        names = ", ".join(registered_sources(state)) or "none"
        raise reject("unknown_source", f"{cmd.source!r} is not a registered price source; registered: {names}")
    return [SourceRevoked(source.source, source.public_key)]


def oracle_update(state: State, cmd: OracleUpdate) -> list[Event]:
    u = cmd.update
    config = state.profile.oracle
    sources = registered_sources(state)
    if u.source not in sources:
        raise reject(
            "unknown_source",
            f"{u.source!r} is not a registered price source; registered: {', '.join(sources) or 'none'}",
        )
    public_key, underlyings, _ = sources[u.source]
    if u.underlying not in underlyings:
        raise reject(
            "underlying_not_allowed", f"{u.source!r} is registered for {', '.join(underlyings)}, not {u.underlying}"
        )
    if cmd.signature is None:
        raise reject("unsigned", f"updates from {u.source!r} must be signed with its Ed25519 key")
    if not KeyRegistry.from_hex({u.source: public_key}, "oracle.sources").verify(u, cmd.signature):
        raise reject("bad_signature", f"the signature is not {u.source!r}'s over this update")
    if state.now_s is None:
        raise reject("time_unset", "the engine clock is not set; send advance_time first")
    if u.underlying not in state.markets:
        raise reject("no_market", f"no market for {u.underlying}: set_market gives it a vol surface first")
    params = config.params_for(u.underlying)
    _, outcome = guard(state.oracles.get(u.underlying, OracleState(u.underlying)), u, params, state.now_s)
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

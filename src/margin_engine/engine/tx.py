"""What every command handler builds with: a transaction of events on a scratch state, and
rejections as values with the numbers behind them."""

from __future__ import annotations

from decimal import Decimal

from margin_engine.engine.events import Event, PositionChanged, Transferred
from margin_engine.engine.rejection import Rejection
from margin_engine.engine.state import Position, State, evolve
from margin_engine.instruments.names import Instrument
from margin_engine.ledger.ledger import SETTLEMENT, allocation_key, user_key
from margin_engine.ledger.units import decimal_to_units_half_even
from margin_engine.margin.result import AccountMargin


class Tx:
    """Events of one command, each applied at once to a scratch state that later steps read."""

    def __init__(self, state: State):
        self.before = state  # as the command found it (read, never written)
        self.scratch = state.scratch()
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        evolve(self.scratch, event)
        self.events.append(event)

    def transfer(self, debit: str, credit: str, asset: str, amount: int, reason: str) -> None:
        """A signed amount: negative moves money the other way; zero moves nothing."""
        if amount < 0:
            debit, credit, amount = credit, debit, -amount
        if amount:
            self.emit(Transferred(debit, credit, asset, amount, reason))

    def margin(self, account: str) -> AccountMargin:
        return self.scratch.margin(account)


class Reject(Exception):
    def __init__(self, rejection: Rejection):
        self.rejection = rejection


def reject(code: str, message: str, **numbers) -> Reject:
    return Reject(Rejection(code, message, **numbers))


def require_account(state: State, account: str) -> None:
    if account not in state.accounts:
        raise reject("unknown_account", f"no account {account!r}; open it first", account=account)


def margin_reject(state: State, account: str, needed: int, available: int, what: str) -> Reject:
    p = state.profile
    return reject(
        "insufficient_margin",
        f"{account}: {what}",
        account=account,
        needed=needed,
        available=available,
        asset=p.settlement_asset,
        decimals=p.settlement_decimals,
    )


def adds_risk(old: Decimal, new: Decimal) -> bool:
    """Only a pure reduction (same side, smaller, possibly closed) is risk-reducing."""
    return not (old != 0 and (new == 0 or (new > 0) == (old > 0)) and abs(new) < abs(old))


def fill(tx: Tx, account: str, inst: Instrument, old: Position | None, new_size: Decimal, quote_delta: int) -> None:
    """Book one side of a fill: new size, and for perps the quote and any realized P&L."""
    settle = tx.scratch.profile.settlement_asset
    name = inst.name
    isolated = tx.scratch.accounts[account].mode == "isolated"
    pnl_key = allocation_key(account, name) if isolated else user_key(account)
    new_quote = 0
    if not inst.is_option:
        old_size, old_quote = (old.size, old.quote) if old else (Decimal(0), 0)
        raw = old_quote + quote_delta
        if new_size == 0:
            realized = raw
        elif old_size != 0 and (new_size > 0) != (old_size > 0):  # flipped: close all, open the rest
            opening = decimal_to_units_half_even(
                abs(new_size) * Decimal(abs(quote_delta)) / abs(new_size - old_size), 0
            )
            new_quote = opening if new_size < 0 else -opening
            realized = raw - new_quote
        elif abs(new_size) < abs(old_size):  # reduced: keep the cost basis of what is left
            new_quote = decimal_to_units_half_even(Decimal(old_quote) * new_size / old_size, 0)
            realized = raw - new_quote
        else:
            new_quote, realized = raw, 0
        tx.transfer(SETTLEMENT, pnl_key, settle, realized, "realized_pnl")
    tx.emit(PositionChanged(account, name, new_size, new_quote))
    if isolated and new_size == 0:
        release_allocation(tx, account, name)


def release_allocation(tx: Tx, account: str, name: str) -> None:
    """A closed isolated position hands its collateral back to the free pool (a deficit is
    taken from it: the account's own collateral is first in the loss waterfall)."""
    settle = tx.scratch.profile.settlement_asset
    left = tx.scratch.ledger.balance(allocation_key(account, name), settle)
    tx.transfer(allocation_key(account, name), user_key(account), settle, left, "release")

"""Isolated markets (dYdX v4's market type ISOLATED, `perp.isolated_market`): a perp whose risk
stays inside it. Its own insurance fund (`insurance:<perp>`) takes its liquidation penalties and
alone pays its bankruptcies before ADL or a socialized loss; an account holding it holds no other
position (x/subaccounts: an isolated position cannot share a subaccount); and an unresolved
bankruptcy gates withdrawals only of accounts in the same market (withdrawal gating per collateral
pool, v4-chain #1208). The main fund and the cross accounts never see the market's losses.

Not to be confused with the isolated margin *mode* of an account (collateral allocated per position).
"""

from __future__ import annotations

from margin_engine.engine.state import State
from margin_engine.engine.tx import reject
from margin_engine.ledger.ledger import INSURANCE, MARKET_FUND_PREFIX, market_fund_key


def has_isolated_markets(state: State) -> bool:
    return any(u.perp.isolated_market for u in state.profile.underlyings.values())


def is_isolated_market(state: State, instrument: str) -> bool:
    perp = state.profile.underlyings.get(instrument.split("-", 1)[0])
    return instrument.endswith("-PERP") and perp is not None and perp.perp.isolated_market


def isolated_market_of(state: State, account: str) -> str | None:
    """The isolated market the account trades in, if any: the one it holds, or the one whose fund
    still owes it an uncovered deficit."""
    fund = state.bankrupt_funds.get(account)
    if fund is not None:
        return fund[len(MARKET_FUND_PREFIX) :]
    return next((n for n in state.accounts[account].positions if is_isolated_market(state, n)), None)


def fund_of(state: State, account: str) -> str:
    """The ledger account of the insurance fund that backs this account's positions."""
    if not has_isolated_markets(state):
        return INSURANCE
    market = isolated_market_of(state, account)
    return INSURANCE if market is None else market_fund_key(market)


def check_isolation(state: State, accounts: tuple[str, ...] | list[str]) -> None:
    """After a fill or a takeover: an account holding an isolated market's perp holds nothing else."""
    if not has_isolated_markets(state):
        return
    for account in accounts:
        names = state.accounts[account].positions
        isolated = [n for n in names if is_isolated_market(state, n)]
        if isolated and len(names) > 1:
            others = ", ".join(sorted(n for n in names if n != isolated[0]))
            raise reject(
                "isolated_market",
                f"{isolated[0]} is an isolated market: {account} cannot hold it with {others}; "
                "trade it from an account that holds nothing else",
                account=account,
            )


def withdrawal_gate(state: State, account: str) -> str | None:
    """Why the account's withdrawals wait, or None: an unresolved bankruptcy or an insolvent auction
    in the account's own pool (the cross pool, or its isolated market)."""
    pool = fund_of(state, account)
    if any(state.bankrupt_funds.get(a, INSURANCE) == pool for a in state.bankrupt):
        return "an insolvent account is still unresolved"
    if any(a.phase == "insolvent" and fund_of(state, a.account) == pool for a in state.auctions.values()):
        return "an insolvent account is being auctioned"
    return None

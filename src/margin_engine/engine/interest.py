"""Interest on loans of the settlement asset, accrued as the clock advances (profile `[interest]`).

The maths and its rounding are in `ledger.interest`; here the accrual becomes an
`interest_accrued` event and transfers: each borrower pays the fee pool, which passes the fund's
share and each lender's on and keeps what rounding leaves, so no unit is made or lost.
"""

from __future__ import annotations

from decimal import Decimal

from margin_engine.engine.events import InterestAccrued
from margin_engine.engine.state import State
from margin_engine.engine.tx import Tx, reject
from margin_engine.ledger.interest import RateModel, accrue
from margin_engine.ledger.ledger import FEES, INSURANCE, user_key
from margin_engine.ledger.units import format_units, to_units


def accrue_interest(tx: Tx, before_s: int | None, now_s: int) -> None:
    """Interest for the `[interest] accrual_interval_s` boundaries crossed from `before_s` to
    `now_s` (none when the clock was unset), on the balances as they stand: borrowers pay the fee
    pool, which passes the fund's share and the lenders' on and keeps the rounding."""
    params = tx.scratch.profile.interest
    if params is None or before_s is None:
        return
    interval = params.accrual_interval_s
    crossed = now_s // interval - before_s // interval
    if crossed <= 0:
        return
    state, settle = tx.scratch, tx.scratch.profile.settlement_asset
    balances = {a: state.ledger.balance(user_key(a), settle) for a in state.accounts}
    model = RateModel(params.min_rate, params.rate_multiplier, params.high_rate_multiplier, params.optimal_util)
    a = accrue(balances, model, params.fund_share, crossed * interval)
    if a.total == 0:
        return
    rate, util = Decimal(repr(a.rate)), Decimal(repr(a.utilization))
    tx.emit(InterestAccrued(settle, rate, util, crossed * interval, a.total))
    for account, units in a.paid.items():
        tx.transfer(user_key(account), FEES, settle, units, "interest")
    tx.transfer(FEES, INSURANCE, settle, a.to_fund, "interest")
    for account, units in a.to_lenders.items():
        tx.transfer(FEES, user_key(account), settle, units, "interest")


def check_borrow_caps(before: State, after: State, accounts: list[str]) -> None:
    """A risk-adding trade may not leave an account owing more than borrow_max_usd_per_account,
    nor the venue's loans above borrow_max_usd_total, where it raised them (reductions pass)."""
    params = before.profile.interest
    if params is None:
        return
    settle = before.profile.settlement_asset
    decimals = before.profile.settlement_decimals

    def owed(state: State, account: str) -> int:
        return max(-state.ledger.balance(user_key(account), settle), 0)

    def usd(units: int) -> str:
        return format_units(units, decimals)

    raised = [a for a in accounts if owed(after, a) > owed(before, a)]
    if not raised:
        return
    if params.borrow_max_usd_per_account is not None:
        cap = to_units(Decimal(repr(params.borrow_max_usd_per_account)), decimals)
        for account in raised:
            if owed(after, account) > cap:
                raise reject(
                    "borrow_cap",
                    f"{account} would owe {usd(owed(after, account))} {settle}, beyond borrow_max_usd_per_account",
                    account=account,
                    cap=usd(cap),
                    current=usd(owed(before, account)),
                    requested=usd(owed(after, account)),
                    unit=settle,
                )
    if params.borrow_max_usd_total is not None:
        cap = to_units(Decimal(repr(params.borrow_max_usd_total)), decimals)
        total_before = sum(owed(before, a) for a in before.accounts)
        total_after = total_before + sum(owed(after, a) - owed(before, a) for a in raised)
        if total_after > cap:
            raise reject(
                "borrow_cap",
                f"the venue's loans would reach {usd(total_after)} {settle}, beyond borrow_max_usd_total",
                cap=usd(cap),
                current=usd(total_before),
                requested=usd(total_after),
                unit=settle,
            )

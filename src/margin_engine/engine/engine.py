"""The engine: `apply(state, command) -> events | Rejection`.

`decide` reads the state and builds the events of a command on a scratch copy (so that margin
after a trade is computed on exactly the state the events will produce); `apply` then evolves the
real state with them. A rejected command leaves the state untouched. No wall clock, no
randomness: the same commands give the same events, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

from margin_engine.engine import liquidate, oracle_feed
from margin_engine.engine.commands import (
    AdvanceTime,
    Allocate,
    ApplyFunding,
    Bid,
    Command,
    Deposit,
    FailWithdrawal,
    FundInsurance,
    OpenAccount,
    OracleUpdate,
    RegisterSource,
    RequestWithdrawal,
    RevokeSource,
    SetMarket,
    SetPriceRange,
    SettleExpiry,
    SettleWithdrawal,
    StartLiquidation,
    Trade,
    Withdraw,
)
from margin_engine.engine.events import (
    AccountOpened,
    BasisObserved,
    CustodyConfirmed,
    Event,
    ExpirySettled,
    MarketSet,
    PositionChanged,
    PriceRangeSet,
    TradeExecuted,
    Transferred,
    WithdrawalClosed,
    WithdrawalRequested,
)
from margin_engine.engine.funding import pay_funding
from margin_engine.engine.interest import check_borrow_caps
from margin_engine.engine.isolated_markets import check_isolation, isolated_market_of, withdrawal_gate
from margin_engine.engine.margin_calls import check_reduce_only, margin_calls
from margin_engine.engine.rejection import Rejection
from margin_engine.engine.state import State, evolve, longs
from margin_engine.engine.tx import (
    Reject,
    Tx,
    adds_risk,
    fill,
    margin_reject,
    reject,
    release_allocation,
    require_account,
)
from margin_engine.errors import InvariantViolation, MarketMissing
from margin_engine.instruments.names import Future, Instrument, Option, Perpetual
from margin_engine.ledger.ledger import EXTERNAL, FEES, PENDING, SETTLEMENT, allocation_key, user_key
from margin_engine.ledger.units import (
    ceil_units,
    decimal_to_units_ceil,
    decimal_to_units_floor,
    decimal_to_units_half_even,
    floor_units,
)
from margin_engine.margin.result import PositionMargin
from margin_engine.perp.mark import basis_ema, clamped_basis, mark_price


def apply(state: State, command: Command) -> list[Event] | Rejection:
    """Decide, then evolve the state with the events; a Rejection changes nothing."""
    outcome = decide(state, command)
    if isinstance(outcome, Rejection):
        return outcome
    for event in outcome:
        evolve(state, event)
    return outcome


def decide(state: State, command: Command) -> list[Event] | Rejection:
    """The command's events, or its Rejection. Only a missing market is an ordinary rejection among
    the errors a handler can meet; anything else it raises is a bug, raised as an InvariantViolation
    (never answered as a rejection code, so that a fuzz or a test sees it)."""
    handler = _HANDLERS[type(command)]
    try:
        events = handler(state, command)
        return events + margin_calls(state, events)
    except Reject as r:
        return r.rejection
    except MarketMissing as exc:
        return Rejection("no_market", str(exc))
    except InvariantViolation:
        raise
    except Exception as exc:
        raise InvariantViolation(f"{type(command).__name__} failed: {type(exc).__name__}: {exc}"[:500]) from exc


def _open_account(state: State, cmd: OpenAccount) -> list[Event]:
    if cmd.account in state.accounts:
        raise reject("account_exists", f"account {cmd.account!r} already exists", account=cmd.account)
    if cmd.mode == "portfolio" and state.profile.portfolio is None:
        # never a silent cross account: the trader asked for a risk matrix this profile does not have
        raise reject(
            "mode_unavailable",
            f"profile {state.profile.name!r} has no portfolio margin rules: open the account in cross or isolated "
            "mode, or run under a portfolio profile (deribit-pm, derive-pmrm)",
            account=cmd.account,
        )
    return [AccountOpened(cmd.account, cmd.mode)]


def _deposit(state: State, cmd: Deposit) -> list[Event]:
    require_account(state, cmd.account)
    events: list[Event] = []
    if cmd.reference is not None:
        _unspent(state, cmd.reference, cmd.account)
        events.append(CustodyConfirmed(cmd.reference, cmd.account, "deposit"))
    key = user_key(cmd.account)
    params = state.profile.asset(cmd.asset)
    limit = int(Decimal(repr(state.profile.limits.balance_max)).scaleb(params.decimals))
    after = state.ledger.balance(key, cmd.asset) + cmd.amount
    if after > limit:
        raise reject(
            "balance_limit",
            f"{cmd.account} would hold more {cmd.asset} than the profile's limits.balance_max",
            account=cmd.account,
            needed=after,
            available=limit,
            asset=cmd.asset,
            decimals=params.decimals,
        )
    events.append(Transferred(EXTERNAL, key, cmd.asset, cmd.amount, "deposit"))
    return events


def _unspent(state: State, reference: str, account: str) -> None:
    if reference in state.references:
        raise reject(
            "duplicate_reference",
            f"custody reference {reference!r} was already credited or paid out; a transfer counts once",
            account=account,
        )


def _withdraw(state: State, cmd: Withdraw) -> list[Event]:
    """Paid out at once: custody already sent it (scripts, the simulator, an admin)."""
    return _debit(state, cmd.account, cmd.asset, cmd.amount, EXTERNAL, "withdrawal", [])


def _request_withdrawal(state: State, cmd: RequestWithdrawal) -> list[Event]:
    """Debited now, into the pending account, with the same checks as a withdrawal; custody then
    settles or fails it."""
    withdrawal = f"W{state.withdrawals_requested + 1}"
    requested = WithdrawalRequested(withdrawal, cmd.account, cmd.asset, cmd.amount, state.now_s or 0)
    return _debit(state, cmd.account, cmd.asset, cmd.amount, PENDING, "withdrawal_request", [requested])


def _debit(state: State, account: str, asset: str, amount: int, to: str, reason: str, first: list[Event]):
    require_account(state, account)
    gate = withdrawal_gate(state, account)
    if gate is not None:
        market = isolated_market_of(state, account)
        pool = "the cross accounts" if market is None else f"the isolated market {market}"
        raise reject(
            "withdrawals_gated",
            f"withdrawals of {pool} wait: {gate} (dYdX, Lyra gate withdrawals until it is resolved)",
            account=account,
        )
    oracle_feed.require_fresh(state, oracle_feed.exposure(state, account), "a withdrawal")
    balance = state.ledger.balance(user_key(account), asset)
    decimals = state.profile.asset(asset).decimals
    if balance < amount:
        raise reject(
            "insufficient_balance",
            f"{account} holds less {asset} than it asks to withdraw",
            account=account,
            needed=amount,
            available=max(balance, 0),
            asset=asset,
            decimals=decimals,
        )
    tx = Tx(state)
    for event in first:
        tx.emit(event)
    tx.emit(Transferred(user_key(account), to, asset, amount, reason))
    m = tx.margin(account)
    if m.free_collateral < 0:
        raise margin_reject(
            state, account, m.initial_margin, m.equity, "withdrawal would leave initial margin uncovered"
        )
    return tx.events


def _pending(state: State, withdrawal: str):
    pending = state.pending_withdrawals.get(withdrawal)
    if pending is None:
        raise reject("unknown_withdrawal", f"no withdrawal {withdrawal!r} waits for custody")
    return pending


def _settle_withdrawal(state: State, cmd: SettleWithdrawal) -> list[Event]:
    w = _pending(state, cmd.withdrawal)
    _unspent(state, cmd.reference, w.account)
    return [
        CustodyConfirmed(cmd.reference, w.account, "withdrawal"),
        Transferred(PENDING, EXTERNAL, w.asset, w.amount, "withdrawal"),
        WithdrawalClosed(w.id, "settled", cmd.reference),
    ]


def _fail_withdrawal(state: State, cmd: FailWithdrawal) -> list[Event]:
    w = _pending(state, cmd.withdrawal)
    return [
        Transferred(PENDING, user_key(w.account), w.asset, w.amount, "withdrawal_returned"),
        WithdrawalClosed(w.id, "failed", cmd.reason),
    ]


def _set_market(state: State, cmd: SetMarket) -> list[Event]:
    return [MarketSet(cmd.market.underlying, cmd.market.to_json())]


def _set_price_range(state: State, cmd: SetPriceRange) -> list[Event]:
    return [PriceRangeSet(cmd.underlying, cmd.price_range)]


def _check_tradable(state: State, inst: Instrument) -> None:
    if inst.underlying not in state.markets:
        raise reject("no_market", f"no market for {inst.underlying}; send set_market first")
    if isinstance(inst, Option | Future):
        if state.now_s is None:
            raise reject("time_unset", "the engine clock is not set; send advance_time first")
        if state.now_s >= inst.expiry_s:
            raise reject("instrument_expired", f"{inst.name} expired at its 08:00 UTC expiry")


def _check_price_band(state: State, inst: Instrument, price: Decimal) -> None:
    """A fill's price within the profile's band around the index (limits.perp_price_band_ratio) or,
    for an option, at most its intrinsic value plus limits.option_price_index_max indices."""
    limits = state.profile.limits
    index = Decimal(repr(state.markets[inst.underlying].index))
    if isinstance(inst, Option):
        intrinsic = max(index - inst.strike if inst.is_call else inst.strike - index, Decimal(0))
        low, high = Decimal(0), intrinsic + Decimal(repr(limits.option_price_index_max)) * index
        rule = f"intrinsic + {limits.option_price_index_max:g} x index (limits.option_price_index_max)"
    else:
        band = Decimal(repr(limits.perp_price_band_ratio))
        low, high = index * (1 - band), index * (1 + band)
        rule = f"the index +/- {limits.perp_price_band_ratio:.0%} (limits.perp_price_band_ratio)"
    if not low <= price <= high:
        raise reject(
            "price_out_of_band",
            f"{inst.name} at {price} USD is outside [{low:.2f}, {high:.2f}]: {rule}, index {index}",
        )


def _check_notional(state: State, inst: Instrument, size: Decimal, what: str) -> None:
    """At most limits.notional_max_usd at the index, per fill and per position a fill enlarges."""
    limit = Decimal(repr(state.profile.limits.notional_max_usd))
    notional = size * Decimal(repr(state.markets[inst.underlying].index))
    if notional > limit:
        raise reject(
            "notional_limit",
            f"{what} would be worth {notional:,.0f} USD at the index, above limits.notional_max_usd = {limit:,.0f}",
        )


def _fee(state: State, inst: Instrument, size: Decimal, price: Decimal, is_taker: bool) -> int:
    """Deribit-style fees: perps maker/taker share of notional; options a share of the underlying
    per contract, capped at a share of the premium. Rounded up: fees are owed to the venue."""
    f = state.profile.fees
    if isinstance(inst, Option):
        index = Decimal(repr(state.markets[inst.underlying].index))
        fee = min(
            Decimal(repr(f.option_rate)) * index * size, Decimal(repr(f.option_fee_cap_premium_ratio)) * price * size
        )
    else:
        rate = f.perp_taker_rate if is_taker else f.perp_maker_rate
        fee = Decimal(repr(rate)) * price * size
    return decimal_to_units_ceil(fee, state.profile.settlement_decimals)


def _trade(state: State, cmd: Trade) -> list[Event]:
    for account in (cmd.buyer, cmd.seller):
        require_account(state, account)
    return book_trade(state, cmd, (cmd.buyer, cmd.seller))


def book_trade(state: State, cmd: Trade, booked: tuple[str, ...]) -> list[Event]:
    """The events of a fill for the `booked` sides: both for a trade; for a what-if the account
    alone, whose counterparty is then the outside market (premium to or from it, no fee, no checks)."""
    _check_tradable(state, cmd.instrument)
    _check_price_band(state, cmd.instrument, cmd.price)
    _check_notional(state, cmd.instrument, cmd.size, "the fill")
    p = state.profile
    d, settle = p.settlement_decimals, p.settlement_asset
    name = cmd.instrument.name
    notional = decimal_to_units_half_even(cmd.size * cmd.price, d)  # both sides book the same integer
    fees = {
        side: _fee(state, cmd.instrument, cmd.size, cmd.price, cmd.aggressor == side) if account in booked else 0
        for side, account in (("buyer", cmd.buyer), ("seller", cmd.seller))
    }
    tx = Tx(state)
    tx.emit(TradeExecuted(cmd.buyer, cmd.seller, name, cmd.size, cmd.price, fees["buyer"], fees["seller"]))
    if isinstance(cmd.instrument, Option):
        key = {a: user_key(a) if a in booked else EXTERNAL for a in (cmd.buyer, cmd.seller)}
        tx.transfer(key[cmd.buyer], key[cmd.seller], settle, notional, "premium")
    risky = []
    for account, side, sign in ((cmd.buyer, "buyer", 1), (cmd.seller, "seller", -1)):
        if account not in booked:
            continue
        acct = state.accounts[account]
        old = acct.positions.get(name)
        if old is None and len(acct.positions) >= p.max_positions_per_account:
            raise reject(
                "too_many_positions",
                f"{account} holds the maximum of {p.max_positions_per_account} positions",
                account=account,
            )
        old_size = old.size if old else Decimal(0)
        new_size = old_size + sign * cmd.size
        fill(tx, account, cmd.instrument, old, new_size, -sign * notional)
        tx.transfer(user_key(account), FEES, settle, fees[side], "fee")
        if adds_risk(old_size, new_size):
            _check_notional(state, cmd.instrument, abs(new_size), f"{account}'s {name} position")
            risky.append(account)
    check_isolation(tx.scratch, booked)
    _observe_basis(tx, cmd.instrument, cmd.price)  # the checks below see the mark this fill leaves
    if risky:
        oracle_feed.require_fresh(state, [cmd.instrument.underlying], "a trade that adds risk")
        _check_size_caps(state, tx.scratch, cmd.instrument, risky)
        check_borrow_caps(state, tx.scratch, risky)
        check_reduce_only(state, risky)
    for account in risky:
        _check_after_risk(tx, account, name)
    return tx.events


def _observe_basis(tx: Tx, inst: Instrument, price: Decimal) -> None:
    """Fold a perp fill's basis into the mark (`basis_ema_s`): Deribit's index + EMA of the basis."""
    state = tx.scratch
    if not isinstance(inst, Perpetual) or state.now_s is None:
        return
    perp = state.profile.underlyings[inst.underlying].perp
    if perp.basis_ema_s is None:
        return
    index = state.markets[inst.underlying].index
    basis = clamped_basis(float(price), index, perp.basis_max_ratio)
    previous = state.basis.get(inst.name)
    ema = basis_ema(
        None if previous is None else previous[0],
        basis,
        0 if previous is None else state.now_s - previous[1],
        perp.basis_ema_s,
    )
    tx.emit(BasisObserved(inst.name, basis, ema, mark_price(index, ema, perp.basis_max_ratio), state.now_s))


def _check_size_caps(before: State, after: State, inst: Instrument, risky: list[str]) -> None:
    """A perp's caps (`[underlyings.X.perp]`): each risk-adding side's position within
    position_max_base, and open interest (the longs) within open_interest_max_base unless the
    trade does not raise it."""
    if not isinstance(inst, Perpetual):
        return
    perp = before.profile.underlyings[inst.underlying].perp
    name, unit = inst.name, inst.underlying
    if perp.position_max_base is not None:
        cap = Decimal(repr(perp.position_max_base))
        for account in risky:
            old = before.accounts[account].positions.get(name)
            new = after.accounts[account].positions[name].size
            if abs(new) > cap:
                raise reject(
                    "position_limit",
                    f"{account}'s {name} position would be {new} {unit}, beyond position_max_base {cap}",
                    account=account,
                    cap=str(cap),
                    current=str(old.size if old else Decimal(0)),
                    requested=str(new),
                    unit=unit,
                )
    if perp.open_interest_max_base is not None:
        cap = Decimal(repr(perp.open_interest_max_base))
        current, new_oi = longs(before, name), longs(after, name)
        if new_oi > current and new_oi > cap:
            raise reject(
                "open_interest_cap",
                f"{name} open interest would be {new_oi} {unit}, beyond open_interest_max_base {cap}",
                cap=str(cap),
                current=str(current),
                requested=str(new_oi),
                unit=unit,
            )


def _check_after_risk(tx: Tx, account: str, name: str) -> None:
    """A risk-adding fill needs initial margin after it; isolated positions draw what they lack
    from the free pool."""
    state = tx.scratch
    d, settle = state.profile.settlement_decimals, state.profile.settlement_asset
    if state.accounts[account].mode == "isolated" and name in state.accounts[account].positions:
        pos = next(x for x in tx.margin(account).positions if x.instrument == name)
        shortfall = _isolated_need(pos, d) - (pos.allocation_units or 0)
        if shortfall > 0:
            free = state.ledger.balance(user_key(account), settle)
            if free < shortfall:
                raise margin_reject(
                    state,
                    account,
                    shortfall,
                    max(free, 0),
                    f"isolated {name} needs more collateral than the free pool holds",
                )
            tx.transfer(user_key(account), allocation_key(account, name), settle, shortfall, "allocation")
    m = tx.margin(account)
    if m.free_collateral < 0:
        if m.mode == "isolated":
            # the free pool stands alone: what it must hold (its haircuts) against what it holds
            needed = ceil_units(sum(c.im_haircut for c in m.collateral), d)
            available = floor_units(sum(c.value for c in m.collateral), d)
            raise margin_reject(state, account, needed, available, "the free pool would be negative")
        raise margin_reject(state, account, m.initial_margin, m.equity, "trade would leave initial margin uncovered")


def _isolated_need(pos: PositionMargin, decimals: int) -> int:
    """The collateral an isolated position must hold: its initial margin less its value, rounded up."""
    if pos.initial_margin is None:
        raise InvariantViolation(f"isolated {pos.instrument} has no standalone initial margin")
    return ceil_units(pos.initial_margin - pos.value, decimals)


def _allocate(state: State, cmd: Allocate) -> list[Event]:
    require_account(state, cmd.account)
    if state.accounts[cmd.account].mode != "isolated":
        raise reject(
            "wrong_mode",
            f"{cmd.account} is not in isolated mode; only isolated positions hold collateral",
            account=cmd.account,
        )
    name = cmd.instrument.name
    if name not in state.accounts[cmd.account].positions:
        raise reject("no_position", f"{cmd.account} has no {name} position", account=cmd.account)
    settle, d = state.profile.settlement_asset, state.profile.settlement_decimals
    source = user_key(cmd.account) if cmd.amount > 0 else allocation_key(cmd.account, name)
    held = state.ledger.balance(source, settle)
    if held < abs(cmd.amount):
        raise reject(
            "insufficient_balance",
            f"{source} holds less than {abs(cmd.amount)} units",
            account=cmd.account,
            needed=abs(cmd.amount),
            available=max(held, 0),
            asset=settle,
            decimals=d,
        )
    tx = Tx(state)
    tx.transfer(user_key(cmd.account), allocation_key(cmd.account, name), settle, cmd.amount, "allocation")
    if cmd.amount < 0:
        pos = next(x for x in tx.margin(cmd.account).positions if x.instrument == name)
        equity = _isolated_need(pos, d)
        if (pos.allocation_units or 0) < equity:
            raise margin_reject(
                state,
                cmd.account,
                equity,
                pos.allocation_units or 0,
                f"taking collateral out of {name} would leave its initial margin uncovered",
            )
    return tx.events


def _apply_funding(state: State, cmd: ApplyFunding) -> list[Event]:
    """An admin's funding at a given rate."""
    market = state.markets.get(cmd.instrument.underlying)
    if market is None:
        raise reject("no_market", f"no market for {cmd.instrument.underlying}; send set_market first")
    tx = Tx(state)
    pay_funding(tx, cmd.instrument.name, cmd.instrument.underlying, cmd.rate)
    return tx.events


def _settle_expiry(state: State, cmd: SettleExpiry) -> list[Event]:
    """Settle every option and dated future of that expiry at the settlement price (for futures,
    the delivery price: Deribit's 30-minute TWAP of the index, `perp.mark.delivery_price`). Options
    pay intrinsic value, shorts rounded up and longs down; a future closes at the price, its value
    floored; the dust goes to the fee pool."""
    if state.now_s is None or state.now_s < cmd.expiry_s:
        raise reject("not_expired", "options and futures settle only once the engine clock has reached their expiry")
    if (cmd.underlying, cmd.expiry_s) in state.settled:
        raise reject("already_settled", f"{cmd.underlying} expiry {cmd.expiry_s} is settled already")
    settle, d = state.profile.settlement_asset, state.profile.settlement_decimals
    expiring = {
        name: tuple(holders)
        for name, holders in state.holders.items()
        if holders and _expires_with(state.accounts[next(iter(holders))].positions[name].instrument, cmd)
    }
    tx = Tx(state)
    tx.emit(ExpirySettled(cmd.underlying, cmd.expiry_s, cmd.price))
    dust = 0
    for name, holders in expiring.items():
        for account in holders:
            pos = state.accounts[account].positions[name]
            isolated = state.accounts[account].mode == "isolated"
            if isinstance(pos.instrument, Future):
                value = decimal_to_units_floor(pos.size * cmd.price, d)  # what the position is worth, floored
                fill(tx, account, pos.instrument, pos, Decimal(0), value)  # realizes quote + value
                dust -= value
                continue
            inst = cast(Option, pos.instrument)
            intrinsic = (
                max(cmd.price - inst.strike, Decimal(0)) if inst.is_call else max(inst.strike - cmd.price, Decimal(0))
            )
            payoff = pos.size * intrinsic
            key = allocation_key(account, name) if isolated else user_key(account)
            if payoff > 0:
                got = decimal_to_units_floor(payoff, d)
                tx.transfer(SETTLEMENT, key, settle, got, "expiry")
                dust -= got
            else:
                paid = decimal_to_units_ceil(-payoff, d)
                tx.transfer(key, SETTLEMENT, settle, paid, "expiry")
                dust += paid
            tx.emit(PositionChanged(account, name, Decimal(0), 0))
            if isolated:
                release_allocation(tx, account, name)
    tx.transfer(SETTLEMENT, FEES, settle, dust, "rounding")
    return tx.events


def _expires_with(inst: Instrument, cmd: SettleExpiry) -> bool:
    return isinstance(inst, Option | Future) and inst.underlying == cmd.underlying and inst.expiry_s == cmd.expiry_s


_HANDLERS: dict[type, Callable[[State, Any], list[Event]]] = {
    OpenAccount: _open_account,
    Deposit: _deposit,
    Withdraw: _withdraw,
    RequestWithdrawal: _request_withdrawal,
    SettleWithdrawal: _settle_withdrawal,
    FailWithdrawal: _fail_withdrawal,
    SetMarket: _set_market,
    AdvanceTime: liquidate.advance_time,
    FundInsurance: liquidate.fund_insurance,
    StartLiquidation: liquidate.start_liquidation,
    Bid: liquidate.bid,
    OracleUpdate: oracle_feed.oracle_update,
    RegisterSource: oracle_feed.register_source,
    RevokeSource: oracle_feed.revoke_source,
    SetPriceRange: _set_price_range,
    Trade: _trade,
    Allocate: _allocate,
    ApplyFunding: _apply_funding,
    SettleExpiry: _settle_expiry,
}

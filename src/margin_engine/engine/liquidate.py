"""Liquidation in the engine: `start_liquidation`, `bid`, `fund_insurance`, auctions swept as the
clock advances, and the loss waterfall when an account ends below zero.

The maths lives in `margin_engine.liquidation`; this module books it. Every take-over is booked as
a trade at mark between the liquidated account and the liquidator (no value changes hands), and
what the mechanism prices in (the fixed penalty, the auction's discount or payment) as cash
transfers beside it, so conservation and the clearing identity hold at every step.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import numpy as np

from margin_engine.engine import oracle_feed
from margin_engine.engine.commands import AdvanceTime, Bid, FundInsurance, StartLiquidation
from margin_engine.engine.events import (
    AuctionEnded,
    AuctionPhaseChanged,
    BankruptcyResolved,
    BidPlaced,
    Deleveraged,
    Event,
    LiquidationFill,
    LiquidationStarted,
    TimeAdvanced,
    Transferred,
)
from margin_engine.engine.funding import computed_funding
from margin_engine.engine.interest import accrue_interest
from margin_engine.engine.isolated_markets import check_isolation, fund_of
from margin_engine.engine.state import Auction, State
from margin_engine.engine.tx import Reject, Tx, fill, margin_reject, reject, require_account
from margin_engine.instruments.names import Option, parse_instrument
from margin_engine.ledger.ledger import EXTERNAL, INSURANCE, allocation_key, market_fund_key, user_key
from margin_engine.ledger.units import decimal_to_units_half_even, floor_units, share_units, to_units
from margin_engine.liquidation import (
    AdlBook,
    AdlCandidate,
    AdlFill,
    AuctionAccount,
    AuctionEndedError,
    apply_small_account_cutoff,
    can_terminate,
    clear_batch,
    close_fraction,
    close_order,
    close_size,
    cover_deficit,
    deleverage,
    discount_at,
    dutch_bid,
    insolvent_payment,
    insurance_draw_units,
    largest_remainder,
    lot_reserve_price_units,
    penalty_transfers,
    socialize,
    solvent_bid_price,
    start_phase,
    window_closes_at_s,
)
from margin_engine.liquidation import Bid as SealedBid
from margin_engine.margin.result import AccountMargin, PositionMargin

ONE = Decimal(1)


def fund_insurance(state: State, cmd: FundInsurance) -> list[Event]:
    """Capital from outside into the insurance fund; it counts as a deposit in the audit."""
    fund = INSURANCE if cmd.market is None else market_fund_key(cmd.market)
    return [Transferred(EXTERNAL, fund, cmd.asset, cmd.amount, "deposit")]


def _settle(state: State) -> str:
    return state.profile.settlement_asset


def _usd(units: int, state: State) -> float:
    return units / 10**state.profile.settlement_decimals


def _next_id(state: State) -> str:
    return f"L{state.liquidations_started + 1}"


def _require_liquidator(state: State, liquidator: str | None) -> str:
    if liquidator is None:
        raise reject("liquidator_required", "this mechanism hands positions to a liquidator at once: name one")
    require_account(state, liquidator)
    if state.accounts[liquidator].mode == "isolated":
        raise reject("wrong_mode", f"{liquidator} is isolated; a liquidator takes positions into a cross account")
    return liquidator


def start_liquidation(state: State, cmd: StartLiquidation) -> list[Event]:
    require_account(state, cmd.account)
    if state.auction_of(cmd.account) is not None:
        raise reject("auction_active", f"{cmd.account} is already being auctioned", account=cmd.account)
    oracle_feed.require_fresh(state, oracle_feed.exposure(state, cmd.account), "a liquidation")
    tx = Tx(state)
    m = tx.margin(cmd.account)
    if not m.liquidatable:
        p = state.profile
        raise reject(
            "not_liquidatable",
            f"{cmd.account} is at or above maintenance margin",
            account=cmd.account,
            needed=m.maintenance_margin,
            available=m.equity,
            asset=p.settlement_asset,
            decimals=p.settlement_decimals,
        )
    lid = _next_id(state)
    mechanism = state.profile.liquidation.mechanism
    if m.mode == "isolated":
        _fixed_isolated(tx, cmd.account, _require_liquidator(state, cmd.liquidator), m)
    elif mechanism == "fixed" and m.portfolio is not None and m.equity > 0:
        _fixed_portfolio(tx, lid, cmd.account, _require_liquidator(state, cmd.liquidator))
    elif mechanism == "fixed":
        _fixed(tx, lid, cmd.account, _require_liquidator(state, cmd.liquidator), m)
    elif mechanism == "dutch":
        phase = start_phase(AuctionAccount.from_engine(m.equity, m.maintenance_margin))
        tx.emit(LiquidationStarted(lid, cmd.account, "dutch", phase, state.now_s or 0, Decimal(0), 0, 0))
    else:
        _start_batch(tx, lid, cmd.account, m)
    return tx.events


# --- taking positions over at mark ---------------------------------------------------------


def _take_at_mark(
    tx: Tx, src: str, dst: str, fraction: Decimal, *, only: str | None = None, collateral: bool = False
) -> int:
    """Trade `fraction` of src's positions (and of its crypto collateral) to dst at mark; returns
    the underlying notional moved and the collateral's value sold, in settlement units (what a
    fixed penalty is charged on)."""
    state = tx.scratch
    p = state.profile
    settle, decimals = p.settlement_asset, p.settlement_decimals
    marks = {x.instrument: Decimal(repr(x.mark_price)) for x in tx.margin(src).positions}
    notional = 0
    for name, pos in list(state.accounts[src].positions.items()):
        if only is not None and name != only:
            continue
        step = p.underlying(pos.instrument.underlying).size_decimals
        moved = close_size(pos.size, float(fraction), step) if fraction < ONE else pos.size
        _trade_at_mark(tx, src, dst, pos.instrument, moved, marks[name])
        notional += decimal_to_units_half_even(abs(moved) * _notional_price(state, pos.instrument), decimals)
    if collateral:
        for asset, params in p.assets.items():
            held = state.ledger.balance(user_key(src), asset)
            if asset == settle or held <= 0:
                continue
            amount = held if fraction >= ONE else share_units(held, fraction)
            price = Decimal(repr(state.markets[asset].index))
            value = decimal_to_units_half_even(Decimal(amount).scaleb(-params.decimals) * price, decimals)
            tx.transfer(user_key(src), user_key(dst), asset, amount, "liquidation")
            tx.transfer(user_key(dst), user_key(src), settle, value, "liquidation")
            notional += value
    return notional


def _trade_at_mark(tx: Tx, src: str, dst: str, inst, size: Decimal, mark: Decimal) -> None:
    """src hands dst `size` (signed, in src's direction) of a position at the mark price."""
    state = tx.scratch
    p = state.profile
    name = inst.name
    dst_acct = state.accounts[dst]
    if name not in dst_acct.positions and len(dst_acct.positions) >= p.max_positions_per_account:
        raise reject("too_many_positions", f"{dst} cannot hold another position", account=dst)
    value = decimal_to_units_half_even(size * mark, p.settlement_decimals)
    src_old = state.accounts[src].positions[name]
    dst_old = dst_acct.positions.get(name)
    dst_size = (dst_old.size if dst_old else Decimal(0)) + size
    if isinstance(inst, Option):
        tx.transfer(user_key(dst), user_key(src), p.settlement_asset, value, "liquidation")
        fill(tx, src, inst, src_old, src_old.size - size, 0)
        fill(tx, dst, inst, dst_old, dst_size, 0)
    else:
        fill(tx, src, inst, src_old, src_old.size - size, value)
        fill(tx, dst, inst, dst_old, dst_size, -value)
    check_isolation(state, (dst,))


def _check_liquidator(tx: Tx, liquidator: str, before: AccountMargin) -> None:
    """Keepers are margin-checked like anyone: after taking positions they must cover initial
    margin, unless what they took only lowered their requirement."""
    after = tx.margin(liquidator)
    if after.free_collateral < 0 and after.initial_margin > before.initial_margin:
        raise margin_reject(
            tx.scratch,
            liquidator,
            after.initial_margin,
            after.equity,
            "the liquidator cannot margin what it would take",
        )


# --- fixed penalty -----------------------------------------------------------------------------


def _gross_notional_units(tx: Tx, account: str, only: str | None = None) -> int:
    state = tx.scratch
    total = Decimal(0)
    for name, pos in state.accounts[account].positions.items():
        if only is None or name == only:
            total += abs(pos.size) * _notional_price(state, pos.instrument)
    return decimal_to_units_half_even(total, state.profile.settlement_decimals)


def _notional_price(state: State, inst) -> Decimal:
    """USD per unit of notional: a perp's or future's mark (its requirement's base), an option's index."""
    return Decimal(repr(_linear_price(state, inst)))


def _linear_price(state: State, inst) -> float:
    market = state.markets[inst.underlying]
    if inst.is_option:
        return market.index
    return market.linear_mark(getattr(inst, "expiry_s", 0), state.now_s or 0)


def _size_add_on(state: State, positions: list[PositionMargin] | tuple[PositionMargin, ...]) -> float:
    """The part of positions' maintenance that grows with the square of size: Deribit's perp add-on,
    size_ratio_per_unit * size^2 * mark (USD)."""
    total = 0.0
    for pos in positions:
        inst = parse_instrument(pos.instrument)
        if not inst.is_option:
            perp = state.profile.underlying(inst.underlying).perp
            total += perp.size_ratio_per_unit * float(pos.size) ** 2 * _linear_price(state, inst)
    return total


def _close_fraction(
    tx: Tx, equity: float, maintenance: float, haircut: float, gross_units: int, add_on: float
) -> Decimal:
    """Drift-style partial close: the smallest share of every position that leaves equity at
    (1 + buffer) times the requirement after the penalty, the size add-on shrinking with the
    square of what is left; the whole of a small account."""
    p = tx.scratch.profile.liquidation
    cost = _usd(gross_units, tx.scratch) * p.fixed.penalty_ratio
    scaled = max(maintenance - haircut, 0.0)
    # two units more: equity is floored and the requirement ceiled to a unit after the close
    slack = _usd(2, tx.scratch)
    f = close_fraction(
        equity,
        scaled,
        cost,
        p.partial.buffer_ratio,
        fixed_maintenance=haircut + slack,
        quadratic_maintenance=min(add_on, scaled),
    )
    f = apply_small_account_cutoff(f, gross_units, p.partial.small_account_cutoff_units)
    return Decimal(repr(f))


def _fixed(tx: Tx, lid: str, account: str, liquidator: str, m: AccountMargin) -> None:
    state = tx.scratch
    if m.equity <= 0:
        _bankrupt(tx, lid, account, liquidator, "fixed")
        return
    before = tx.margin(liquidator)
    haircut = sum(c.mm_haircut for c in m.collateral)
    if not state.accounts[account].positions:
        # below maintenance through its collateral's haircut alone (a debt against crypto): sell
        # just enough of the collateral to the liquidator at the index to cover the debt
        value = sum(c.value for c in m.collateral if c.asset != state.profile.settlement_asset)
        p = state.profile.liquidation
        share = close_fraction(_usd(m.equity, state), haircut, value * p.fixed.penalty_ratio, p.partial.buffer_ratio)
        f = Decimal(repr(share))
        notional = _take_at_mark(tx, account, liquidator, f, collateral=True)
    else:
        gross = _gross_notional_units(tx, account)
        add_on = _size_add_on(state, m.positions)
        f = _close_fraction(tx, _usd(m.equity, state), _usd(m.maintenance_margin, state), haircut, gross, add_on)
        notional = _take_at_mark(tx, account, liquidator, f)
    penalty, insurance = _charge_penalty(
        tx, account, liquidator, notional, user_key(account), tx.margin(account).equity
    )
    tx.emit(LiquidationFill(lid, account, liquidator, "fixed", f, 0, penalty, insurance))
    _check_liquidator(tx, liquidator, before)


def _charge_penalty(
    tx: Tx, account: str, liquidator: str, notional: int, payer_key: str, equity_after: int
) -> tuple[int, int]:
    """Deribit's penalty on the notional taken, split liquidator / insurance fund; never more
    than the account still has, so a penalty never makes it bankrupt. Returns (penalty, insurance)."""
    t = penalty_transfers(notional, tx.scratch.profile.liquidation.fixed, max_penalty_units=max(equity_after, 0))
    settle = _settle(tx.scratch)
    tx.transfer(payer_key, user_key(liquidator), settle, t.liquidator_units, "liquidation_penalty")
    tx.transfer(payer_key, fund_of(tx.before, account), settle, t.insurance_units, "liquidation_penalty")
    return t.penalty_units, t.insurance_units


def _fixed_portfolio(tx: Tx, lid: str, account: str, liquidator: str) -> None:
    """Portfolio accounts: close first what contributes most to the worst scenario, one whole
    position at a time, until the account stands (1 + buffer) above maintenance; hedges last."""
    state = tx.scratch
    buffer = state.profile.liquidation.partial.buffer_ratio
    m = state.margin(account, explain=True)
    explained = (m.portfolio or {}).get("underlyings", [])
    pnl = {c["instrument"]: c["pnl"] for u in explained for c in u.get("contributions", [])}
    names = [p.instrument for p in m.positions]
    order = close_order(np.array([-pnl.get(n, 0.0) for n in names]))
    before = tx.margin(liquidator)
    closed = Decimal(0)
    notional = 0
    for i in order:
        after = tx.margin(account)
        if after.equity >= (1 + buffer) * after.maintenance_margin:
            break
        notional += _take_at_mark(tx, account, liquidator, ONE, only=names[i])
        closed += 1
    penalty, insurance = _charge_penalty(
        tx, account, liquidator, notional, user_key(account), tx.margin(account).equity
    )
    tx.emit(LiquidationFill(lid, account, liquidator, "fixed", closed / len(names), 0, penalty, insurance))
    _check_liquidator(tx, liquidator, before)


def _fixed_isolated(tx: Tx, account: str, liquidator: str, m: AccountMargin) -> None:
    """Each isolated position below its maintenance stands alone: it is closed (partly) at mark
    and pays the penalty from its own collateral; a deficit is the account's, paid by its free
    pool first and then by the waterfall."""
    state = tx.scratch
    before = tx.margin(liquidator)
    number = state.liquidations_started
    for pos in (x for x in m.positions if x.liquidatable):
        alloc = pos.allocation_units or 0
        equity = pos.value + _usd(alloc, state)
        gross = _gross_notional_units(tx, account, only=pos.instrument)
        mm = pos.maintenance_margin or 0.0
        f = ONE if equity <= 0 else _close_fraction(tx, equity, mm, 0.0, gross, _size_add_on(state, [pos]))
        notional = _take_at_mark(tx, account, liquidator, f, only=pos.instrument)
        penalty = insurance = 0
        key = allocation_key(account, pos.instrument)
        if pos.instrument in tx.scratch.accounts[account].positions:  # a closed one has released its collateral
            penalty, insurance = _charge_penalty(
                tx, account, liquidator, notional, key, tx.scratch.ledger.balance(key, _settle(state))
            )
        number += 1
        tx.emit(LiquidationFill(f"L{number}", account, liquidator, "fixed", f, 0, penalty, insurance))
    # a free pool below zero is a debt: the account's own collateral pays it first, so healthy
    # positions are closed (releasing their collateral), the largest collateral first, until it is met
    settle = _settle(state)
    allocations = sorted(
        (
            (tx.scratch.ledger.balance(allocation_key(account, n), settle), n)
            for n in tx.scratch.accounts[account].positions
        ),
        reverse=True,
    )
    for _, name in allocations:
        if tx.scratch.ledger.balance(user_key(account), settle) >= 0:
            break
        notional = _take_at_mark(tx, account, liquidator, ONE, only=name)
        penalty, insurance = _charge_penalty(
            tx,
            account,
            liquidator,
            notional,
            user_key(account),
            max(tx.scratch.ledger.balance(user_key(account), settle), 0),
        )
        number += 1
        tx.emit(LiquidationFill(f"L{number}", account, liquidator, "fixed", ONE, 0, penalty, insurance))
    _check_liquidator(tx, liquidator, before)
    if tx.margin(account).equity < 0 and not tx.scratch.accounts[account].positions:
        _bankrupt(tx, f"L{number + 1}", account, liquidator, "fixed")


# --- the loss waterfall ------------------------------------------------------------------------


def _bankrupt(tx: Tx, lid: str, account: str, liquidator: str, mechanism: str) -> None:
    """An account worth less than nothing: its positions and collateral go at mark (ADL first,
    where the profile says so), then the insurance fund, then a socialized loss pay what it
    still owes. The waterfall settles on the cash left once everything is closed (each close rounds
    on its own), so the account ends at exactly zero unless part of the deficit is uncovered."""
    state = tx.scratch
    settle = _settle(state)
    wf = state.profile.liquidation.waterfall
    deficit = -tx.margin(account).equity
    fund = fund_of(tx.before, account)
    expected_insurance = insurance_draw_units(deficit, max(state.ledger.balance(fund, settle), 0), wf)
    adl: list[AdlFill] = []
    if wf.mode == "adl" and deficit > expected_insurance:
        adl = _auto_deleverage(tx, account, deficit - expected_insurance)
    before = tx.margin(liquidator)
    _take_at_mark(tx, account, liquidator, ONE, collateral=True)
    _check_liquidator(tx, liquidator, before)
    owed = -tx.scratch.ledger.balance(user_key(account), settle)  # what closing everything left unpaid
    if adl and owed != expected_insurance:
        # each ADL piece rounds on its own: settle the difference (a few units) with the last counterparty
        moved = _adl_rounding(tx, account, adl[-1], owed - expected_insurance)
        adl[-1] = replace(adl[-1], loss_units=adl[-1].loss_units + moved)
        owed = -tx.scratch.ledger.balance(user_key(account), settle)
    resolved = _settle_waterfall(tx, account, max(owed, 0), tuple(adl))
    tx.emit(LiquidationFill(lid, account, liquidator, mechanism, ONE, 0, 0, 0))
    tx.emit(resolved)


def _settle_waterfall(tx: Tx, account: str, owed: int, adl: tuple[AdlFill, ...] = ()) -> BankruptcyResolved:
    """Book what the waterfall (liquidation.cover_deficit, checked to add up) says the insurance
    fund and depositors pay of what the emptied account still owes; the bankruptcy event to emit."""
    state = tx.scratch
    settle = _settle(state)
    wf = state.profile.liquidation.waterfall
    fund = fund_of(tx.before, account)
    depositors = _depositors(tx, fund, exclude=account) if wf.mode == "socialized" else None
    result = cover_deficit(owed, max(state.ledger.balance(fund, settle), 0), wf, adl, depositors)
    tx.transfer(fund, user_key(account), settle, result.insurance_units, "insurance")
    for charge in result.socialized:
        tx.transfer(user_key(charge.account), user_key(account), settle, charge.units, "socialized_loss")
    socialized = sum(c.units for c in result.socialized)
    adl_units = sum(f.loss_units for f in adl)
    return BankruptcyResolved(
        account, result.deficit_units, result.insurance_units, adl_units, socialized, result.uncovered_units, fund
    )


def _adl_rounding(tx: Tx, account: str, last: AdlFill, amount: int) -> int:
    """Charge (amount > 0) or refund (< 0) the last ADL counterparty the rounding difference
    between the deficit ADL was sized for and what closing in pieces actually left; returns
    what moved (a charge never beyond what the counterparty holds, a refund never beyond its loss)."""
    settle = _settle(tx.scratch)
    if amount > 0:
        amount = min(amount, max(tx.scratch.ledger.balance(user_key(last.account), settle), 0))
    else:
        amount = -min(-amount, last.loss_units)
    tx.transfer(user_key(last.account), user_key(account), settle, amount, "adl")
    return amount


def _depositors(tx: Tx, fund: str, exclude: str | None = None) -> dict[str, int]:
    """Free settlement balances above zero of the accounts `fund` backs (everyone but an isolated
    market's traders, or those traders alone): who a socialized loss is spread over."""
    state = tx.scratch
    settle = _settle(state)
    balances = {
        a: state.ledger.balance(user_key(a), settle)
        for a in state.accounts
        if a != exclude and fund_of(tx.before, a) == fund
    }
    return {a: b for a, b in balances.items() if b > 0}


def _socialize(tx: Tx, amount: int, fund: str) -> int:
    """Spread `amount` over the fund's depositors, pro rata and exact, into the fund (Lyra, Drift)."""
    settle = _settle(tx.scratch)
    charges, _ = socialize(amount, _depositors(tx, fund))
    for charge in charges:
        tx.transfer(user_key(charge.account), fund, settle, charge.units, "socialized_loss")
    return sum(c.units for c in charges)


def _auto_deleverage(tx: Tx, account: str, amount: int) -> list[AdlFill]:
    """dYdX / Hyperliquid ADL: the bankrupt perps are closed against opposite-side accounts ranked
    by profit x leverage, at the bankruptcy price: at mark plus a charge that pays the deficit."""
    state = tx.scratch
    p = state.profile
    perps = {n: pos for n, pos in state.accounts[account].positions.items() if not pos.instrument.is_option}
    if not perps:
        return []
    notionals = {n: max(_gross_notional_units(tx, account, only=n), 1) for n in perps}
    shares = largest_remainder(amount, notionals)
    done: list[AdlFill] = []
    for name, pos in perps.items():
        step = p.underlying(pos.instrument.underlying).size_decimals
        book = _adl_book(tx, account, name, pos.size, step)
        if book is None:
            continue
        fills, _ = deleverage(shares[name], book)
        mark = Decimal(repr(_linear_price(state, pos.instrument)))
        for f in fills:
            size = Decimal(f.closed_lots).scaleb(-step).copy_sign(pos.size)
            _trade_at_mark(tx, account, f.account, pos.instrument, size, mark)
            tx.transfer(user_key(f.account), user_key(account), p.settlement_asset, f.loss_units, "adl")
            tx.emit(Deleveraged(account, f.account, name, size, f.loss_units))
            done.append(f)
    return done


def _adl_book(tx: Tx, account: str, name: str, size: Decimal, step: int) -> AdlBook | None:
    state = tx.scratch
    candidates = []
    for other in state.holders.get(name, {}):
        pos = state.accounts[other].positions[name]
        if other == account or (pos.size > 0) == (size > 0) or state.accounts[other].mode == "isolated":
            continue
        m = tx.margin(other)
        mine = next(x for x in m.positions if x.instrument == name)
        entry = abs(pos.quote)
        notional = decimal_to_units_half_even(
            abs(pos.size) * Decimal(repr(mine.mark_price)), state.profile.settlement_decimals
        )
        upnl = floor_units(mine.value, state.profile.settlement_decimals)
        if m.equity > 0 and entry > 0 and notional > 0:
            candidates.append(AdlCandidate(other, to_units(abs(pos.size), step), upnl, entry, notional, m.equity))
    if not candidates:
        return None
    return AdlBook(to_units(abs(size), step), tuple(candidates))


# --- Dutch auction -------------------------------------------------------------------------------


def bid(state: State, cmd: Bid) -> list[Event]:
    auction = state.auctions.get(cmd.auction)
    if auction is None:
        raise reject("unknown_auction", f"no auction {cmd.auction!r} is running")
    require_account(state, cmd.liquidator)
    if cmd.liquidator == auction.account:
        raise reject("self_liquidation", "an account cannot bid in its own liquidation", account=cmd.liquidator)
    _require_liquidator(state, cmd.liquidator)
    if auction.mechanism == "batch":
        return _batch_bid(state, auction, cmd)
    oracle_feed.require_fresh(state, oracle_feed.exposure(state, auction.account), "a liquidation")
    return _dutch_bid(state, auction, cmd)


def _dutch_bid(state: State, auction: Auction, cmd: Bid) -> list[Event]:
    tx = Tx(state)
    p = state.profile
    params = p.liquidation.dutch
    settle, decimals = p.settlement_asset, p.settlement_decimals
    m = tx.margin(auction.account)
    if not m.liquidatable:
        raise reject(
            "auction_ended", f"{auction.id}: {auction.account} is back above maintenance; advance time to close it"
        )
    acct = AuctionAccount.from_engine(m.equity, m.maintenance_margin, auction.reserved)
    elapsed = (state.now_s or 0) - auction.phase_started_s
    try:
        fill_ = dutch_bid(acct, float(cmd.fraction), elapsed, auction.phase, params)  # type: ignore[arg-type]
    except AuctionEndedError as exc:
        raise reject("auction_ended", f"{auction.id}: {exc.message}; advance time to close or restart it") from None
    if auction.phase == "solvent":
        whole = solvent_bid_price(acct.mtm_units, discount_at(elapsed, params), acct.reserved_units)
    else:
        whole = -insolvent_payment(acct.mtm_units, acct.mm_units, elapsed, params)
    if cmd.max_price is not None and whole > float(cmd.max_price.scaleb(decimals)):
        raise reject(
            "price_above_limit",
            f"{auction.id} costs {whole / 10**decimals:.2f} for all of it now, above "
            f"the bid's max_price {cmd.max_price}",
        )
    f = Decimal(repr(fill_.fraction))
    paid = fill_.bidder_pays_units - fill_.insurance_pays_units
    tx.emit(
        LiquidationFill(auction.id, auction.account, cmd.liquidator, "dutch", f, paid, 0, fill_.insurance_fee_units)
    )
    before = tx.margin(cmd.liquidator)
    _take_at_mark(tx, auction.account, cmd.liquidator, f, collateral=True)
    # Lyra hands the bidder f of the account's non-reserved value for what it pays: booked as the
    # value's share less the price, from the account to the bidder
    value = share_units(acct.mtm_units - acct.reserved_units, f)
    tx.transfer(
        user_key(auction.account), user_key(cmd.liquidator), settle, value - fill_.bidder_pays_units, "liquidation"
    )
    fund = fund_of(tx.before, auction.account)
    tx.transfer(user_key(cmd.liquidator), fund, settle, fill_.insurance_fee_units, "liquidation_fee")
    _insurance_pays(tx, fund, user_key(cmd.liquidator), fill_.insurance_pays_units)
    _check_liquidator(tx, cmd.liquidator, before)
    after = tx.margin(auction.account)
    emptied = not tx.scratch.accounts[auction.account].positions
    if fill_.terminates or not after.liquidatable or emptied:
        tx.emit(AuctionEnded(auction.id, "taken" if emptied else "restored"))
        if after.equity < 0 and not tx.scratch.accounts[auction.account].positions:
            _resolve_leftover(tx, auction.account)
    return tx.events


def _insurance_pays(tx: Tx, fund: str, payee_key: str, amount: int) -> None:
    """The insurance fund pays; what it lacks is first socialized into it (Lyra's cash socialization).
    It pays only what it holds after that: a bid that asks for more is refused (a smaller fraction
    asks less), so the fund never goes below zero and no money is made up."""
    state = tx.scratch
    settle = _settle(state)
    short = amount - max(state.ledger.balance(fund, settle), 0)
    if short > 0:
        collected = _socialize(tx, short, fund)
        if collected < short:
            held = tx.scratch.ledger.balance(fund, settle)
            d = state.profile.settlement_decimals
            raise reject(
                "insurance_insufficient",
                f"the insurance fund and a socialized loss can pay {held / 10**d:,.2f} of the "
                f"{amount / 10**d:,.2f} {settle} this takes; bid for a smaller fraction",
                needed=amount,
                available=held,
                asset=settle,
                decimals=d,
            )
    tx.transfer(fund, payee_key, settle, amount, "insurance")


def _resolve_leftover(tx: Tx, account: str) -> None:
    """An account emptied by an auction but still below zero (rounding, a gap): the waterfall."""
    tx.emit(_settle_waterfall(tx, account, -tx.margin(account).equity))


# --- batch auction ---------------------------------------------------------------------------


def _start_batch(tx: Tx, lid: str, account: str, m: AccountMargin) -> None:
    """Offer the slice that restores the buffer even if it sells at the reserve price (all of an
    insolvent account) to sealed bids for one window."""
    state = tx.scratch
    p = state.profile.liquidation
    f = ONE
    if m.equity > 0:
        equity = _usd(m.equity, state)
        haircut = sum(c.mm_haircut for c in m.collateral)
        maintenance = max(_usd(m.maintenance_margin, state) - haircut, 0.0)
        # selling everything at the reserve costs reserve_discount of the equity
        share = close_fraction(
            equity,
            maintenance,
            p.batch.reserve_discount * equity,
            p.partial.buffer_ratio,
            fixed_maintenance=haircut,
            quadratic_maintenance=min(_size_add_on(state, m.positions), maintenance),
        )
        gross = _gross_notional_units(tx, account)
        f = Decimal(repr(apply_small_account_cutoff(share, gross, p.partial.small_account_cutoff_units)))
    reserve = lot_reserve_price_units(share_units(m.equity, f), p.batch)
    phase = "solvent" if m.equity > 0 else "insolvent"
    now = state.now_s or 0
    tx.emit(LiquidationStarted(lid, account, "batch", phase, now, f, reserve, window_closes_at_s(now, p.batch)))


def _batch_bid(state: State, auction: Auction, cmd: Bid) -> list[Event]:
    if (state.now_s or 0) >= auction.closes_at:
        raise reject("auction_closed", f"{auction.id}'s window closed; its bids clear as time advances")
    if cmd.max_price is None:
        raise reject("max_price_required", "a sealed bid names the most it pays for the whole lot (max_price)")
    if any(b[0] == cmd.liquidator for b in auction.bids):
        raise reject("duplicate_bid", f"{cmd.liquidator} already bid in {auction.id}", account=cmd.liquidator)
    if len(auction.bids) >= state.profile.liquidation.batch.max_bids:
        raise reject("too_many_bids", f"{auction.id} holds the maximum number of bids")
    price = decimal_to_units_half_even(cmd.max_price, state.profile.settlement_decimals)
    return [BidPlaced(auction.id, cmd.liquidator, cmd.fraction, price)]


def _clear_batch(tx: Tx, auction: Auction) -> None:
    """Clear the window's sealed bids at one uniform price; a winner who cannot margin its share
    is dropped and the rest cleared again (deterministic: the order of bids never matters)."""
    state = tx.scratch
    p = state.profile
    m = tx.margin(auction.account)
    if not m.liquidatable:
        tx.emit(AuctionEnded(auction.id, "restored"))
        return
    bids = [SealedBid(b, Fraction(str(f)), price) for b, f, price in auction.bids]
    while True:
        clearing = clear_batch(bids, Fraction(1), auction.reserve_price, p.liquidation.batch)
        trial = Tx(state)
        failed = None
        taken = Decimal(0)  # of the account, by the winners before this one
        for alloc in clearing.allocations:
            try:
                taken += _batch_fill(trial, auction, alloc, m, taken)
            except Reject:  # a winner that cannot take its share
                failed = alloc.bidder
                break
        if failed is None:
            for event in trial.events:
                tx.emit(event)
            tx.emit(AuctionEnded(auction.id, "cleared" if clearing.allocations else "unsold"))
            after = tx.margin(auction.account)
            if after.equity < 0 and not tx.scratch.accounts[auction.account].positions:
                _resolve_leftover(tx, auction.account)
            elif not clearing.allocations and auction.phase == "insolvent":
                # nobody took an insolvent account: offer it again at once, so that its deficit
                # stays open (withdrawals gated) until a taker or the waterfall resolves it
                _start_batch(tx, _next_id(tx.scratch), auction.account, after)
            return
        bids = [b for b in bids if b.bidder != failed]


def _batch_fill(tx: Tx, auction: Auction, alloc, m: AccountMargin, taken: Decimal) -> Decimal:
    """One winner takes its share of the lot: `share` of the account as it was when the window
    closed, i.e. share / (1 - taken) of what earlier winners left. Returns the share."""
    state = tx.scratch
    settle = _settle(state)
    share = Decimal(alloc.fraction.numerator) / Decimal(alloc.fraction.denominator) * auction.fraction
    tx.emit(LiquidationFill(auction.id, auction.account, alloc.bidder, "batch", share, alloc.pays_units, 0, 0))
    before = tx.margin(alloc.bidder)
    _take_at_mark(tx, auction.account, alloc.bidder, min(share / (ONE - taken), ONE), collateral=True)
    value = share_units(m.equity, share)
    if alloc.pays_units >= 0:
        tx.transfer(user_key(auction.account), user_key(alloc.bidder), settle, value - alloc.pays_units, "liquidation")
    else:
        tx.transfer(user_key(auction.account), user_key(alloc.bidder), settle, value, "liquidation")
        _insurance_pays(tx, fund_of(tx.before, auction.account), user_key(alloc.bidder), -alloc.pays_units)
    _check_liquidator(tx, alloc.bidder, before)
    return share


# --- the clock -----------------------------------------------------------------------------------


def advance_time(state: State, cmd: AdvanceTime) -> list[Event]:
    """Move the clock, then sweep the auctions: batch windows that closed are cleared; Dutch
    auctions whose account is restored end; a solvent one past its slow phase restarts."""
    if state.now_s is not None and cmd.time_s < state.now_s:
        raise reject("time_backwards", f"time {cmd.time_s} is before the engine's clock {state.now_s}")
    step_max = state.profile.limits.clock_step_max_s
    if state.now_s is not None and cmd.time_s - state.now_s > step_max:
        raise reject(
            "clock_step_too_large",
            f"time {cmd.time_s} is {cmd.time_s - state.now_s:,} s after the engine's clock; "
            f"one advance_time moves it at most limits.clock_step_max_s = {step_max:,} s",
        )
    tx = Tx(state)
    computed_funding(tx, state.now_s, cmd.time_s)  # at the funding times passed, before the clock moves on
    tx.emit(TimeAdvanced(cmd.time_s))
    accrue_interest(tx, state.now_s, cmd.time_s)
    for auction in list(state.auctions.values()):
        if any(tx.scratch.oracle_blocked(u) for u in oracle_feed.exposure(tx.scratch, auction.account)):
            continue  # no liquidation moves on a stale or halted mark; it resumes when the mark recovers
        if auction.mechanism == "batch":
            if cmd.time_s >= auction.closes_at:
                _clear_batch(tx, auction)
            continue
        _sweep_dutch(tx, auction, cmd.time_s)
    return tx.events


def _sweep_dutch(tx: Tx, auction: Auction, now: int) -> None:
    m = tx.margin(auction.account)
    if not m.liquidatable:
        tx.emit(AuctionEnded(auction.id, "restored"))
        return
    params = tx.scratch.profile.liquidation.dutch
    acct = AuctionAccount.from_engine(m.equity, m.maintenance_margin, auction.reserved)
    elapsed = now - auction.phase_started_s
    over = auction.phase == "solvent" and (
        elapsed >= params.fast_duration_s + params.slow_duration_s or can_terminate(acct, "solvent", elapsed, params)
    )
    if over:
        tx.emit(
            AuctionPhaseChanged(
                auction.id, start_phase(AuctionAccount.from_engine(m.equity, m.maintenance_margin)), now
            )
        )

"""Engine state and `evolve`, the one place where state changes.

State is plain data: accounts with their positions, the ledger, market snapshots, the clock.
`evolve(state, event)` applies one event; replaying a journal of events from an empty state
gives the same state, to the unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from itertools import chain
from operator import attrgetter, methodcaller

from margin_engine.engine.events import (
    AccountOpened,
    AuctionEnded,
    AuctionPhaseChanged,
    BankruptcyResolved,
    BasisObserved,
    BidPlaced,
    CustodyConfirmed,
    Deleveraged,
    Event,
    ExpirySettled,
    FundingApplied,
    FundingComputed,
    InterestAccrued,
    LiquidationFill,
    LiquidationStarted,
    MarginCalled,
    MarketSet,
    OracleUpdated,
    PositionChanged,
    PriceRangeSet,
    SourceRegistered,
    SourceRevoked,
    TimeAdvanced,
    TradeExecuted,
    Transferred,
    WithdrawalClosed,
    WithdrawalRequested,
)
from margin_engine.errors import InvariantViolation
from margin_engine.instruments.names import Instrument, parse_instrument
from margin_engine.ledger.ledger import (
    EXTERNAL,
    FEES,
    INSURANCE,
    MARKET_FUND_PREFIX,
    PENDING,
    SETTLEMENT,
    SYSTEM_ACCOUNTS,
    USER_PREFIX,
    Ledger,
    allocation_key,
    is_fund,
    user_key,
)
from margin_engine.ledger.overlay import Overlay
from margin_engine.margin.book import AccountView, MarginMode, PositionView
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.liquidation_price import LiquidationPrices, liquidation_prices
from margin_engine.margin.profile import Profile
from margin_engine.margin.result import AccountMargin
from margin_engine.market.snapshot import MarketSnapshot, parse_market
from margin_engine.oracle.aggregator import Mark, OracleState, OracleStatus, PriceUpdate, apply_update, mark_at
from margin_engine.oracle.params import OracleParams
from margin_engine.perp.mark import mark_price


@dataclass(frozen=True)
class Position:
    instrument: Instrument
    size: Decimal
    quote: int = 0  # perp virtual cash in settlement units: -(entry notional) of the open size


@dataclass(frozen=True)
class Auction:
    """A liquidation under way: its phase started at `phase_started_s`; `reserved` is what
    bidders paid into the account during this auction (Lyra's reserved cash, never sold again)."""

    id: str
    account: str
    mechanism: str
    phase: str
    phase_started_s: int
    fraction: Decimal  # batch: the share of the account offered
    reserve_price: int  # batch: for the whole lot
    closes_at: int  # batch
    reserved: int = 0
    bids: tuple[tuple[str, Decimal, int], ...] = ()  # batch: (liquidator, fraction, max price)


@dataclass(frozen=True)
class PendingWithdrawal:
    """Asked for at `requested_s`, debited from the account, waiting for custody."""

    id: str
    account: str
    asset: str
    amount: int
    requested_s: int


@dataclass(frozen=True)
class PriceSource:
    """A price source registered by `register_source`: its Ed25519 public key (64 hex digits) and the
    underlyings it may quote. (The profile's `[oracle.sources]` register sources too.)"""

    source: str
    public_key: str
    underlyings: tuple[str, ...]


@dataclass(frozen=True)
class Account:
    """Replaced, never mutated, when a position changes (so scratch copies stay cheap and safe)."""

    id: str
    mode: MarginMode
    positions: dict[str, Position] = field(default_factory=dict)


@dataclass
class State:
    profile: Profile
    now_s: int | None = None
    accounts: MutableMapping[str, Account] = field(default_factory=dict)
    ledger: Ledger = field(default_factory=Ledger)
    markets: MutableMapping[str, MarketSnapshot] = field(default_factory=dict)
    settled: MutableMapping[tuple[str, int], Decimal] = field(default_factory=dict)
    holders: MutableMapping[str, dict[str, None]] = field(default_factory=dict)  # instrument -> accounts, ordered
    deposits: MutableMapping[str, int] = field(default_factory=dict)
    withdrawals: MutableMapping[str, int] = field(default_factory=dict)
    auctions: MutableMapping[str, Auction] = field(default_factory=dict)
    liquidations_started: int = 0  # numbers the auctions: L1, L2, ...
    bankrupt: MutableMapping[str, int] = field(default_factory=dict)  # account -> uncovered deficit: withdrawals gated
    oracles: MutableMapping[str, OracleState] = field(default_factory=dict)  # underlying -> its guards' state
    references: MutableMapping[str, str] = field(default_factory=dict)  # custody reference spent -> the account
    pending_withdrawals: MutableMapping[str, PendingWithdrawal] = field(default_factory=dict)  # W1, W2, ...
    withdrawals_requested: int = 0  # numbers the requests
    sources: MutableMapping[str, PriceSource] = field(default_factory=dict)  # registered price sources
    # portfolio price ranges set by set_price_range, over the profile's (its effective profile holds them)
    price_ranges: MutableMapping[str, float] = field(default_factory=dict)
    # perp -> (basis EMA in USD, time of the last fill folded in): the mark's basis (basis_observed)
    basis: MutableMapping[str, tuple[float, int]] = field(default_factory=dict)
    # perp -> (integral of the premium over seconds, window start, integrated up to): funding's window
    premiums: MutableMapping[str, tuple[float, int, int]] = field(default_factory=dict)
    # bankrupt account -> the isolated market's fund that owes its uncovered deficit (cross: absent)
    bankrupt_funds: MutableMapping[str, str] = field(default_factory=dict)
    # account -> its margin-call level other than clear (profile [margin_calls])
    margin_levels: MutableMapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.price_ranges:  # a restored snapshot: the profile it runs under, with the ranges set since
            self.profile = with_price_ranges(self.profile, self.price_ranges)
        # Not fields (not in snapshots, equality or scratch copies): which accounts changed when,
        # so margin scans rebuild only what moved (`Engine.margin_totals`).
        self.revision = 0
        self.touched: dict[str, int] = {}

    def touch(self, account: str) -> None:
        """Stamp the account with a new revision; `touched` stays ordered by revision (oldest first),
        so a scan finds what moved since its last look in time proportional to that."""
        self.revision += 1
        self.touched.pop(account, None)
        self.touched[account] = self.revision

    def oracle_mark(self, underlying: str) -> Mark | None:
        """The guarded mark at the engine's clock; None for an underlying never fed by the oracle
        (its market then comes from set_market alone, as a trusted admin's)."""
        oracle = self.oracles.get(underlying)
        if oracle is None or self.now_s is None:
            return None
        return mark_at(oracle, self.now_s, self.profile.oracle.params_for(underlying))

    def oracle_blocked(self, underlying: str) -> Mark | None:
        """The mark when it is stale or halted: risk-adding trades, withdrawals and liquidations on
        that underlying wait (fail closed)."""
        mark = self.oracle_mark(underlying)
        return mark if mark is not None and mark.status in (OracleStatus.stale, OracleStatus.halted) else None

    def auction_of(self, account: str) -> Auction | None:
        return next((a for a in self.auctions.values() if a.account == account), None)

    def scratch(self) -> State:
        """A what-if copy in O(1): every mapping gets a layer of its own for writes, and evolve
        replaces accounts rather than mutating them, so nothing written reaches this state."""
        return replace(
            self,
            accounts=Overlay(self.accounts),
            ledger=self.ledger.overlay(),
            markets=Overlay(self.markets),
            settled=Overlay(self.settled),
            holders=Overlay(self.holders),
            deposits=Overlay(self.deposits),
            withdrawals=Overlay(self.withdrawals),
            auctions=Overlay(self.auctions),
            bankrupt=Overlay(self.bankrupt),
            oracles=Overlay(self.oracles),
            references=Overlay(self.references),
            pending_withdrawals=Overlay(self.pending_withdrawals),
            sources=Overlay(self.sources),
            price_ranges=Overlay(self.price_ranges),
            basis=Overlay(self.basis),
            premiums=Overlay(self.premiums),
            bankrupt_funds=Overlay(self.bankrupt_funds),
            margin_levels=Overlay(self.margin_levels),
        )

    def view(self, account_id: str) -> AccountView:
        """What the margin maths reads of one account."""
        account = self.accounts[account_id]
        key = user_key(account_id)
        balances = {asset: self.ledger.balance(key, asset) for asset in self.profile.assets}
        settle = self.profile.settlement_asset
        positions = tuple(
            PositionView(
                p.instrument,
                p.size,
                p.quote,
                self.ledger.balance(allocation_key(account_id, name), settle) if account.mode == "isolated" else 0,
            )
            for name, p in account.positions.items()
        )
        return AccountView(account_id, account.mode, balances, positions)

    def margin(self, account_id: str, explain: bool = False) -> AccountMargin:
        """The margin of one account at the engine's clock: the one query the engine's checks, the
        service, the simulator and the tests read."""
        return compute_margins([self.view(account_id)], self.markets, self.profile, self.now_s or 0, explain=explain)[0]

    def liquidation_prices(self, account_id: str) -> list[LiquidationPrices]:
        """Per underlying the account holds positions in: the index levels that bring it to maintenance
        (cross and portfolio accounts; an isolated account's positions are liquidated one by one, on
        their own collateral, and get none here yet)."""
        if self.accounts[account_id].mode == "isolated":
            return []
        view = self.view(account_id)
        held = sorted({p.instrument.underlying for p in view.positions})
        return [liquidation_prices(view, self.markets, self.profile, self.now_s or 0, u) for u in held]


def evolve(state: State, event: Event) -> None:
    match event:
        case Transferred():
            state.ledger.post(event.transfer)
            for key in (event.debit, event.credit):
                if key.startswith(USER_PREFIX):
                    state.touch(key[len(USER_PREFIX) :].split("/", 1)[0])
            if event.reason == "deposit":
                state.deposits[event.asset] = state.deposits.get(event.asset, 0) + event.amount_units
            elif event.reason == "withdrawal":
                state.withdrawals[event.asset] = state.withdrawals.get(event.asset, 0) + event.amount_units
        case PositionChanged():
            _set_position(state, event)
        case AccountOpened():
            if event.account in state.accounts:
                raise InvariantViolation(f"account {event.account!r} opened twice")
            state.accounts[event.account] = Account(event.account, event.mode)  # type: ignore[arg-type]
            state.touch(event.account)
        case MarketSet():
            price_only = event.underlying not in state.profile.underlyings
            market = parse_market(event.underlying, event.market, f"market.{event.underlying}", price_only=price_only)
            before = state.markets.get(event.underlying)
            if before is not None and before.open_interest:  # the engine's count, not the admin's
                market = replace(market, open_interest=before.open_interest)
            basis = state.basis.get(f"{event.underlying}-PERP")
            if basis is not None and market.perp is None:  # the mark keeps its basis from the fills
                ratio = state.profile.underlyings[event.underlying].perp.basis_max_ratio
                market = replace(market, perp=mark_price(market.index, basis[0], ratio))
            state.markets[event.underlying] = market
        case TimeAdvanced():
            _integrate_premiums(state, event.time_s)
            state.now_s = event.time_s
        case BasisObserved():
            state.basis[event.instrument] = (event.ema_usd, event.time_s)
            u = event.instrument.removesuffix("-PERP")
            state.markets[u] = replace(state.markets[u], perp=event.mark)
        case FundingComputed():
            state.premiums[event.instrument] = (0.0, event.time_s, event.time_s)
        case ExpirySettled():
            state.settled[(event.underlying, event.expiry_s)] = event.price
        case LiquidationStarted():
            state.liquidations_started += 1
            state.auctions[event.auction] = Auction(
                event.auction,
                event.account,
                event.mechanism,
                event.phase,
                event.time_s,
                event.fraction,
                event.reserve_price_units,
                event.closes_at_s,
            )
        case BidPlaced():
            auction = state.auctions[event.auction]
            bid = (event.liquidator, event.fraction, event.max_price_units)
            state.auctions[event.auction] = replace(auction, bids=(*auction.bids, bid))
        case LiquidationFill():
            if event.mechanism == "fixed":
                state.liquidations_started += 1  # fixed liquidations are numbered too, but leave no auction
            elif event.paid_units > 0:
                auction = state.auctions[event.auction]
                state.auctions[event.auction] = replace(auction, reserved=auction.reserved + event.paid_units)
        case AuctionPhaseChanged():
            auction = state.auctions[event.auction]
            state.auctions[event.auction] = replace(
                auction, phase=event.phase, phase_started_s=event.time_s, reserved=0
            )
        case AuctionEnded():
            del state.auctions[event.auction]
        case BankruptcyResolved():
            if event.uncovered_units:
                state.bankrupt[event.account] = event.uncovered_units
            else:
                state.bankrupt.pop(event.account, None)
            if event.uncovered_units and event.fund != INSURANCE:
                state.bankrupt_funds[event.account] = event.fund
            else:
                state.bankrupt_funds.pop(event.account, None)
        case OracleUpdated():
            _apply_oracle(state, event)
        case MarginCalled():
            if event.level == "clear":
                state.margin_levels.pop(event.account, None)
            else:
                state.margin_levels[event.account] = event.level
        case CustodyConfirmed():
            if event.reference in state.references:
                raise InvariantViolation(f"custody reference {event.reference!r} spent twice")
            state.references[event.reference] = event.account
        case WithdrawalRequested():
            state.withdrawals_requested += 1
            state.pending_withdrawals[event.withdrawal] = PendingWithdrawal(
                event.withdrawal, event.account, event.asset, event.amount_units, event.time_s
            )
        case WithdrawalClosed():
            if state.pending_withdrawals.pop(event.withdrawal, None) is None:
                raise InvariantViolation(f"withdrawal {event.withdrawal} closed but not pending")
        case SourceRegistered():
            if event.source in state.sources:
                raise InvariantViolation(f"price source {event.source!r} registered twice")
            state.sources[event.source] = PriceSource(event.source, event.public_key, tuple(event.underlyings))
        case SourceRevoked():
            if state.sources.pop(event.source, None) is None:
                raise InvariantViolation(f"price source {event.source!r} revoked but not registered")
        case PriceRangeSet():
            state.price_ranges[event.underlying] = event.price_range
            state.profile = with_price_ranges(state.profile, {event.underlying: event.price_range})
        case TradeExecuted() | FundingApplied() | InterestAccrued() | Deleveraged():
            pass  # the transfers and position changes that follow carry the state change
        case _:
            raise InvariantViolation(f"no evolve rule for event {event!r}")


def premium_now(state: State, underlying: str) -> float:
    """(mark - index) / index of the underlying's perp as the market stands."""
    m = state.markets[underlying]
    return (m.perp_mark - m.index) / m.index


def _integrate_premiums(state: State, now_s: int) -> None:
    """Funding's windows (`[funding]`): the premium is constant between commands, so each
    window's integral grows by the premium times the seconds the clock moves."""
    if state.profile.funding is None:
        return
    for u in state.profile.underlyings:
        name = f"{u}-PERP"
        if u not in state.markets or state.now_s is None:
            continue
        integral, since, as_of = state.premiums.get(name, (0.0, state.now_s, state.now_s))
        state.premiums[name] = (integral + premium_now(state, u) * (now_s - as_of), since, now_s)


_last_guarded: tuple | None = None  # (oracle, update, params, now_s, result) of the last guard run


def guard(oracle: OracleState, update: PriceUpdate, params: OracleParams, now_s: int):
    """`apply_update`, remembering its last answer: `oracle_update` runs the guards to decide and
    evolve runs them again on the event; the second run of the same inputs (the oracle state and
    parameters by identity, both frozen; the update and clock by value) is a lookup."""
    global _last_guarded
    last = _last_guarded
    if last is not None and last[0] is oracle and last[2] is params and last[3] == now_s and last[1] == update:
        return last[4]
    result = apply_update(oracle, update, params, now_s)
    _last_guarded = (oracle, update, params, now_s, result)
    return result


def _apply_oracle(state: State, event: OracleUpdated) -> None:
    """Run the update through the guards again (they are deterministic) and move the market's
    index to the guarded mark, with a confidence score for the margin's confidence charges; a
    given perp mark and forwards move with it (`MarketSnapshot.moved_to`)."""
    u = event.underlying
    params = state.profile.oracle.params_for(u)
    update = PriceUpdate(u, event.source, event.price, event.confidence, event.timestamp_s, event.volume)
    oracle, outcome = guard(state.oracles.get(u, OracleState(u)), update, params, state.now_s or 0)
    if not outcome.accepted:
        raise InvariantViolation(f"a journaled oracle update no longer passes the guards: {outcome.message}")
    state.oracles[u] = oracle
    market = state.markets.get(u)
    if market is not None and outcome.mark.price is not None:
        state.markets[u] = market.moved_to(outcome.mark.price, confidence_score(oracle, outcome.mark, params))


def confidence_score(oracle: OracleState, mark: Mark, params: OracleParams) -> float:
    """1 for a tight band, falling to 0 as the median band of the sources used reaches the widest
    accepted (confidence_ratio_max): the [0, 1] confidence Lyra's contingencies read."""
    ratios = sorted((q.confidence or 0.0) / q.price for q in oracle.quotes if q.source in mark.sources_used)
    if not ratios:
        return 1.0
    mid = len(ratios) // 2
    median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    return min(max(1.0 - median / params.confidence_ratio_max, 0.0), 1.0)


def _set_position(state: State, event: PositionChanged) -> None:
    account = state.accounts[event.account]
    name = event.instrument
    positions = dict(account.positions)
    holders = dict(state.holders.get(name, {}))
    if event.size == 0:
        if event.quote_units != 0:
            raise InvariantViolation(f"closed position {name} of {event.account} keeps quote {event.quote_units}")
        positions.pop(name, None)
        holders.pop(event.account, None)
    else:
        old = positions.get(name)
        instrument = old.instrument if old else parse_instrument(name)
        positions[name] = Position(instrument, event.size, event.quote_units)
        holders[event.account] = None
    state.accounts[event.account] = replace(account, positions=positions)
    state.holders[name] = holders
    state.touch(event.account)
    perp = state.profile.underlyings.get(name.removesuffix("-PERP"))
    if name.endswith("-PERP") and perp is not None and perp.perp.open_interest_upper_cap_usd is not None:
        u = name.removesuffix("-PERP")
        if u in state.markets:
            state.markets[u] = replace(state.markets[u], open_interest=float(longs(state, name)))


def longs(state: State, name: str) -> Decimal:
    """An instrument's open interest in base units: the sum of its long positions."""
    total = Decimal(0)
    for account in state.holders.get(name, {}):
        size = state.accounts[account].positions[name].size
        if size > 0:
            total += size
    return total


def replay(profile: Profile, events: list[Event]) -> State:
    state = State(profile)
    for event in events:
        evolve(state, event)
    return state


def audit_events(state: State, events) -> None:
    """The audit of one command, in time proportional to its events (the full `audit` runs at
    snapshots and at load): money crosses the venue's edge only as a deposit (into a user or the
    insurance fund) or a withdrawal (out of a user or the pending account), and the insurance fund
    and the pending account never end below zero. The ledger itself is double-entry, so each
    transfer already sums to zero."""
    touched: set[tuple[str, str]] = set()
    for event in events:
        if not isinstance(event, Transferred):
            continue
        if EXTERNAL in (event.debit, event.credit):
            inward = event.debit == EXTERNAL
            if event.reason != ("deposit" if inward else "withdrawal"):
                raise InvariantViolation(f"money crossed the venue's edge as {event.reason!r}: {event}")
            inner = event.credit if inward else event.debit
            if not (inner.startswith(USER_PREFIX) or (is_fund(inner) if inward else inner == PENDING)):
                raise InvariantViolation(f"a {event.reason} touches {inner}: {event}")
        for key in (event.debit, event.credit):
            if key == PENDING or is_fund(key):
                touched.add((key, event.asset))
    for key, asset in touched:
        if state.ledger.balance(key, asset) < 0:
            raise InvariantViolation(f"{key} holds {state.ledger.balance(key, asset)} {asset} units: below zero")


def with_price_ranges(profile: Profile, ranges: Mapping[str, float]) -> Profile:
    """The profile with these portfolio underlyings' price ranges (idempotent; validated by the model)."""
    pm = profile.portfolio
    if pm is None:
        raise InvariantViolation("price ranges set on a profile without [portfolio]")
    unders = dict(pm.underlyings)
    for u, r in ranges.items():
        unders[u] = type(unders[u]).model_validate({**unders[u].model_dump(), "price_range": r})
    return profile.model_copy(update={"portfolio": pm.model_copy(update={"underlyings": unders})})


def audit(state: State) -> dict[str, dict[str, int]]:
    """Check conservation and the clearing identity; raise InvariantViolation on any break.

    Per asset: deposits - withdrawals = user balances + insurance (the main fund and isolated
    markets') + fees + settlement + pending withdrawals, and the external account mirrors it; the
    pending account holds exactly the withdrawals still waiting for custody. For the settlement
    asset, the settlement account equals the sum of open perp quotes (what open perps will realize
    in aggregate).
    """
    report = {}
    total_by_asset: dict[str, int] = defaultdict(int)
    market_funds: dict[str, int] = defaultdict(int)  # isolated markets' funds, summed per asset
    for (key, asset), units in state.ledger.balances.items():  # one pass over the ledger
        total_by_asset[asset] += units
        if key.startswith(MARKET_FUND_PREFIX):
            market_funds[asset] += units
            if units < 0:
                raise InvariantViolation(f"{key} holds {units} {asset} units: below zero")
    for asset in sorted(total_by_asset.keys() | set(state.deposits)):
        system = {key: state.ledger.balance(key, asset) for key in SYSTEM_ACCOUNTS}
        row = {
            "deposits": state.deposits.get(asset, 0),
            "withdrawals": state.withdrawals.get(asset, 0),
            # every other ledger account
            "users": total_by_asset.get(asset, 0) - sum(system.values()) - market_funds[asset],
            "insurance": system[INSURANCE] + market_funds[asset],
            "fees": system[FEES],
            "settlement": system[SETTLEMENT],
            "pending": system[PENDING],
        }
        held = row["users"] + row["insurance"] + row["fees"] + row["settlement"] + row["pending"]
        net = row["deposits"] - row["withdrawals"]
        if held != net or state.ledger.balance(EXTERNAL, asset) != -net or total_by_asset.get(asset, 0) != 0:
            raise InvariantViolation(
                f"conservation broken for {asset}: {row}, external {state.ledger.balance(EXTERNAL, asset)}"
            )
        if system[INSURANCE] < 0:
            raise InvariantViolation(f"the insurance fund holds {system[INSURANCE]} {asset} units: below zero")
        waiting = sum(w.amount for w in state.pending_withdrawals.values() if w.asset == asset)
        if waiting != row["pending"]:
            raise InvariantViolation(f"pending {asset} {row['pending']} != withdrawals waiting for custody {waiting}")
        report[asset] = row
    settle = state.profile.settlement_asset
    positions = map(methodcaller("values"), map(attrgetter("positions"), state.accounts.values()))
    open_quotes = sum(map(attrgetter("quote"), chain.from_iterable(positions)))
    if open_quotes != state.ledger.balance(SETTLEMENT, settle):
        raise InvariantViolation(
            f"settlement {state.ledger.balance(SETTLEMENT, settle)} != open perp quotes {open_quotes}"
        )
    return report

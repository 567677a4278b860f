"""Events: the only things that change engine state. Each serializes to JSON and back, so a
journal of events replays to the same state, to the unit."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar

from margin_engine.ledger.ledger import INSURANCE, Transfer


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """A field with a default came after the event's first form: left out at its default, so an
        event that does not use it keeps the text (and the journal hash) it always had."""
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.default is not MISSING and v == f.default:
                continue
            out[f.name] = format(v.normalize(), "f") if isinstance(v, Decimal) else v
        return out


@dataclass(frozen=True)
class AccountOpened(Event):
    type: ClassVar[str] = "account_opened"
    account: str
    mode: str


@dataclass(frozen=True)
class Transferred(Event):
    type: ClassVar[str] = "transfer"
    debit: str
    credit: str
    asset: str
    amount_units: int
    reason: str

    @property
    def transfer(self) -> Transfer:
        return Transfer(self.debit, self.credit, self.asset, self.amount_units, self.reason)


@dataclass(frozen=True)
class CustodyConfirmed(Event):
    """Custody (a chain, a bridge, a bank) confirmed a transfer for `account`: its reference is spent,
    so the same transfer is never credited (or paid out) twice. `kind`: deposit | withdrawal."""

    type: ClassVar[str] = "custody_confirmed"
    reference: str
    account: str
    kind: str


@dataclass(frozen=True)
class WithdrawalRequested(Event):
    """A withdrawal waits for custody; its amount sits in the pending ledger account meanwhile."""

    type: ClassVar[str] = "withdrawal_requested"
    withdrawal: str
    account: str
    asset: str
    amount_units: int
    time_s: int


@dataclass(frozen=True)
class WithdrawalClosed(Event):
    """Custody settled (`detail`: its reference) or failed (`detail`: why) a pending withdrawal."""

    type: ClassVar[str] = "withdrawal_closed"
    withdrawal: str
    outcome: str  # settled | failed
    detail: str


@dataclass(frozen=True)
class PositionChanged(Event):
    """New size and perp quote (virtual cash) of a position; size 0 closes it."""

    type: ClassVar[str] = "position_changed"
    account: str
    instrument: str
    size: Decimal
    quote_units: int


@dataclass(frozen=True)
class TradeExecuted(Event):
    type: ClassVar[str] = "trade"
    buyer: str
    seller: str
    instrument: str
    size: Decimal
    price: Decimal
    buyer_fee_units: int
    seller_fee_units: int


@dataclass(frozen=True)
class MarketSet(Event):
    type: ClassVar[str] = "market_set"
    underlying: str
    market: dict[str, Any]


@dataclass(frozen=True)
class TimeAdvanced(Event):
    type: ClassVar[str] = "time_advanced"
    time_s: int  # Unix seconds


@dataclass(frozen=True)
class FundingApplied(Event):
    type: ClassVar[str] = "funding_applied"
    instrument: str
    rate: Decimal
    index: str


@dataclass(frozen=True)
class InterestAccrued(Event):
    """Interest on the settlement asset's loans over `elapsed_s`, at the yearly `rate` of the
    `utilization` before it (profile `[interest]`); the transfers that follow move `total_units`."""

    type: ClassVar[str] = "interest_accrued"
    asset: str
    rate: Decimal
    utilization: Decimal
    elapsed_s: int
    total_units: int


@dataclass(frozen=True)
class ExpirySettled(Event):
    type: ClassVar[str] = "expiry_settled"
    underlying: str
    expiry_s: int  # Unix seconds
    price: Decimal


@dataclass(frozen=True)
class LiquidationStarted(Event):
    """An auction opened (dutch, batch); `fraction` is what a batch auction offers of the account."""

    type: ClassVar[str] = "liquidation_started"
    auction: str
    account: str
    mechanism: str
    phase: str  # solvent | insolvent
    time_s: int
    fraction: Decimal
    reserve_price_units: int  # batch: the least the lot sells for (negative: the most paid to hand it over)
    closes_at_s: int  # batch: when its bids are cleared; 0 otherwise


@dataclass(frozen=True)
class BidPlaced(Event):
    """A sealed bid of a batch auction, cleared with the others when its window closes."""

    type: ClassVar[str] = "bid_placed"
    auction: str
    liquidator: str
    fraction: Decimal
    max_price_units: int  # for the whole lot, settlement units


@dataclass(frozen=True)
class LiquidationFill(Event):
    """`liquidator` took `fraction` of `account` (fixed: at mark less the penalty; dutch, batch: at
    the auction's price); `paid_units` is what the liquidator paid for it (negative: was paid)."""

    type: ClassVar[str] = "liquidation_fill"
    auction: str
    account: str
    liquidator: str
    mechanism: str
    fraction: Decimal
    paid_units: int
    penalty_units: int
    insurance_fee_units: int


@dataclass(frozen=True)
class AuctionPhaseChanged(Event):
    type: ClassVar[str] = "auction_phase_changed"
    auction: str
    phase: str
    time_s: int


@dataclass(frozen=True)
class AuctionEnded(Event):
    type: ClassVar[str] = "auction_ended"
    auction: str
    reason: str


@dataclass(frozen=True)
class Deleveraged(Event):
    """ADL: `counterparty` closed `size` of its position against the bankrupt `account`, giving
    up `loss_units` against mark (the bankruptcy price)."""

    type: ClassVar[str] = "deleveraged"
    account: str
    counterparty: str
    instrument: str
    size: Decimal
    loss_units: int


@dataclass(frozen=True)
class BankruptcyResolved(Event):
    """The loss waterfall of one bankrupt account: who paid its deficit; `uncovered_units` > 0 keeps
    withdrawals (of its pool: cross or its isolated market) gated until the fund is refilled and the
    account resolved again."""

    type: ClassVar[str] = "bankruptcy"
    account: str
    deficit_units: int
    insurance_units: int
    adl_units: int
    socialized_units: int
    uncovered_units: int
    fund: str = INSURANCE  # the fund that paid: the main one, or an isolated market's (insurance:<perp>)


@dataclass(frozen=True)
class OracleUpdated(Event):
    """An accepted source update; replaying it through the guards gives the same mark, which is
    carried for readers (`mark`, `status`)."""

    type: ClassVar[str] = "oracle_updated"
    underlying: str
    source: str
    price: float
    confidence: float | None
    volume: float | None
    timestamp_s: int
    mark: float | None
    status: str


@dataclass(frozen=True)
class SourceRegistered(Event):
    """A price source joined the oracle: its Ed25519 public key (64 hex digits) and the underlyings
    it may quote."""

    type: ClassVar[str] = "source_registered"
    source: str
    public_key: str
    underlyings: list[str]


@dataclass(frozen=True)
class SourceRevoked(Event):
    """A registered source may push no more updates (its quotes already taken age out)."""

    type: ClassVar[str] = "source_revoked"
    source: str
    public_key: str


@dataclass(frozen=True)
class PriceRangeSet(Event):
    """A portfolio underlying's scenario price range changed (an admin's `set_price_range`)."""

    type: ClassVar[str] = "price_range_set"
    underlying: str
    price_range: float


@dataclass(frozen=True)
class BasisObserved(Event):
    """A perp fill's basis (price - index, clamped) folded into the basis EMA; the perp's mark is
    now index + the EMA (`[underlyings.X.perp] basis_ema_s`, Deribit's mark)."""

    type: ClassVar[str] = "basis_observed"
    instrument: str
    basis_usd: float
    ema_usd: float
    mark: float
    time_s: int


@dataclass(frozen=True)
class FundingComputed(Event):
    """The engine's funding for `periods` funding times up to `time_s` (profile `[funding]`): the
    venue's `rule` on the window's mean `premium` ((mark - index) / index, time-weighted); the
    funding_applied event and transfers that follow pay `rate`; the next window starts here."""

    type: ClassVar[str] = "funding_computed"
    instrument: str
    rule: str
    premium: float
    periods: int
    rate: Decimal
    time_s: int


@dataclass(frozen=True)
class MarginCalled(Event):
    """An account's margin-call level changed (profile `[margin_calls]`): `warn`, `reduce_only`
    (risk-adding trades refused), `liquidation` (equity at or below maintenance) or `clear`;
    `equity_mm_ratio` is equity / maintenance as it was then (None: nothing required)."""

    type: ClassVar[str] = "margin_call"
    account: str
    level: str
    equity_mm_ratio: float | None
    time_s: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        AccountOpened,
        Transferred,
        CustodyConfirmed,
        WithdrawalRequested,
        WithdrawalClosed,
        PositionChanged,
        TradeExecuted,
        MarketSet,
        TimeAdvanced,
        FundingApplied,
        InterestAccrued,
        ExpirySettled,
        LiquidationStarted,
        BidPlaced,
        LiquidationFill,
        AuctionPhaseChanged,
        AuctionEnded,
        Deleveraged,
        BankruptcyResolved,
        OracleUpdated,
        SourceRegistered,
        SourceRevoked,
        PriceRangeSet,
        BasisObserved,
        FundingComputed,
        MarginCalled,
    )
}
_DECIMAL_FIELDS = {"size", "price", "rate", "fraction", "utilization"}
_FLOAT_EVENTS = {"oracle_updated"}  # oracle prices are floats, as the sources send them
# Journals written before event fields carried their unit (format 1) name them without the suffix;
# they still load. The hash chain covers the stored text, so old rows are never rewritten.
_FORMAT_1_NAMES = {
    "amount_units": "amount",
    "time_s": "time",
    "quote_units": "quote",
    "buyer_fee_units": "buyer_fee",
    "seller_fee_units": "seller_fee",
    "expiry_s": "expiry",
    "reserve_price_units": "reserve_price",
    "closes_at_s": "closes_at",
    "max_price_units": "max_price",
    "paid_units": "paid",
    "penalty_units": "penalty",
    "insurance_fee_units": "insurance_fee",
    "loss_units": "loss",
    "deficit_units": "deficit",
    "insurance_units": "insurance",
    "adl_units": "adl",
    "socialized_units": "socialized",
    "uncovered_units": "uncovered",
    "timestamp_s": "timestamp",
}


def event_from_json(data: dict[str, Any]) -> Event:
    """An event from its JSON: this format's field names, or format 1's (no unit suffixes)."""
    cls = EVENT_TYPES[data["type"]]
    decimals = set() if cls.type in _FLOAT_EVENTS else _DECIMAL_FIELDS
    kwargs = {}
    for f in fields(cls):
        if f.name not in data and f.default is not MISSING:
            continue
        value = data[f.name] if f.name in data else data[_FORMAT_1_NAMES.get(f.name, f.name)]
        kwargs[f.name] = Decimal(value) if f.name in decimals else value
    return cls(**kwargs)


__all__ = ["Event", "EVENT_TYPES", "event_from_json"] + [c.__name__ for c in EVENT_TYPES.values()]

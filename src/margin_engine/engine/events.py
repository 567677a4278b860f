"""Events: the only things that change engine state. Each serializes to JSON and back, so a
journal of events replays to the same state, to the unit."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar

from margin_engine.ledger.ledger import Transfer


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = format(v, "f") if isinstance(v, Decimal) else v
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
    amount: int
    reason: str

    @property
    def transfer(self) -> Transfer:
        return Transfer(self.debit, self.credit, self.asset, self.amount, self.reason)


@dataclass(frozen=True)
class PositionChanged(Event):
    """New size and perp quote (virtual cash) of a position; size 0 closes it."""

    type: ClassVar[str] = "position_changed"
    account: str
    instrument: str
    size: Decimal
    quote: int


@dataclass(frozen=True)
class TradeExecuted(Event):
    type: ClassVar[str] = "trade"
    buyer: str
    seller: str
    instrument: str
    size: Decimal
    price: Decimal
    buyer_fee: int
    seller_fee: int


@dataclass(frozen=True)
class MarketSet(Event):
    type: ClassVar[str] = "market_set"
    underlying: str
    market: dict[str, Any]


@dataclass(frozen=True)
class TimeAdvanced(Event):
    type: ClassVar[str] = "time_advanced"
    time: int  # Unix seconds


@dataclass(frozen=True)
class FundingApplied(Event):
    type: ClassVar[str] = "funding_applied"
    instrument: str
    rate: Decimal
    index: str


@dataclass(frozen=True)
class ExpirySettled(Event):
    type: ClassVar[str] = "expiry_settled"
    underlying: str
    expiry: int  # Unix seconds
    price: Decimal


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        AccountOpened,
        Transferred,
        PositionChanged,
        TradeExecuted,
        MarketSet,
        TimeAdvanced,
        FundingApplied,
        ExpirySettled,
    )
}
_DECIMAL_FIELDS = {"size", "price", "rate"}


def event_from_json(data: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[data["type"]]
    kwargs = {f.name: Decimal(data[f.name]) if f.name in _DECIMAL_FIELDS else data[f.name] for f in fields(cls)}
    return cls(**kwargs)


__all__ = ["Event", "EVENT_TYPES", "event_from_json"] + [c.__name__ for c in EVENT_TYPES.values()]

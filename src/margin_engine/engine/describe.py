"""Events and rejections for people and for readers' JSON: amounts with their asset, times in UTC.

The journal keeps each event's own JSON (integers in smallest units under `_units` names, Unix
seconds under `_s` names). What the CLI, the service and the desk show adds, beside each of those,
the decimal amount (`amount` next to `amount_units`) or the ISO UTC time (`time` next to `time_s`),
and a sentence (`text`) that says what happened.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from margin_engine.clock import format_time
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
    TimeAdvanced,
    TradeExecuted,
    Transferred,
    WithdrawalClosed,
    WithdrawalRequested,
)
from margin_engine.engine.rejection import Rejection
from margin_engine.ledger.ledger import USER_PREFIX
from margin_engine.ledger.units import format_units, human_amount, human_number
from margin_engine.margin.profile import Profile

FORMAT_VERSION = 2  # of readers' JSON: 2 names every integer amount `_units` and every time `_s`


DURATIONS = {"elapsed_s"}  # event fields in seconds that are spans, not times


def event_view(event: Event, profile: Profile) -> dict[str, Any]:
    """The event's JSON plus, for each `x_units`, `x` as a decimal string of its asset, for each
    `x_s` (a time; DURATIONS are seconds, left as they are), `x` as ISO UTC (None for 0, "not
    set"), and `text`."""
    out = event.to_json()
    decimals = _decimals(event, profile)
    for key, value in list(out.items()):
        if key.endswith("_units") and isinstance(value, int):
            out[key[: -len("_units")]] = format_units(value, decimals)
        elif key.endswith("_s") and isinstance(value, int) and key not in DURATIONS:
            out[key[: -len("_s")]] = format_time(value) if value else None
    out["text"] = describe(event, profile)
    return out


def rejection_text(rejection: Rejection) -> str:
    """`insufficient_margin: ... (needs 1,234.56 USDC, has 1,000.00 USDC)`."""
    numbers = ""
    if rejection.needed is not None and rejection.decimals is not None and rejection.asset is not None:
        numbers = (
            f" (needs {human_amount(rejection.needed, rejection.decimals, rejection.asset)}, "
            f"has {human_amount(rejection.available or 0, rejection.decimals, rejection.asset)})"
        )
    return f"{rejection.code}: {rejection.message}{numbers}"


def describe(event: Event, profile: Profile) -> str:
    """One sentence per event, in the profile's assets."""
    cash = profile.settlement_asset

    def money(units: int, asset: str = cash) -> str:
        return human_amount(units, profile.asset(asset).decimals, asset)

    match event:
        case AccountOpened():
            return f"account {event.account} opened ({event.mode} margin)"
        case Transferred():
            amount = money(event.amount_units, event.asset)
            return f"{amount}: {_party(event.debit)} -> {_party(event.credit)} ({event.reason.replace('_', ' ')})"
        case CustodyConfirmed():
            return f"custody confirmed {event.account}'s {event.kind} {event.reference}"
        case WithdrawalRequested():
            return (
                f"{event.account} asked to withdraw {money(event.amount_units, event.asset)} "
                f"({event.withdrawal}); it waits for custody"
            )
        case WithdrawalClosed():
            return f"withdrawal {event.withdrawal} {event.outcome} ({event.detail})"
        case PositionChanged():
            if event.size == 0:
                return f"{event.account} closed {event.instrument}"
            quote = f", perp cash {money(event.quote_units)}" if "PERP" in event.instrument else ""
            return f"{event.account} now holds {_size(event.size)} {event.instrument}{quote}"
        case TradeExecuted():
            return (
                f"{event.buyer} bought {_size(event.size)} {event.instrument} from {event.seller} at "
                f"{human_number(float(event.price))} USD (fees {money(event.buyer_fee_units)} buyer, "
                f"{money(event.seller_fee_units)} seller)"
            )
        case MarketSet():
            return _market_text(event)
        case TimeAdvanced():
            return f"engine time {_time(event.time_s)}"
        case FundingApplied():
            index = human_number(float(event.index))
            return f"funding {_percent(event.rate, 4)} on {event.instrument} at index {index} USD"
        case InterestAccrued():
            return (
                f"interest {_percent(event.rate, 2)} a year at {_percent(event.utilization, 0)} utilization over "
                f"{event.elapsed_s:,} s: {money(event.total_units)} from borrowers"
            )
        case ExpirySettled():
            price = human_number(float(event.price))
            return f"{event.underlying} options and futures of {_time(event.expiry_s)} settled at {price} USD"
        case LiquidationStarted():
            text = f"liquidation {event.auction} of {event.account}: {event.mechanism} auction, {event.phase} phase"
            if event.mechanism == "batch":
                text += (
                    f", offering {_percent(event.fraction)} of the account, reserve "
                    f"{money(event.reserve_price_units)}, bids close {_time(event.closes_at_s)}"
                )
            return text
        case BidPlaced():
            return (
                f"{event.liquidator} bid for {_percent(event.fraction)} of {event.auction}'s lot, "
                f"at most {money(event.max_price_units)}"
            )
        case LiquidationFill():
            paid = (
                f"paid {money(event.paid_units)}" if event.paid_units >= 0 else f"was paid {money(-event.paid_units)}"
            )
            charges = []
            if event.penalty_units:
                charges.append(f"penalty {money(event.penalty_units)}")
            if event.insurance_fee_units:
                charges.append(f"{money(event.insurance_fee_units)} to the insurance fund")
            return (
                f"{event.liquidator} took {_percent(event.fraction)} of {event.account}'s book "
                f"({_MECHANISMS.get(event.mechanism, event.mechanism)}): {paid}"
                + (f"; {', '.join(charges)}" if charges else "")
            )
        case AuctionPhaseChanged():
            return f"auction {event.auction} now in its {event.phase} phase"
        case AuctionEnded():
            return f"auction {event.auction} ended: {event.reason.replace('_', ' ')}"
        case Deleveraged():
            return (
                f"auto-deleveraging: {event.counterparty} closed {_size(event.size)} {event.instrument} "
                f"against {event.account}, giving up {money(event.loss_units)}"
            )
        case BankruptcyResolved():
            parts = [
                f"insurance fund {money(event.insurance_units)}",
                f"auto-deleveraging {money(event.adl_units)}",
                f"socialized {money(event.socialized_units)}",
            ]
            if event.uncovered_units:
                parts.append(f"uncovered {money(event.uncovered_units)} (withdrawals gated)")
            return f"{event.account} bankrupt by {money(event.deficit_units)}, paid by " + ", ".join(parts)
        case BasisObserved():
            return (
                f"{event.instrument} basis {human_number(event.basis_usd)} USD at a fill; its EMA "
                f"{human_number(event.ema_usd)} USD puts the mark at {human_number(event.mark)} USD"
            )
        case FundingComputed():
            return (
                f"{event.instrument} funding computed by the {event.rule} rule: mean premium "
                f"{_percent(event.premium, 4)}, {_percent(event.rate, 5)} over {event.periods} period(s)"
            )
        case MarginCalled():
            ratio = (
                "nothing required"
                if event.equity_mm_ratio is None
                else f"equity {event.equity_mm_ratio:.1%} of maintenance"
            )
            return f"margin call: {event.account} at {_LEVELS.get(event.level, event.level)} ({ratio})"
        case PriceRangeSet():
            return f"{event.underlying} portfolio price range set to +/-{event.price_range:.1%}"
        case OracleUpdated():
            mark = "no mark" if event.mark is None else f"mark {human_number(event.mark)} USD"
            return (
                f"{event.underlying} {human_number(event.price)} USD from {event.source} "
                f"({_time(event.timestamp_s)}): {mark}, {event.status}"
            )
    return event.type.replace("_", " ")


_MECHANISMS = {"fixed": "fixed penalty", "dutch": "Dutch auction", "batch": "batch auction"}
_LEVELS = {"warn": "the warning level", "reduce_only": "reduce-only", "liquidation": "liquidation", "clear": "clear"}


def _decimals(event: Event, profile: Profile) -> int:
    asset = getattr(event, "asset", None)
    return profile.asset(asset).decimals if isinstance(asset, str) else profile.settlement_decimals


def _party(key: str) -> str:
    if key.startswith(USER_PREFIX):
        account, _, instrument = key[len(USER_PREFIX) :].partition("/")
        return f"{account} ({instrument} collateral)" if instrument else account
    return {"insurance": "insurance fund", "fees": "fee pool", "withdrawals_pending": "pending withdrawals"}.get(
        key, key
    )


def _size(size: Decimal) -> str:
    return format(size.normalize(), "f") if size == size.to_integral_value() or abs(size) < 1 else f"{size:,f}"


def _percent(x: Decimal | float, places: int = 2) -> str:
    return f"{float(x) * 100:.{places}f}%"


def _time(seconds: int) -> str:
    return format_time(seconds).replace("T", " ").replace("Z", " UTC") if seconds else "(not set)"


def _market_text(event: MarketSet) -> str:
    m = event.market
    parts = [f"index {human_number(float(m['index']))} USD"] if "index" in m else []
    vol = m.get("vol")
    if isinstance(vol, (int, float, str)):
        parts.append(f"vol {_percent(float(vol), 1)}")
    elif isinstance(vol, dict):
        parts.append(f"vol surface of {len(vol)} expiries")
    rate = m.get("rate")
    if isinstance(rate, dict):
        parts.append(f"rates for {len(rate)} expiries")
    elif rate is not None:
        parts.append(f"rate {_percent(float(rate), 2)}")
    if isinstance(m.get("forward"), dict):
        parts.append(f"forwards for {len(m['forward'])} expiries")
    if "perp" in m:
        parts.append(f"perp mark {human_number(float(m['perp']))} USD")
    conf = m.get("confidence")
    if isinstance(conf, dict):
        parts.append("confidence " + ", ".join(f"{k} {_describe_conf(v)}" for k, v in conf.items()))
    elif conf is not None:
        parts.append(f"confidence {human_number(float(conf))}")
    if set(m) <= {"index", "confidence"} and "index" in m:  # a stablecoin's price: its fourth decimal matters
        parts[0] = f"{float(m['index']):.4f} USD"
        return f"{event.underlying} price: " + ", ".join(parts)
    return f"{event.underlying} market: " + ", ".join(parts)


def _describe_conf(value) -> str:
    return f"by expiry ({len(value)})" if isinstance(value, dict) else human_number(float(value))

"""Engine commands and their parsing from JSON objects.

Parsing checks the shape of a command (types, signs, decimals of the asset, instrument names)
and raises `InputError` naming the field; whether the command is allowed in the current state is
the engine's decision, answered with a `Rejection`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from margin_engine.clock import format_time, parse_time
from margin_engine.errors import InputError
from margin_engine.ids import ACCOUNT_ID_RE, check_account_id
from margin_engine.instruments.names import Instrument, Perpetual, parse_expiry, parse_instrument
from margin_engine.ledger.units import parse_decimal, to_units
from margin_engine.margin.book import MARGIN_MODES, MarginMode
from margin_engine.margin.profile import Profile
from margin_engine.market.snapshot import MARKET_FIELDS, MarketSnapshot, parse_market
from margin_engine.oracle.aggregator import SOURCE_RE, PriceUpdate

# a custody transfer's reference: "0x<tx hash>:<log index>", a bank reference; printable ASCII
REFERENCE_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
WITHDRAWAL_ID_RE = re.compile(r"^W[1-9][0-9]{0,17}$")
REASON_LENGTH_MAX = 200
PUBLIC_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")  # a raw 32-byte Ed25519 public key
FUNDING_RATE_MAX = Decimal("0.1")  # per application; beyond it is surely a unit error


@dataclass(frozen=True)
class OpenAccount:
    account: str
    mode: MarginMode


@dataclass(frozen=True)
class Deposit:
    """Collateral credited to an account; `reference` names the custody transfer it comes from (a
    chain transaction and log index, a bank reference), credited once."""

    account: str
    asset: str
    amount: int  # smallest units
    reference: str | None = None


@dataclass(frozen=True)
class Withdraw:
    account: str
    asset: str
    amount: int


@dataclass(frozen=True)
class RequestWithdrawal:
    """A trader asks for collateral out: debited at once into the pending account, then custody pays
    it out (`settle_withdrawal`) or returns it (`fail_withdrawal`)."""

    account: str
    asset: str
    amount: int


@dataclass(frozen=True)
class SettleWithdrawal:
    """Custody paid a requested withdrawal out; `reference` is its transfer, spent once."""

    withdrawal: str
    reference: str


@dataclass(frozen=True)
class FailWithdrawal:
    """Custody could not pay a requested withdrawal: the amount goes back to the account."""

    withdrawal: str
    reason: str


@dataclass(frozen=True)
class SetMarket:
    market: MarketSnapshot
    raw: dict[str, Any]  # as given, kept for the event


@dataclass(frozen=True)
class Trade:
    """A fill from a matching engine: `buyer` buys `size` from `seller` at `price` (USD per unit)."""

    buyer: str
    seller: str
    instrument: Instrument
    size: Decimal
    price: Decimal
    aggressor: Literal["buyer", "seller"] | None = None


@dataclass(frozen=True)
class Allocate:
    """Move collateral into (amount > 0) or out of (< 0) an isolated position."""

    account: str
    instrument: Instrument
    amount: int


@dataclass(frozen=True)
class ApplyFunding:
    """Longs pay shorts size * index * rate (shorts pay longs when the rate is negative)."""

    instrument: Perpetual
    rate: Decimal


@dataclass(frozen=True)
class SettleExpiry:
    underlying: str
    expiry_s: int
    price: Decimal


@dataclass(frozen=True)
class AdvanceTime:
    time_s: int


@dataclass(frozen=True)
class FundInsurance:
    """Capital paid into the insurance fund from outside (a treasury, a protocol's reserve); into an
    isolated market's own fund when `market` names its perp."""

    asset: str
    amount: int
    market: str | None = None


@dataclass(frozen=True)
class StartLiquidation:
    """Start liquidating an account below maintenance; the fixed mechanism (and isolated
    accounts) needs the `liquidator` who takes the positions at once."""

    account: str
    liquidator: str | None = None


@dataclass(frozen=True)
class Bid:
    """A bid for `fraction` of what an auction sells; `max_price` is the most the bidder pays for
    all of it (negative: the least it must be paid), in USD."""

    auction: str
    liquidator: str
    fraction: Decimal
    max_price: Decimal | None = None


@dataclass(frozen=True)
class OracleUpdate:
    """A source's signed price of an underlying (`signature`: Ed25519 over the update's canonical
    bytes, hex); `confidence` is a +/- band in USD, as Pyth publishes it."""

    update: PriceUpdate
    signature: bytes | None


@dataclass(frozen=True)
class RegisterSource:
    """A price source joins the oracle (an admin's command): its Ed25519 public key, lowercase hex,
    and the underlyings it may quote (default: every underlying of the profile)."""

    source: str
    public_key: str
    underlyings: tuple[str, ...]


@dataclass(frozen=True)
class RevokeSource:
    """A source registered by `register_source` may push no more updates."""

    source: str


@dataclass(frozen=True)
class SetPriceRange:
    """An admin's change of a portfolio underlying's scenario price range (a fraction of spot, as
    the profile's `[portfolio.underlyings.X] price_range`): journaled, so a run that changes it
    (volatility-driven ranges) replays."""

    underlying: str
    price_range: float


Command = (
    OpenAccount
    | Deposit
    | Withdraw
    | RequestWithdrawal
    | SettleWithdrawal
    | FailWithdrawal
    | SetMarket
    | Trade
    | Allocate
    | ApplyFunding
    | SettleExpiry
    | AdvanceTime
    | FundInsurance
    | StartLiquidation
    | Bid
    | OracleUpdate
    | RegisterSource
    | RevokeSource
    | SetPriceRange
)


class _Fields:
    """Reads fields of one command object, naming each in errors, and rejects unknown ones."""

    def __init__(self, obj: dict[str, Any], allowed: set[str]):
        unknown = set(obj) - allowed - {"type"}
        if unknown:
            raise InputError(sorted(unknown)[0], f"unknown field for {obj.get('type')!r}; expected {sorted(allowed)}")
        self.obj = obj

    def get(self, name: str, default: Any = ...) -> Any:
        if name not in self.obj or self.obj[name] is None:
            if default is ...:
                raise InputError(name, "missing")
            return default
        return self.obj[name]

    def account(self, name: str = "account") -> str:
        return check_account_id(self.get(name), name)


def _size(value: object, instrument: Instrument, profile: Profile, field: str) -> Decimal:
    size = _bounded(parse_decimal(value, field, positive=True), profile.limits.size_max, field, " contracts")
    decimals = profile.underlying(instrument.underlying, "instrument").size_decimals
    to_units(size, decimals, field)  # rejects sizes finer than the underlying's size step
    return size


def _instrument(fields: _Fields, profile: Profile, name: str = "instrument") -> Instrument:
    inst = parse_instrument(fields.get(name), name)
    profile.underlying(inst.underlying, name)
    return inst


def parse_command(obj: object, profile: Profile) -> Command:
    if not isinstance(obj, dict):
        raise InputError("command", f"expected a JSON object with a 'type', got {type(obj).__name__}")
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise InputError("type", f"unknown command type {kind!r}; expected one of {', '.join(_PARSERS)}")
    return parser(obj, profile)


def _open_account(obj, profile) -> OpenAccount:
    f = _Fields(obj, {"account", "mode"})
    mode = f.get("mode", "cross")
    if mode not in MARGIN_MODES:
        raise InputError("mode", f"must be one of {', '.join(MARGIN_MODES)}, got {mode!r}")
    return OpenAccount(f.account(), mode)


def _money(f: _Fields, profile: Profile) -> tuple[str, int]:
    asset = f.get("asset", profile.settlement_asset)
    if not isinstance(asset, str):
        raise InputError("asset", f"expected an asset symbol such as 'USDC', got {asset!r}")
    params = profile.asset(asset)
    amount = _bounded(parse_decimal(f.get("amount"), "amount", positive=True), profile.limits.amount_max, "amount")
    return asset, to_units(amount, params.decimals, "amount")


def _bounded(value: Decimal, limit: float, field: str, unit: str = "") -> Decimal:
    """A value within the profile's limit (`limits.*`), or an error naming both."""
    if abs(value) > Decimal(repr(limit)):
        raise InputError(field, f"{value} is above the limit of {limit:,.0f}{unit} (profile limits)")
    return value


def _text(f: _Fields, name: str, pattern: re.Pattern, what: str) -> str:
    value = f.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise InputError(name, f"expected {what}, got {value!r}"[:200])
    return value


def _deposit(obj, profile) -> Deposit:
    f = _Fields(obj, {"account", "asset", "amount", "reference"})
    reference = None
    if f.get("reference", None) is not None:
        reference = _text(f, "reference", REFERENCE_RE, "a custody reference of 1-128 printable ASCII characters")
    return Deposit(f.account(), *_money(f, profile), reference)


def _request_withdrawal(obj, profile) -> RequestWithdrawal:
    f = _Fields(obj, {"account", "asset", "amount"})
    return RequestWithdrawal(f.account(), *_money(f, profile))


def _settle_withdrawal(obj, profile) -> SettleWithdrawal:
    f = _Fields(obj, {"withdrawal", "reference"})
    return SettleWithdrawal(
        _text(f, "withdrawal", WITHDRAWAL_ID_RE, "a withdrawal id such as 'W1'"),
        _text(f, "reference", REFERENCE_RE, "a custody reference of 1-128 printable ASCII characters"),
    )


def _fail_withdrawal(obj, profile) -> FailWithdrawal:
    f = _Fields(obj, {"withdrawal", "reason"})
    reason = f.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_LENGTH_MAX:
        raise InputError("reason", f"say why custody could not pay, in 1-{REASON_LENGTH_MAX} characters")
    return FailWithdrawal(_text(f, "withdrawal", WITHDRAWAL_ID_RE, "a withdrawal id such as 'W1'"), reason)


def _withdraw(obj, profile) -> Withdraw:
    f = _Fields(obj, {"account", "asset", "amount"})
    return Withdraw(f.account(), *_money(f, profile))


def _set_market(obj, profile) -> SetMarket:
    """An underlying's market, or the USD price of a collateral asset that is no underlying (the
    settlement stablecoin: `{"underlying": "USDC", "index": 0.985}`)."""
    f = _Fields(obj, {"underlying", *MARKET_FIELDS})
    underlying = f.get("underlying")
    price_only = isinstance(underlying, str) and underlying in profile.assets and underlying not in profile.underlyings
    if not price_only:
        profile.underlying(underlying)
    raw = {k: obj[k] for k in MARKET_FIELDS if k in obj}
    market = parse_market(underlying, raw, "market", price_only=price_only)
    limit = profile.limits.price_max_usd
    _bounded(Decimal(repr(market.index)), limit, "index", " USD")
    # a perp mark or forward this far from the index is a unit error, not a basis
    band = profile.limits.perp_price_band_ratio
    given = [("perp", market.perp)] if market.perp is not None else []
    given += [("forward", f) for _, f in (market.forwards.points if market.forwards else ())]
    for name, price in given:
        _bounded(Decimal(repr(price)), limit, name, " USD")
        if abs(price / market.index - 1) > band:
            raise InputError(name, f"{price:g} USD is more than {band:.0%} away from the index {market.index:g} USD")
    return SetMarket(market, raw)


def parse_fill(
    instrument: object, size: object, price: object, profile: Profile, prefix: str = ""
) -> tuple[Instrument, Decimal, Decimal]:
    """The instrument, size (> 0) and price (USD per unit) of a fill: what a trade and a what-if read."""
    inst = parse_instrument(instrument, f"{prefix}instrument")
    profile.underlying(inst.underlying, f"{prefix}instrument")
    checked_size = _size(size, inst, profile, f"{prefix}size")
    checked_price = parse_decimal(price, f"{prefix}price", positive=not inst.is_option, non_negative=True)
    _bounded(checked_price, profile.limits.price_max_usd, f"{prefix}price", " USD")
    return inst, checked_size, checked_price


def _trade(obj, profile) -> Trade:
    f = _Fields(obj, {"buyer", "seller", "instrument", "size", "price", "aggressor"})
    inst, size, price = parse_fill(f.get("instrument"), f.get("size"), f.get("price"), profile)
    aggressor = f.get("aggressor", None)
    if aggressor not in (None, "buyer", "seller"):
        raise InputError("aggressor", f"must be 'buyer' or 'seller' (the taker), got {aggressor!r}")
    buyer, seller = f.account("buyer"), f.account("seller")
    if buyer == seller:
        raise InputError("seller", "buyer and seller are the same account (self-trade)")
    return Trade(buyer, seller, inst, size, price, aggressor)


def _allocate(obj, profile) -> Allocate:
    f = _Fields(obj, {"account", "instrument", "amount"})
    inst = _instrument(f, profile)
    amount = _bounded(parse_decimal(f.get("amount"), "amount"), profile.limits.amount_max, "amount")
    if amount == 0:
        raise InputError("amount", "must not be zero (positive adds collateral, negative takes it back)")
    return Allocate(f.account(), inst, to_units(amount, profile.settlement_decimals, "amount"))


def _apply_funding(obj, profile) -> ApplyFunding:
    f = _Fields(obj, {"instrument", "rate"})
    inst = _instrument(f, profile)
    if not isinstance(inst, Perpetual):
        raise InputError("instrument", f"funding applies to perpetuals, got {inst.name}")
    rate = parse_decimal(f.get("rate"), "rate")
    if abs(rate) > FUNDING_RATE_MAX:
        raise InputError(
            "rate", f"funding rate is a fraction per application, |rate| <= {FUNDING_RATE_MAX}, got {rate}"
        )
    return ApplyFunding(inst, rate)


def _settle_expiry(obj, profile) -> SettleExpiry:
    f = _Fields(obj, {"underlying", "expiry", "price"})
    underlying = f.get("underlying")
    profile.underlying(underlying)
    expiry = f.get("expiry")
    expiry_s = (
        parse_time(expiry, "expiry")
        if isinstance(expiry, int) or "T" in str(expiry)
        else int(parse_expiry(str(expiry)).timestamp())
    )
    price = _bounded(
        parse_decimal(f.get("price"), "price", positive=True), profile.limits.price_max_usd, "price", " USD"
    )
    return SettleExpiry(underlying, expiry_s, price)


def _advance_time(obj, profile) -> AdvanceTime:
    f = _Fields(obj, {"time"})
    return AdvanceTime(parse_time(f.get("time"), "time"))


def _fund_insurance(obj, profile) -> FundInsurance:
    f = _Fields(obj, {"asset", "amount", "market"})
    asset, amount = _money(f, profile)
    market = f.get("market", None)
    if market is not None:
        inst = _instrument(f, profile, "market")
        if not isinstance(inst, Perpetual) or not profile.underlying(inst.underlying).perp.isolated_market:
            raise InputError("market", f"{market!r} is not an isolated market (perp.isolated_market) of this profile")
        if asset != profile.settlement_asset:
            raise InputError("asset", f"an isolated market's fund holds {profile.settlement_asset} only")
        market = inst.name
    return FundInsurance(asset, amount, market)


def _start_liquidation(obj, profile) -> StartLiquidation:
    f = _Fields(obj, {"account", "liquidator"})
    liquidator = f.account("liquidator") if f.get("liquidator", None) is not None else None
    if liquidator == f.account():
        raise InputError("liquidator", "an account cannot liquidate itself")
    return StartLiquidation(f.account(), liquidator)


def _bid(obj, profile) -> Bid:
    f = _Fields(obj, {"auction", "liquidator", "fraction", "max_price"})
    auction = f.get("auction")
    if not isinstance(auction, str) or not auction:
        raise InputError("auction", f"expected an auction id such as 'L1', got {auction!r}")
    fraction = parse_decimal(f.get("fraction"), "fraction", positive=True)
    if fraction > 1:
        raise InputError("fraction", f"a share of what is auctioned, in (0, 1], got {fraction}")
    raw_price = f.get("max_price", None)
    max_price = None if raw_price is None else parse_decimal(raw_price, "max_price")
    if max_price is not None:
        _bounded(max_price, profile.limits.amount_max, "max_price", " USD")
    return Bid(auction, f.account("liquidator"), fraction, max_price)


def _oracle_update(obj, profile) -> OracleUpdate:
    f = _Fields(obj, {"underlying", "source", "price", "confidence", "volume", "timestamp", "signature"})
    underlying = profile.price_feed(f.get("underlying"))  # an underlying, or a stablecoin's price

    def number(name: str, value: object) -> float:
        limit = profile.limits.amount_max if name == "volume" else profile.limits.price_max_usd
        return float(_bounded(parse_decimal(value, name), limit, name))

    def optional(name: str) -> float | None:
        value = f.get(name, None)
        return None if value is None else number(name, value)

    update = PriceUpdate(
        underlying,
        f.get("source"),
        number("price", f.get("price")),
        optional("confidence"),
        parse_time(f.get("timestamp"), "timestamp"),
        optional("volume"),
    )
    raw = f.get("signature", None)
    signature = None
    if raw is not None:
        try:
            signature = bytes.fromhex(raw) if isinstance(raw, str) else None
        except ValueError:
            signature = None
        if signature is None or len(signature) != 64:
            raise InputError("signature", "expected an Ed25519 signature as 128 hex digits")
    return OracleUpdate(update, signature)


def _source(f: _Fields) -> str:
    return _text(
        f, "source", SOURCE_RE, "a source name of 1-64 characters [A-Za-z0-9_.:/-], starting with a letter or digit"
    )


def _register_source(obj, profile) -> RegisterSource:
    f = _Fields(obj, {"source", "public_key", "underlyings"})
    source = _source(f)
    key = _text(f, "public_key", PUBLIC_KEY_RE, "an Ed25519 public key as 64 hex digits").lower()
    raw = f.get("underlyings", None)
    if raw is None:
        underlyings = tuple(sorted(profile.underlyings))
    else:
        feeds = profile.price_feeds
        if not isinstance(raw, list) or not raw or len(raw) > len(feeds):
            raise InputError("underlyings", f"expected a list of 1-{len(feeds)} of {', '.join(feeds)}")
        for i, name in enumerate(raw):
            if not isinstance(name, str) or name not in feeds:
                raise InputError(f"underlyings[{i}]", f"expected one of {', '.join(feeds)}, got {name!r}"[:200])
        if len(set(raw)) != len(raw):
            raise InputError("underlyings", "names an underlying twice")
        underlyings = tuple(sorted(raw))
    return RegisterSource(source, key, underlyings)


def _revoke_source(obj, profile) -> RevokeSource:
    return RevokeSource(_source(_Fields(obj, {"source"})))


PRICE_RANGE_MAX = 0.95  # as the profile's bound on price_range


def _set_price_range(obj, profile) -> SetPriceRange:
    f = _Fields(obj, {"underlying", "price_range"})
    pm = profile.portfolio
    grids = sorted(u for u, p in (pm.underlyings.items() if pm else ()) if p.price_range is not None)
    underlying = f.get("underlying")
    if underlying not in grids:
        why = f"{profile.name} has no [portfolio]" if pm is None else f"grid underlyings: {', '.join(grids) or 'none'}"
        raise InputError("underlying", f"expected a portfolio underlying with a price_range grid ({why})"[:300])
    value = float(parse_decimal(f.get("price_range"), "price_range", positive=True))
    if not value <= PRICE_RANGE_MAX:
        raise InputError("price_range", f"must be in (0, {PRICE_RANGE_MAX}], got {value}")
    return SetPriceRange(underlying, value)


_PARSERS: dict[str, Callable[[dict[str, Any], Profile], Command]] = {
    "open_account": _open_account,
    "deposit": _deposit,
    "withdraw": _withdraw,
    "request_withdrawal": _request_withdrawal,
    "settle_withdrawal": _settle_withdrawal,
    "fail_withdrawal": _fail_withdrawal,
    "set_market": _set_market,
    "trade": _trade,
    "allocate": _allocate,
    "apply_funding": _apply_funding,
    "settle_expiry": _settle_expiry,
    "advance_time": _advance_time,
    "fund_insurance": _fund_insurance,
    "start_liquidation": _start_liquidation,
    "bid": _bid,
    "oracle_update": _oracle_update,
    "register_source": _register_source,
    "revoke_source": _revoke_source,
    "set_price_range": _set_price_range,
}

__all__ = ["ACCOUNT_ID_RE", "Command", "parse_command", "parse_time", "format_time"] + [
    c.__name__
    for c in (
        OpenAccount,
        Deposit,
        Withdraw,
        RequestWithdrawal,
        SettleWithdrawal,
        FailWithdrawal,
        SetMarket,
        Trade,
        Allocate,
        ApplyFunding,
        SettleExpiry,
        AdvanceTime,
        FundInsurance,
        StartLiquidation,
        Bid,
        RegisterSource,
        RevokeSource,
        SetPriceRange,
    )
]

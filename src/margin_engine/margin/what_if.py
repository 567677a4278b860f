"""What-if: an account's margin after hypothetical fills, without changing anything.

A fill of `size` at `price` (default: the mark) changes the position; an option's premium moves
the settlement-asset balance, a perp's entry notional its quote. Fees are not included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from margin_engine.errors import InputError
from margin_engine.instruments.names import Instrument, Option, parse_instrument
from margin_engine.ledger.units import decimal_to_units_half_even, parse_decimal, to_units
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.profile import Profile
from margin_engine.market.snapshot import MarketSnapshot

_TRADE_RE = re.compile(r"^(?P<instrument>[^:@]+):(?P<size>[^:@]+)(?:@(?P<price>[^:@]+))?$")


@dataclass(frozen=True)
class HypotheticalTrade:
    instrument: Instrument
    size: Decimal  # signed: positive buys
    price: Decimal | None


def parse_trade(text: str, profile: Profile, field: str) -> HypotheticalTrade:
    """`INSTRUMENT:SIZE[@PRICE]`, e.g. `BTC-PERP:-2@61000` or `BTC-25DEC26-60000-C:1`."""
    match = _TRADE_RE.match(text.strip())
    if match is None:
        raise InputError(field, f"expected INSTRUMENT:SIZE[@PRICE], e.g. BTC-PERP:-2@61000, got {text!r}")
    inst = parse_instrument(match["instrument"], field)
    params = profile.underlying(inst.underlying, field)
    size = parse_decimal(match["size"], f"{field}.size")
    if size == 0:
        raise InputError(f"{field}.size", "must not be zero (negative sells, positive buys)")
    to_units(size, params.size_decimals, f"{field}.size")
    price = None
    if match["price"] is not None:
        price = parse_decimal(match["price"], f"{field}.price", positive=not inst.is_option, non_negative=True)
    return HypotheticalTrade(inst, size, price)


def apply_trades(
    view: AccountView,
    trades: list[HypotheticalTrade],
    markets: Mapping[str, MarketSnapshot],
    marks: Mapping[str, float],
    profile: Profile,
    now_s: int,
) -> AccountView:
    """The account as it would be after the fills; `marks` gives the default price per instrument."""
    settle, decimals = profile.settlement_asset, profile.settlement_decimals
    balances = dict(view.balances)
    positions = {p.instrument.name: p for p in view.positions}
    for i, trade in enumerate(trades):
        inst = trade.instrument
        if inst.underlying not in markets:
            raise InputError(f"trade[{i}]", f"no market for {inst.underlying} in the file")
        if isinstance(inst, Option) and inst.expiry_s <= now_s:
            raise InputError(f"trade[{i}]", f"{inst.name} has expired")
        price = trade.price if trade.price is not None else Decimal(repr(marks[inst.name]))
        notional = decimal_to_units_half_even(trade.size * price, decimals)
        old = positions.get(inst.name, PositionView(inst, Decimal(0)))
        if isinstance(inst, Option):
            balances[settle] = balances.get(settle, 0) - notional
            new = replace(old, size=old.size + trade.size)
        else:
            new = replace(old, size=old.size + trade.size, quote_units=old.quote_units - notional)
        if new.size == 0 and not isinstance(inst, Option):
            balances[settle] = balances.get(settle, 0) + new.quote_units  # realized
            positions.pop(inst.name, None)
        elif new.size == 0:
            positions.pop(inst.name, None)
        else:
            positions[inst.name] = new
    return replace(view, balances=balances, positions=tuple(positions.values()))


def mark_prices(
    instruments: list[Instrument], markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int
) -> dict[str, float]:
    """Mark of each instrument by the same pricing the margin uses (an account holding each once)."""
    from margin_engine.margin.calculator import compute_margins

    probe = AccountView("probe", "cross", {}, tuple(PositionView(i, Decimal(1)) for i in instruments))
    (m,) = compute_margins([probe], markets, profile, now_s)
    return {p.instrument: p.mark_price for p in m.positions}


def what_if(
    view: AccountView, trades_text: list[str], markets: Mapping[str, MarketSnapshot], profile: Profile, now_s: int
):
    """(before, after) margins of one account for hypothetical fills given as INSTRUMENT:SIZE[@PRICE]."""
    from margin_engine.margin.calculator import compute_margins

    trades = [parse_trade(t, profile, f"trade[{i}]") for i, t in enumerate(trades_text)]
    marks = mark_prices([t.instrument for t in trades], markets, profile, now_s)
    after = apply_trades(view, trades, markets, marks, profile, now_s)
    return tuple(compute_margins([view, after], markets, profile, now_s))


def what_if_json(before, after, trades_text: list[str]) -> dict:
    """The shape `margin-engine what-if --format json` and the service answer with."""
    from margin_engine.ledger.units import format_units

    keys = ("equity", "initial_margin", "maintenance_margin", "free_collateral")
    return {
        "account": before.id,
        "trades": list(trades_text),
        "before": before.to_json(),
        "after": after.to_json(),
        "change": {k: format_units(getattr(after, k) - getattr(before, k), before.decimals) for k in keys},
    }

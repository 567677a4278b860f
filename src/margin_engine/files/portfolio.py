"""Portfolio files (JSON or TOML): a valuation time, markets and accounts to margin.

    {"valuation_time": "2026-11-25T08:00:00Z",
     "market": {"BTC": {"index": 60000, "vol": 0.6, "rate": 0.0}},
     "accounts": [{"id": "alice", "mode": "cross", "collateral": {"USDC": "100000"},
                   "positions": [{"instrument": "BTC-PERP", "size": "-2", "entry_price": "61000"}]}]}

Sizes are signed (negative = short). `entry_price` sets a perp's entry (default: the index, so
no unrealized P&L); an isolated position's `collateral` is what it holds in the settlement asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from margin_engine.clock import parse_time
from margin_engine.errors import InputError
from margin_engine.ids import ACCOUNT_ID_RE
from margin_engine.instruments.names import Future, Option, parse_instrument
from margin_engine.ledger.units import decimal_to_units_half_even, parse_decimal, to_units
from margin_engine.margin.book import MARGIN_MODES, AccountView, PositionView
from margin_engine.margin.profile import Profile
from margin_engine.market.snapshot import MarketSnapshot, parse_market
from margin_engine.reading import parse_json, parse_toml, read_text


@dataclass(frozen=True)
class Portfolio:
    valuation_s: int
    markets: dict[str, MarketSnapshot]
    accounts: list[AccountView]


def read_structured(path: Path) -> Any:
    """JSON or TOML by extension; errors name the file and what is wrong."""
    text = read_text(path)
    if path.suffix.lower() == ".toml":
        return parse_toml(text, "file", f"TOML ({path})")
    return parse_json(text, "file", f"JSON ({path})")


def load_portfolio(path: Path, profile: Profile) -> Portfolio:
    return parse_portfolio(read_structured(path), profile)


def _obj(value: Any, field: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(field, f"expected an object, got {type(value).__name__}")
    for key in sorted(set(value) - allowed):
        raise InputError(f"{field}.{key}", f"unknown field; expected {sorted(allowed)}")
    for key in sorted(required - set(value)):
        raise InputError(f"{field}.{key}", "missing")
    return value


def parse_portfolio(data: Any, profile: Profile) -> Portfolio:
    top = _obj(data, "portfolio", {"valuation_time", "market", "accounts"}, {"valuation_time", "market", "accounts"})
    now_s = parse_time(top["valuation_time"], "valuation_time")
    market_obj = _obj(top["market"], "market", set(profile.underlyings) | set(profile.assets), set())
    # an asset that is no underlying (the settlement stablecoin) has a price and nothing else
    markets = {
        u: parse_market(u, v, f"market.{u}", price_only=u not in profile.underlyings) for u, v in market_obj.items()
    }
    if not isinstance(top["accounts"], list):
        raise InputError("accounts", "expected a list of accounts")
    seen: set[str] = set()
    accounts = []
    for i, raw in enumerate(top["accounts"]):
        account = _account(raw, f"accounts[{i}]", profile, markets, now_s)
        if account.id in seen:
            raise InputError(f"accounts[{i}].id", f"duplicate account id {account.id!r}")
        seen.add(account.id)
        accounts.append(account)
    return Portfolio(now_s, markets, accounts)


def _account(raw: Any, field: str, profile: Profile, markets, now_s: int) -> AccountView:
    obj = _obj(raw, field, {"id", "mode", "collateral", "positions"}, {"id"})
    account_id = obj["id"]
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        raise InputError(f"{field}.id", f"account id must be 1-64 characters [A-Za-z0-9_.-], got {account_id!r}")
    mode = obj.get("mode", "cross")
    if mode not in MARGIN_MODES:
        raise InputError(f"{field}.mode", f"must be one of {', '.join(MARGIN_MODES)}, got {mode!r}")
    balances = {}
    for asset, amount in _obj(obj.get("collateral", {}), f"{field}.collateral", set(profile.assets), set()).items():
        units = to_units(
            parse_decimal(amount, f"{field}.collateral.{asset}"),
            profile.assets[asset].decimals,
            f"{field}.collateral.{asset}",
        )
        if units < 0 and asset != profile.settlement_asset:
            raise InputError(f"{field}.collateral.{asset}", "only the settlement asset may be negative (a debt)")
        balances[asset] = units
    raw_positions = obj.get("positions", [])
    if not isinstance(raw_positions, list):
        raise InputError(f"{field}.positions", "expected a list of positions")
    if len(raw_positions) > profile.max_positions_per_account:
        raise InputError(f"{field}.positions", f"at most {profile.max_positions_per_account} positions per account")
    positions, names = [], set()
    for j, pos in enumerate(raw_positions):
        view = _position(pos, f"{field}.positions[{j}]", profile, markets, now_s, isolated=mode == "isolated")
        if view.instrument.name in names:
            raise InputError(
                f"{field}.positions[{j}].instrument", f"{view.instrument.name} listed twice; net it into one position"
            )
        names.add(view.instrument.name)
        positions.append(view)
    return AccountView(account_id, mode, balances, tuple(positions))


def _position(raw: Any, field: str, profile: Profile, markets, now_s: int, isolated: bool) -> PositionView:
    allowed = {"instrument", "size", "entry_price"} | ({"collateral"} if isolated else set())
    obj = _obj(raw, field, allowed, {"instrument", "size"})
    inst = parse_instrument(obj["instrument"], f"{field}.instrument")
    params = profile.underlying(inst.underlying, f"{field}.instrument")
    if inst.underlying not in markets:
        raise InputError(f"{field}.instrument", f"no market for {inst.underlying} in the file's market section")
    if isinstance(inst, Option | Future) and inst.expiry_s <= now_s:
        raise InputError(f"{field}.instrument", f"{inst.name} expired before the valuation time (expiry in the past)")
    size = parse_decimal(obj["size"], f"{field}.size")
    if size == 0:
        raise InputError(f"{field}.size", "must not be zero (negative for short, positive for long)")
    to_units(size, params.size_decimals, f"{field}.size")
    quote = 0
    if not inst.is_option:
        entry = obj.get("entry_price")
        entry_price = (
            parse_decimal(entry, f"{field}.entry_price", positive=True)
            if entry is not None
            else Decimal(repr(markets[inst.underlying].linear_mark(getattr(inst, "expiry_s", 0), now_s)))
        )
        quote = -decimal_to_units_half_even(size * entry_price, profile.settlement_decimals)
    elif "entry_price" in obj:
        parse_decimal(obj["entry_price"], f"{field}.entry_price", non_negative=True)  # paid already; checked only
    collateral = 0
    if "collateral" in obj:
        collateral = to_units(
            parse_decimal(obj["collateral"], f"{field}.collateral", non_negative=True),
            profile.settlement_decimals,
            f"{field}.collateral",
        )
    return PositionView(inst, size, quote, collateral)

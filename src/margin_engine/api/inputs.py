"""What the Python API accepts as a portfolio: the portfolio file's shape as a dict, a path to a
JSON or TOML file, or a pandas DataFrame of positions with balances and markets beside it.

Every form becomes the portfolio file's dict and goes through the file loader
(`files.portfolio.parse_portfolio`), so a DataFrame is checked exactly as a file is and errors are
the project's `InputError`, naming the row and column at fault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from margin_engine.errors import InputError
from margin_engine.files.portfolio import Portfolio, parse_portfolio, read_structured
from margin_engine.margin.profile import Profile, load_profile

POSITION_COLUMNS = ("account", "instrument", "size", "entry_price", "collateral", "mode")
REQUIRED_COLUMNS = ("account", "instrument", "size")
COLLATERAL_COLUMNS = ("account", "asset", "amount")


def resolve_profile(profile: str | Path | Profile | None) -> Profile:
    """A Profile as given, a packaged profile by name, or a TOML file by path (default `deribit`)."""
    if isinstance(profile, Profile):
        return profile
    return load_profile(str(profile) if profile is not None else "deribit")


def _is_frame(value: Any) -> bool:
    """A pandas DataFrame, recognised without importing pandas."""
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns") and hasattr(value, "itertuples")


def load(
    portfolio: Any,
    profile: Profile,
    *,
    market: Mapping | None = None,
    valuation_time: Any = None,
    collateral: Any = None,
    modes: Mapping[str, str] | None = None,
) -> Portfolio:
    """The parsed portfolio; `market` and `valuation_time` replace the dict's or file's own."""
    if _is_frame(portfolio):
        data, rows = frame_to_dict(portfolio, market, valuation_time, collateral, modes)
        try:
            return parse_portfolio(data, profile)
        except InputError as exc:
            raise _by_row(exc, data, rows) from None
    if collateral is not None or modes is not None:
        field = "collateral" if collateral is not None else "modes"
        raise InputError(field, "only with a DataFrame of positions; a dict or file carries its own accounts")
    if isinstance(portfolio, str | Path):
        data = read_structured(Path(portfolio))
    elif isinstance(portfolio, Mapping):
        data = dict(portfolio)
    else:
        raise InputError(
            "portfolio",
            f"expected a dict (the portfolio file's shape), a path to a JSON or TOML file, or a DataFrame of "
            f"positions; got {type(portfolio).__name__}",
        )
    if isinstance(data, dict):
        if market is not None:
            data["market"] = _plain(market)
        if valuation_time is not None:
            data["valuation_time"] = _time(valuation_time)
    return parse_portfolio(data, profile)


def frame_to_dict(df, market, valuation_time, collateral, modes) -> tuple[dict, dict[tuple[int, int], Any]]:
    """The portfolio dict of a positions DataFrame, and which row each (account, position) came from."""
    unknown = [str(c) for c in df.columns if c not in POSITION_COLUMNS]
    if unknown:
        raise InputError("positions", f"unknown column(s) {unknown}; expected {list(POSITION_COLUMNS)}")
    for c in REQUIRED_COLUMNS:
        if c not in df.columns:
            raise InputError(f"positions.{c}", f"missing column; a positions DataFrame needs {list(REQUIRED_COLUMNS)}")
    if market is None:
        raise InputError("market", 'missing: give market={"BTC": {"index": 60000, "vol": 0.6}} beside a DataFrame')
    if valuation_time is None:
        raise InputError("valuation_time", "missing: give valuation_time='2026-11-25T08:00:00Z' beside a DataFrame")
    accounts: dict[str, dict] = {}
    rows: dict[tuple[int, int], Any] = {}
    modes = dict(modes or {})
    for label, record in zip(df.index, df.to_dict("records"), strict=True):
        record = {k: _plain(v) for k, v in record.items() if not _missing(v)}
        account = record.get("account")
        if not isinstance(account, str):
            raise InputError(f"positions[{label!r}].account", f"expected an account id, got {account!r}")
        entry = accounts.setdefault(account, {"id": account, "positions": []})
        mode = record.pop("mode", None)
        if mode is not None:
            if modes.setdefault(account, mode) != mode:
                raise InputError(f"positions[{label!r}].mode", f"{account} is {modes[account]!r} on another row")
        rows[(list(accounts).index(account), len(entry["positions"]))] = label
        entry["positions"].append({k: v for k, v in record.items() if k != "account"})
    for account, balances in _collateral(collateral).items():
        accounts.setdefault(account, {"id": account, "positions": []})["collateral"] = balances
    for account, mode in modes.items():
        if account not in accounts:
            raise InputError(f"modes.{account}", "no such account in the positions or the collateral")
        accounts[account]["mode"] = mode
    data = {"valuation_time": _time(valuation_time), "market": _plain(market), "accounts": list(accounts.values())}
    return data, rows


def _collateral(collateral: Any) -> dict[str, dict[str, Any]]:
    """{account: {asset: amount}} from that dict or from a DataFrame with account, asset, amount."""
    if collateral is None:
        return {}
    if _is_frame(collateral):
        if sorted(map(str, collateral.columns)) != sorted(COLLATERAL_COLUMNS):
            raise InputError("collateral", f"a collateral DataFrame has the columns {list(COLLATERAL_COLUMNS)}")
        out: dict[str, dict[str, Any]] = {}
        for label, r in zip(collateral.index, collateral.to_dict("records"), strict=True):
            balances = out.setdefault(str(r["account"]), {})
            if r["asset"] in balances:
                raise InputError(f"collateral[{label!r}].asset", f"{r['asset']} listed twice for {r['account']}")
            balances[str(r["asset"])] = _plain(r["amount"])
        return out
    if not isinstance(collateral, Mapping):
        raise InputError("collateral", "expected {account: {asset: amount}} or a DataFrame (account, asset, amount)")
    out = {}
    for account, balances in collateral.items():
        if not isinstance(balances, Mapping):
            raise InputError(f"collateral.{account}", "expected {asset: amount}, e.g. {'USDC': '100000'}")
        out[str(account)] = {str(a): _plain(v) for a, v in balances.items()}
    return out


def _missing(value: Any) -> bool:
    """An empty cell: None or NaN (optional columns such as entry_price are often gappy)."""
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, mappings as dicts: what the file loader expects."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | Decimal):
        return value.item()
    return value


def _time(value: Any) -> Any:
    """ISO text or Unix seconds as the loader reads them; a datetime (or pandas Timestamp) with a zone
    becomes Unix seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InputError("valuation_time", f"{value} has no time zone; give one (UTC: tzinfo=timezone.utc)")
        seconds = value.timestamp()
        if seconds != int(seconds):
            raise InputError("valuation_time", f"{value} is not a whole second")
        return int(seconds)
    return _plain(value)


_POSITION_FIELD = re.compile(r"^accounts\[(\d+)\]\.positions\[(\d+)\](.*)$")
_ACCOUNT_FIELD = re.compile(r"^accounts\[(\d+)\](.*)$")


def _by_row(exc: InputError, data: dict, rows: dict[tuple[int, int], Any]) -> InputError:
    """The loader's error with `accounts[i].positions[j]` named as the DataFrame row it came from."""
    if m := _POSITION_FIELD.match(exc.field):
        label = rows.get((int(m[1]), int(m[2])))
        return InputError(f"positions[{label!r}]{m[3]}", exc.message)
    if m := _ACCOUNT_FIELD.match(exc.field):
        account = data["accounts"][int(m[1])]["id"]
        return InputError(f"account {account}{m[2]}", exc.message)
    return exc

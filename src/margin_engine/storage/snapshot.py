"""Engine state to JSON and back, exactly: a restored State equals the one taken, to the unit and the bit.

JSON has no tuples, Decimals, dataclasses, dates, enums, NaN or non-string keys, so every value other
than a JSON int, string, bool, null or finite float is an object tagged with one `$` key:

    {"$decimal": "1.5"}                  Decimal, its value without trailing zeros (see _decimal_text)
    {"$float": "nan"}                    a float JSON cannot hold (nan, inf, -inf); finite floats are
                                         JSON numbers, which Python writes with repr: exact
    {"$tuple": [...]}                    a tuple
    {"$dict": [[key, value], ...]}       a mapping, in its order (accounts in opening order matter)
    {"$datetime": "...+00:00"}           an aware datetime (option expiries)
    {"$enum": "OracleStatus", "value": "ok"}
    {"$type": "Position", "size": ...}   a registered dataclass, field by field

`state_to_json` leaves the profile out (a journal stores its TOML once); `state_from_json` takes it back.
A type missing from the registries is a bug of whoever added it to State: encoding refuses it by name.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from decimal import Context, Decimal
from enum import Enum
from typing import Any

from margin_engine.engine.state import Account, Auction, PendingWithdrawal, Position, PriceSource, State
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.instruments.names import Future, Option, Perpetual
from margin_engine.ledger.ledger import Ledger
from margin_engine.margin.profile import Profile
from margin_engine.market.snapshot import ByExpiry, MarketSnapshot, Smile, VolSurface
from margin_engine.oracle.aggregator import Mark, OracleState, OracleStatus, PriceUpdate
from margin_engine.oracle.averages import Point, VolumeReport

SNAPSHOT_FORMAT = 1

DATACLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Account,
        Position,
        Auction,
        PendingWithdrawal,
        PriceSource,
        Perpetual,
        Future,
        Option,
        MarketSnapshot,
        ByExpiry,
        VolSurface,
        Smile,
        OracleState,
        PriceUpdate,
        Mark,
        Point,
        VolumeReport,
    )
}
ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (OracleStatus,)}
# State fields added after format 1 was first written: left out while empty, so that a snapshot taken
# before they existed still restores to its own text (the journal checks that, see Journal._restore)
ADDED_FIELDS = ("sources", "price_ranges", "basis", "premiums", "bankrupt_funds", "margin_levels")
# The same for fields added to a dataclass of the state: left out while at their default
ADDED_DATACLASS_FIELDS = {"MarketSnapshot": {"open_interest": 0.0}}


class SnapshotFormatError(InputError):
    """A snapshot that does not decode: names where in the state it broke."""


def state_to_json(state: State) -> dict[str, Any]:
    """Every field of the state but the profile, encoded as the module docstring says."""
    return {
        "format": SNAPSHOT_FORMAT,
        "profile": state.profile.name,
        "state": {
            f.name: _encode(getattr(state, f.name))
            for f in fields(State)
            if f.name != "profile" and not (f.name in ADDED_FIELDS and not getattr(state, f.name))
        },
    }


def state_from_json(profile: Profile, data: Any) -> State:
    """The State that `state_to_json` encoded, under `profile` (which must be the one it ran under)."""
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotFormatError("snapshot.format", f"expected a snapshot object of format {SNAPSHOT_FORMAT}")
    if data.get("profile") != profile.name:
        raise SnapshotFormatError(
            "snapshot.profile", f"taken under profile {data.get('profile')!r}, restored under {profile.name!r}"
        )
    encoded = data.get("state")
    if not isinstance(encoded, dict):
        raise SnapshotFormatError("snapshot.state", "expected an object of State fields")
    known = {f.name for f in fields(State)} - {"profile"}
    unknown = set(encoded) - known
    if unknown:
        raise SnapshotFormatError(f"snapshot.state.{sorted(unknown)[0]}", "not a field of State")
    return State(profile, **{name: _decode(value, f"snapshot.state.{name}") for name, value in encoded.items()})


def canonical_json(data: Any) -> str:
    """One text per value: sorted object keys, no spaces, no NaN (the tags carry those)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def state_hash(state: State) -> str:
    """sha256 of the canonical JSON of the state: equal states hash equal, to the unit and the order."""
    return text_hash(canonical_json(state_to_json(state)))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _encode(value: Any) -> Any:
    # bool and Enum before int and str: they are subclasses
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Enum):
        name = type(value).__name__
        if ENUMS.get(name) is not type(value):
            raise InvariantViolation(f"enum {name} is in the state but not in storage.snapshot.ENUMS")
        return {"$enum": name, "value": value.value}
    if isinstance(value, int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, Decimal):
        return {"$decimal": _decimal_text(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {"$dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvariantViolation(f"naive datetime {value!r} in the state: engine times are UTC")
        return {"$datetime": value.isoformat()}
    if isinstance(value, Ledger):
        return {"$type": "Ledger", "balances": _encode(value.balances)}
    if is_dataclass(value) and not isinstance(value, type):
        name = type(value).__name__
        if DATACLASSES.get(name) is not type(value):
            raise InvariantViolation(f"dataclass {name} is in the state but not in storage.snapshot.DATACLASSES")
        added = ADDED_DATACLASS_FIELDS.get(name, {})
        kept = (f for f in fields(value) if not (f.name in added and getattr(value, f.name) == added[f.name]))
        return {"$type": name, **{f.name: _encode(getattr(value, f.name)) for f in kept}}
    raise InvariantViolation(f"cannot snapshot a {type(value).__name__} ({value!r}): teach storage.snapshot its form")


def _decimal_text(value: Decimal) -> str:
    """The value, exactly, without trailing zeros or exponent: the live engine holds `0.10000000` where a
    state replayed from journaled events (Event.to_json normalizes) holds `0.1`; equal, and hashed equal.
    Normalized in a context as wide as the number, so that no digit is rounded away."""
    if value.is_zero():
        return "0"
    digits = len(value.as_tuple().digits)
    return format(value.normalize(Context(prec=digits)), "f")


def _decode(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict) or len([k for k in value if k.startswith("$")]) != 1:
        raise SnapshotFormatError(where, f"expected a JSON scalar, a list or an object with one $ tag, got {value!r}")
    tag = next(k for k in value if k.startswith("$"))
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise SnapshotFormatError(where, f"unknown tag {tag!r}; expected one of {', '.join(_DECODERS)}")
    try:
        return decoder(value, where)
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        if isinstance(exc, SnapshotFormatError):
            raise
        raise SnapshotFormatError(where, f"cannot decode {tag}: {exc}") from None


def _decode_float(value: dict, where: str) -> float:
    text = value["$float"]
    if text not in ("nan", "inf", "-inf"):
        raise SnapshotFormatError(
            where, f"$float holds nan, inf or -inf only (finite floats are numbers), got {text!r}"
        )
    # math.nan itself, not a new NaN: tuples compare items by identity first, so (nan,) == (nan,) holds as it
    # does for the engine's own flat smiles, which hold math.nan as their strike
    return math.nan if text == "nan" else float(text)


def _decode_dict(value: dict, where: str) -> dict:
    out = {}
    for i, pair in enumerate(value["$dict"]):
        if not isinstance(pair, list) or len(pair) != 2:
            raise SnapshotFormatError(f"{where}[{i}]", f"expected a [key, value] pair, got {pair!r}")
        out[_decode(pair[0], f"{where}[{i}].key")] = _decode(pair[1], f"{where}[{i}].value")
    return out


def _decode_enum(value: dict, where: str) -> Enum:
    cls = ENUMS.get(value["$enum"])
    if cls is None:
        raise SnapshotFormatError(where, f"unknown enum {value['$enum']!r}; known: {', '.join(ENUMS)}")
    return cls(value["value"])


def _decode_datetime(value: dict, where: str) -> datetime:
    moment = datetime.fromisoformat(value["$datetime"])
    if moment.tzinfo is None:
        raise SnapshotFormatError(where, f"datetime {value['$datetime']!r} has no zone")
    return moment


def _decode_dataclass(value: dict, where: str) -> Any:
    name = value["$type"]
    kwargs = {k: _decode(v, f"{where}.{k}") for k, v in value.items() if k != "$type"}
    if name == "Ledger":
        ledger = Ledger()
        ledger.balances = kwargs["balances"]
        return ledger
    cls = DATACLASSES.get(name)
    if cls is None:
        raise SnapshotFormatError(where, f"unknown type {name!r}; known: Ledger, {', '.join(DATACLASSES)}")
    return cls(**kwargs)


_DECODERS = {
    "$decimal": lambda v, where: Decimal(v["$decimal"]),
    "$float": _decode_float,
    "$tuple": lambda v, where: tuple(_decode(x, f"{where}[{i}]") for i, x in enumerate(v["$tuple"])),
    "$dict": _decode_dict,
    "$datetime": _decode_datetime,
    "$enum": _decode_enum,
    "$type": _decode_dataclass,
}

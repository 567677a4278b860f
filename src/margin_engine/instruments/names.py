"""Instrument names in Deribit's form: `BTC-PERP`, `BTC-25DEC26` (a dated future) and
`BTC-25DEC26-60000-C`.

Dated futures and options expire at 08:00 UTC on the named date (Deribit's expiry time) and are European,
cash-settled in USDC on the index. Strikes with a fraction use `d` as the decimal point
(`XRP-27DEC26-0d625-C`), as Deribit does for small-priced underlyings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from margin_engine.errors import InputError

EXPIRY_HOUR_UTC = 8
EXPECTED_FORM = (
    "expected UNDERLYING-PERP, UNDERLYING-DMMMYY or UNDERLYING-DMMMYY-STRIKE-C|P, "
    "e.g. BTC-PERP, BTC-25DEC26 or BTC-25DEC26-60000-C"
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

_UNDERLYING = r"[A-Z][A-Z0-9]{1,9}"
_PERP_RE = re.compile(rf"^({_UNDERLYING})-PERP$")
_FUTURE_RE = re.compile(rf"^({_UNDERLYING})-(\d{{1,2}}(?:{'|'.join(MONTHS)})\d{{2}})$")
_OPTION_RE = re.compile(rf"^({_UNDERLYING})-(\d{{1,2}})({'|'.join(MONTHS)})(\d{{2}})-(\d+(?:d\d+)?)-([CP])$")


@dataclass(frozen=True, order=True)
class Perpetual:
    """A linear perpetual future on the underlying's index, settled in USDC."""

    underlying: str

    @property
    def name(self) -> str:
        return f"{self.underlying}-PERP"

    @property
    def is_option(self) -> bool:
        return False


@dataclass(frozen=True, order=True)
class Option:
    """A European option on the index, cash-settled in USDC (linear) at expiry."""

    underlying: str
    expiry: datetime
    strike: Decimal
    is_call: bool

    @property
    def name(self) -> str:
        kind = "C" if self.is_call else "P"
        return f"{self.underlying}-{format_expiry(self.expiry)}-{format_strike(self.strike)}-{kind}"

    @property
    def expiry_s(self) -> int:
        """Expiry as Unix seconds, the engine's clock unit."""
        return int(self.expiry.timestamp())

    @property
    def is_option(self) -> bool:
        return True


@dataclass(frozen=True, order=True)
class Future:
    """A linear dated future on the underlying's index, delivered in USDC at its 08:00 UTC expiry
    on the delivery price (Deribit: the index's TWAP over the last 30 minutes)."""

    underlying: str
    expiry: datetime

    @property
    def name(self) -> str:
        return f"{self.underlying}-{format_expiry(self.expiry)}"

    @property
    def expiry_s(self) -> int:
        return int(self.expiry.timestamp())

    @property
    def is_option(self) -> bool:
        return False


Instrument = Perpetual | Future | Option


def format_expiry(expiry: datetime) -> str:
    """`25DEC26`; the day has no leading zero, as in Deribit names (`5JAN27`)."""
    return f"{expiry.day}{MONTHS[expiry.month - 1]}{expiry.year % 100:02d}"


def format_strike(strike: Decimal) -> str:
    text = format(strike.normalize(), "f")
    return text.replace(".", "d")


def parse_expiry(text: str, field: str = "expiry") -> datetime:
    """Parse `25DEC26` into 08:00 UTC on that date."""
    match = re.fullmatch(rf"(\d{{1,2}})({'|'.join(MONTHS)})(\d{{2}})", text)
    if match is None:
        raise InputError(field, f"malformed expiry {text!r}: expected DMMMYY, e.g. 25DEC26")
    day, month, year = int(match[1]), MONTHS.index(match[2]) + 1, 2000 + int(match[3])
    try:
        return datetime(year, month, day, EXPIRY_HOUR_UTC, tzinfo=UTC)
    except ValueError as exc:
        raise InputError(field, f"expiry {text!r} is not a calendar date ({exc})") from None


def parse_instrument(name: object, field: str = "instrument") -> Instrument:
    """Parse a Deribit-style name; a malformed one raises `InputError` showing the expected form."""
    if not isinstance(name, str):
        raise InputError(field, f"instrument name must be a string, got {type(name).__name__}")
    if match := _PERP_RE.match(name):
        return Perpetual(match[1])
    if match := _FUTURE_RE.match(name):
        return Future(match[1], parse_expiry(match[2], field))
    match = _OPTION_RE.match(name)
    if match is None:
        raise InputError(field, f"malformed instrument name {name!r}: {EXPECTED_FORM}")
    underlying, expiry_text, strike_text, kind = match[1], match[2] + match[3] + match[4], match[5], match[6]
    expiry = parse_expiry(expiry_text, field)
    strike = Decimal(strike_text.replace("d", "."))
    if strike <= 0:
        raise InputError(field, f"strike in {name!r} must be positive")
    return Option(underlying, expiry, strike, kind == "C")

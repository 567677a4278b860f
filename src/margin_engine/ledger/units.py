"""Conversions between decimal amounts and integer smallest units, with the rounding direction named.

Money is an integer count of an asset's smallest unit (USDC 6 decimals, BTC 8, ETH 18). A value
that comes from float risk maths meets the ledger rounded against the user: requirements up
(`ceil_units`), equity and payouts down (`floor_units`), so rounding never creates money.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import numpy as np

from margin_engine.errors import InputError, InvariantViolation

# A number as text: ASCII digits, one optional point, an optional short exponent. Python's Decimal
# also reads "1_000", " 1 ", "Infinity", "NaN" and Arabic-Indic or full-width digits: none of them is
# an amount anyone means to send.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
DIGITS_MAX = 28  # significant digits Decimal arithmetic keeps exactly (its default precision)
MAGNITUDE_MAX = 30  # |x| < 1e30 and a non-zero |x| >= 1e-30: every bound of the engine lies inside


def parse_decimal(value: object, field: str, *, positive: bool = False, non_negative: bool = False) -> Decimal:
    """A finite, bounded Decimal from a JSON/TOML value; strings are preferred as they are exact."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InputError(field, f"expected a decimal number (as a string), got {_shown(value)}")
    if isinstance(value, str) and (len(value) > 64 or not _DECIMAL_TEXT.fullmatch(value)):
        raise InputError(field, f'expected a decimal number such as "1000.5", got {_shown(value)}')
    if isinstance(value, int) and abs(value) >= 10**MAGNITUDE_MAX:
        raise InputError(field, f"out of range: |{field}| must be below 1e{MAGNITUDE_MAX}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(field, f"must be a finite number, got {value!r}")
    number = Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)  # numpy floats too
    if not number.is_finite():
        raise InputError(field, f"must be a finite number, got {_shown(value)}")
    if not number.is_zero():
        if number.adjusted() >= MAGNITUDE_MAX:
            raise InputError(field, f"out of range: |{field}| must be below 1e{MAGNITUDE_MAX}, got {_shown(value)}")
        if number.adjusted() < -MAGNITUDE_MAX:
            raise InputError(field, f"out of range: a non-zero |{field}| must be at least 1e-{MAGNITUDE_MAX}")
        if len(number.normalize(Context(prec=60)).as_tuple().digits) > DIGITS_MAX:
            raise InputError(field, f"more than {DIGITS_MAX} significant digits: {_shown(value)} would be rounded")
    if positive and number <= 0:
        raise InputError(field, f"must be > 0, got {value}")
    if non_negative and number < 0:
        raise InputError(field, f"must be >= 0, got {value}")
    return number


def _shown(value: object) -> str:
    """A value as an error message shows it: never longer than a line."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def to_units(amount: Decimal, decimals: int, field: str = "amount") -> int:
    """Exact conversion; an amount finer than the asset's decimals is an error, never rounded."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InputError(field, f"{amount} has more than {decimals} decimal places")
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    return Decimal(units).scaleb(-decimals)


def format_units(units: int, decimals: int) -> str:
    """Decimal string with exactly `decimals` places, as the JSON outputs carry amounts. Integer maths:
    exact for any int (Decimal's 28-digit context would fail on a huge one)."""
    whole, part = divmod(abs(units), 10**decimals)
    sign = "-" if units < 0 else ""
    return f"{sign}{whole}.{part:0{decimals}d}" if decimals else f"{sign}{whole}"


CASH_ASSETS = frozenset({"USDC", "USDT", "USD", "DAI"})  # shown to the cent; crypto with every digit


def human_amount(units: int, decimals: int, asset: str) -> str:
    """An amount as a person reads it: `50,000.00 USDC`, `0.5 BTC`."""
    return human_decimal(Decimal(units).scaleb(-decimals), asset)


def human_decimal(value: Decimal, asset: str) -> str:
    """A decimal amount with thousands separators and its asset: cash rounded to the cent for display
    (half even; a value that rounds to zero shows without a minus sign), crypto with every digit."""
    if asset in CASH_ASSETS:
        text = f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,.2f}"
    else:
        text = f"{value.normalize():,f}" if value else "0"
    return f"{_no_minus_zero(text)} {asset}"


def human_number(x: float, places: int = 2) -> str:
    """A USD figure or price for people: thousands separators, `places` decimals, never `-0.00`."""
    return _no_minus_zero(f"{x:,.{places}f}")


def _no_minus_zero(text: str) -> str:
    """`-0.00` (a small negative rounded for display) shows as `0.00`."""
    return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text) else text


def share_units(units: int, fraction: Decimal) -> int:
    """floor(units x fraction), exactly (a fraction of an account's value or collateral in liquidation:
    never through a float, never rounded by Decimal's 28-digit context)."""
    return math.floor(Fraction(fraction) * units)


def decimal_to_units_half_even(amount: Decimal, decimals: int) -> int:
    """For cash flows both sides book with the same integer (premium, trade notional)."""
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_HALF_EVEN))


def decimal_to_units_ceil(amount: Decimal, decimals: int) -> int:
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))


def decimal_to_units_floor(amount: Decimal, decimals: int) -> int:
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


# Float risk maths carries relative noise of a few 1e-16 per operation: 0.05 * 120000 comes out
# as 6000.0000000000055 because 1 - 0.95 is not exact. A value within SNAP of a whole unit is taken
# as that unit, so such noise does not add a unit; anything further from it rounds in the named
# direction, exactly (the float's own value, no digits dropped). SNAP is relative (2^-46, about 64
# ulps: noise) and at most 1/1024 of a unit, so rounding never moves an amount against its
# direction by more than a thousandth of its smallest unit, at any magnitude the limits allow.
SNAP_RELATIVE = Fraction(1, 2**46)
SNAP_UNITS_MAX = Fraction(1, 1024)


def ceil_units(value: float, decimals: int) -> int:
    """A float requirement in whole units of the asset, rounded up."""
    return _ceil(_exact(value, decimals))


def floor_units(value: float, decimals: int) -> int:
    """A float equity or payout in whole units of the asset, rounded down."""
    return -_ceil(-_exact(value, decimals))


def _exact(value: float, decimals: int) -> Fraction:
    if not math.isfinite(value):
        raise InvariantViolation(f"non-finite money value {value!r} reached the ledger")
    return Fraction(value) * 10**decimals


def _ceil(x: Fraction) -> int:
    nearest = round(x)
    if abs(x - nearest) <= min(abs(x) * SNAP_RELATIVE, SNAP_UNITS_MAX):
        return nearest
    return math.ceil(x)


def ceil_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`ceil_units` of every element (int64; Python ints past 2**62), bit for bit the scalar rule."""
    return _units_array(values, decimals)


def floor_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`floor_units` of every element: the snap is symmetric, so floor(v) = -ceil(-v)."""
    return -_units_array(-np.asarray(values, dtype=float), decimals)


# x = value * 10**decimals is formed exactly, as a float p plus its rounding error e (Dekker's
# product; 10**n is exact for 0 <= n <= 22). With r1 = p rounded to an integer, a = p - r1 is exact;
# t = a + e is exact where it matters most (past 2**53, a = 0 and e may exceed a unit) and otherwise
# within a relative 2^-53 with the sign of x - r1; r2 = t rounded and d = t - r2 are exact. So the
# nearest integer is r = r1 + r2, x - r is d, and ceil(x) = r + (d > 0) outside the snap, r inside
# it. Elements whose |d| lies within a relative 1e-9 of the snap's bound (where rounding could
# decide), or beyond int64, take the scalar path.
_INT64_SAFE = 2.0**62
_POW10 = np.array([10.0**n for n in range(23)])
_SPLIT = 2.0**27 + 1
_SNAP_RELATIVE = float(SNAP_RELATIVE)
_SNAP_UNITS_MAX = float(SNAP_UNITS_MAX)


def _two_product(a: np.ndarray, b: float) -> tuple[np.ndarray, np.ndarray]:
    """p, e with p = fl(a * b) and a * b = p + e exactly (Dekker, via Veltkamp's split)."""
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    ah, bh = ca - (ca - a), cb - (cb - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _units_array(values, decimals: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    flat = v.ravel()
    if not np.isfinite(flat).all():
        raise InvariantViolation(f"non-finite money value {flat[~np.isfinite(flat)][0]!r} reached the ledger")
    if decimals > 22 or not (np.abs(flat) * 10.0**decimals < _INT64_SAFE).all():
        return np.array([ceil_units(float(e), decimals) for e in flat], dtype=object).reshape(v.shape)
    p, e = _two_product(flat, _POW10[decimals])
    r1 = np.rint(p)
    t = (p - r1) + e
    r2 = np.rint(t)
    d = t - r2
    bound = np.minimum(np.abs(p) * _SNAP_RELATIVE, _SNAP_UNITS_MAX)
    out = r1.astype(np.int64) + r2.astype(np.int64) + ((d > 0) & (np.abs(d) > bound))
    unsure = (d != 0) & (np.abs(np.abs(d) - bound) <= 1e-9 * bound)  # d = 0: a whole unit, sure
    for i in np.flatnonzero(unsure):
        out[i] = ceil_units(float(flat[i]), decimals)
    return out.reshape(v.shape)

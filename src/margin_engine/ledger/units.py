"""Conversions between decimal amounts and integer smallest units, with the rounding direction named.

Money is an integer count of an asset's smallest unit (USDC 6 decimals, BTC 8, ETH 18). A value
that comes from float risk maths meets the ledger rounded against the user: requirements up
(`ceil_units`), equity and payouts down (`floor_units`), so rounding never creates money.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

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


def decimal_to_units_half_even(amount: Decimal, decimals: int) -> int:
    """For cash flows both sides book with the same integer (premium, trade notional)."""
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_HALF_EVEN))


def decimal_to_units_ceil(amount: Decimal, decimals: int) -> int:
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))


def decimal_to_units_floor(amount: Decimal, decimals: int) -> int:
    return int(amount.scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


# Float risk maths carries relative noise of a few 1e-16 per operation: 0.05 * 120000 comes out
# as 6000.0000000000055 because 1 - 0.95 is not exact. Keeping 13 significant digits before
# rounding in the named direction stops such noise from adding a unit. Real sub-unit fractions
# survive for amounts under 1e12 units (a million USDC); above 1e13 units the snap itself may
# move an amount by up to half a unit, a relative 5e-14.
_SNAP_CONTEXT = Context(prec=13, rounding=ROUND_HALF_EVEN)


def ceil_units(value: float, decimals: int) -> int:
    """A float requirement in whole units of the asset, rounded up."""
    return math.ceil(_snapped(value, decimals))


def floor_units(value: float, decimals: int) -> int:
    """A float equity or payout in whole units of the asset, rounded down."""
    return math.floor(_snapped(value, decimals))


def _snapped(value: float, decimals: int) -> Decimal:
    if not math.isfinite(value):
        raise InvariantViolation(f"non-finite money value {value!r} reached the ledger")
    return _SNAP_CONTEXT.create_decimal(Decimal(value).scaleb(decimals))


def ceil_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`ceil_units` of every element (int64; Python ints past 2**62), bit for bit the scalar rule."""
    return _units_array(values, decimals)


def floor_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`floor_units` of every element: the snap rounds half to even, so floor(v) = -ceil(-v)."""
    return -_units_array(-np.asarray(values, dtype=float), decimals)


# The scalar rule rounds x = value * 10**decimals to 13 significant digits, i.e. to an integer
# multiple k of 10**-m with m = 12 - floor(log10 |x|), then takes the floor or ceiling; k / 10**m
# is rounded here in integers. q = value * 10**(decimals + m) is formed exactly, as a float p plus
# its rounding error (Dekker's product; 10**n is exact for 0 <= n <= 22), so k is q rounded half
# to even with no error. Elements near a power of ten (m unsure), or out of that reach, take the
# scalar path.
_INT64_SAFE = 2.0**62
_POW10 = np.array([10.0**n for n in range(23)])
_INT_POW10 = np.array([10**n for n in range(19)], dtype=np.int64)
_SPLIT = 2.0**27 + 1


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p, e with p = fl(a * b) and a * b = p + e exactly (Dekker, via Veltkamp's split)."""
    p = a * b
    ca, cb = _SPLIT * a, _SPLIT * b
    ah, bh = ca - (ca - a), cb - (cb - b)
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _units_array(values, decimals: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    flat = v.ravel()
    ax = np.abs(flat) * 10.0**decimals
    if not (ax < _INT64_SAFE).all():  # NaN and inf fail this too
        if not np.isfinite(v).all():
            raise InvariantViolation(f"non-finite money value {v[~np.isfinite(v)][0]!r} reached the ledger")
        return np.array([ceil_units(float(e), decimals) for e in flat], dtype=object).reshape(v.shape)
    zero = ax == 0
    m = 12 - np.floor(np.log10(np.where(zero, 1.0, ax))).astype(np.int64)
    n = m + decimals
    p, e = _two_product(flat, _POW10[np.minimum(np.maximum(n, 0), 22)])
    ap = np.abs(p)
    reach = (n < 0) | (n > 22) | (m > 18) | (m < -6)
    unsure = ~zero & (reach | (ap < 1e12 * (1 + 1e-12)) | (ap >= 1e13 * (1 - 1e-12)))  # log10 may misjudge m
    # q = whole + g + e with g = p - whole exact in [0, 1) on the grid of p's ulp, |e| <= ulp / 2:
    # g alone decides unless it is exactly a half, where e's sign does, and e = 0 is a true tie.
    whole = np.floor(p)
    g = p - whole
    k = np.where(unsure, 0.0, whole).astype(np.int64)
    k += np.where(g == 0.5, np.where(e == 0, (k & 1) == 1, e > 0), g > 0.5)
    scale = _INT_POW10[np.minimum(np.abs(m), 18)]
    out = np.where(m >= 0, -((-k) // scale), k * scale)
    for i in np.flatnonzero(unsure):
        out[i] = ceil_units(float(flat[i]), decimals)
    return out.reshape(v.shape)

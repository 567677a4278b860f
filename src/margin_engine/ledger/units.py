"""Conversions between decimal amounts and integer smallest units, with the rounding direction named.

Money is an integer count of an asset's smallest unit (USDC 6 decimals, BTC 8, ETH 18). A value
that comes from float risk maths meets the ledger rounded against the user: requirements up
(`ceil_units`), equity and payouts down (`floor_units`), so rounding never creates money.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

import numpy as np

from margin_engine.errors import InputError, InvariantViolation


def parse_decimal(value: object, field: str, *, positive: bool = False, non_negative: bool = False) -> Decimal:
    """A finite Decimal from a JSON/TOML value; strings are preferred as they are exact."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InputError(field, f"expected a decimal number (as a string), got {value!r}")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise InputError(field, f"expected a decimal number, got {value!r}") from None
    if not number.is_finite():
        raise InputError(field, f"must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise InputError(field, f"must be > 0, got {value}")
    if non_negative and number < 0:
        raise InputError(field, f"must be >= 0, got {value}")
    return number


def to_units(amount: Decimal, decimals: int, field: str = "amount") -> int:
    """Exact conversion; an amount finer than the asset's decimals is an error, never rounded."""
    scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InputError(field, f"{amount} has more than {decimals} decimal places")
    return int(scaled)


def from_units(units: int, decimals: int) -> Decimal:
    return Decimal(units).scaleb(-decimals)


def format_units(units: int, decimals: int) -> str:
    """Decimal string with exactly `decimals` places, as the JSON outputs carry amounts."""
    return format(from_units(units, decimals).quantize(Decimal(1).scaleb(-decimals)), "f")


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
    """`ceil_units` of every element (int64), bit for bit the scalar rule."""
    return _units_array(values, decimals, np.ceil, ceil_units)


def floor_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`floor_units` of every element (int64), bit for bit the scalar rule."""
    return _units_array(values, decimals, np.floor, floor_units)


# Rounding to 13 significant digits moves x to the nearest multiple of its grid 10**(e - 12), where
# 10**e <= |x|, so the grid lies in [1e-13 |x|, 1e-12 |x|]; scaling by 10**decimals in float moves x
# by <= 1.2e-16 |x|. Farther than 2e-12 |x| from every integer, the snap cannot change x's floor
# or ceiling, so numpy's is exact. Closer than 4e-14 |x| to an integer n, with |x| < 1e12 (where
# every integer is a grid point), the snap lands on n. In between, the scalar rule decides.
_SNAP_MARGIN = 2e-12
_SNAP_SURE = 4e-14
_INT64_SAFE = 2.0**62


def _units_array(values, decimals: int, rounding, scalar) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        bad = v[~np.isfinite(v)][0]
        raise InvariantViolation(f"non-finite money value {bad!r} reached the ledger")
    x = v * 10.0**decimals
    if (np.abs(x) >= _INT64_SAFE).any():
        raise InvariantViolation(f"money value {v[np.abs(x) >= _INT64_SAFE][0]!r} is beyond int64 units")
    whole = np.rint(x)
    gap, size = np.abs(x - whole), np.abs(x)
    out = np.where((gap < _SNAP_SURE * size) & (size < 1e12), whole, rounding(x)).astype(np.int64)
    unsure = (gap <= _SNAP_MARGIN * size) & ((gap >= _SNAP_SURE * size) | (size >= 1e12)) & (size > 0)
    for i in np.flatnonzero(unsure):
        out.flat[i] = scalar(float(v.flat[i]), decimals)
    return out

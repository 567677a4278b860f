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
    """`ceil_units` of every element (int64; Python ints past 2**62), bit for bit the scalar rule."""
    return _units_array(values, decimals, ceiling=True)


def floor_units_array(values: np.ndarray, decimals: int) -> np.ndarray:
    """`floor_units` of every element (int64; Python ints past 2**62), bit for bit the scalar rule."""
    return _units_array(values, decimals, ceiling=False)


# The scalar rule rounds x = value * 10**decimals to 13 significant digits, i.e. to an integer
# multiple k of 10**-m with m = 12 - floor(log10 |x|), then takes the floor or ceiling. Here q =
# x * 10**m is computed in float within a few ulps (|q| < 1e13: 0.01 at most), so k = rint(q) is
# exact unless q sits near a half or |x| near a power of ten; k / 10**m is then rounded in
# integers. Those few unsure elements (and m out of int64 reach) take the scalar path.
_INT64_SAFE = 2.0**62
_HALF_BAND = 0.006  # > 1.5 ulp of 1e13, the float error of q
_POW10 = np.array([10.0**m for m in range(-25, 26)])  # index m + 25


def _units_array(values, decimals: int, ceiling: bool) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        bad = v[~np.isfinite(v)][0]
        raise InvariantViolation(f"non-finite money value {bad!r} reached the ledger")
    x = (v * 10.0**decimals).ravel()
    scalar = ceil_units if ceiling else floor_units
    if (np.abs(x) >= _INT64_SAFE).any():  # e.g. 18-decimal amounts: exact Python ints instead
        return np.array([scalar(float(e), decimals) for e in v.ravel()], dtype=object).reshape(v.shape)
    out = np.zeros(x.shape, dtype=np.int64)
    nz = np.flatnonzero(x)
    xs = x[nz]
    m = 12 - np.floor(np.log10(np.abs(xs))).astype(np.int64)
    m = np.clip(m, -25, 25)
    q = xs * _POW10[m + 25]
    aq = np.abs(q)
    unsure = (np.abs(q - np.floor(q) - 0.5) < _HALF_BAND) | (aq < 1e12 * (1 + 1e-12)) | (aq > 1e13 * (1 - 1e-12))
    unsure |= (m > 18) | (m < -6)
    k = np.rint(np.where(unsure, 0.0, q)).astype(np.int64)
    scale = np.power(10, np.clip(np.abs(m), 0, 18), dtype=np.int64)
    if ceiling:
        down = -((-k) // scale)
    else:
        down = k // scale
    out[nz] = np.where(m >= 0, down, k * scale)
    for i in nz[unsure]:
        out[i] = scalar(float(v.ravel()[i]), decimals)
    return out.reshape(v.shape)

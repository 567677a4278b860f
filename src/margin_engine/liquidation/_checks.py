"""Argument checks shared by the liquidation modules: each failure names its field."""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Real

from margin_engine.liquidation.errors import LiquidationInputError


def finite(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise LiquidationInputError(field, f"must be a finite number, got {value!r}")
    return float(value)


def non_negative(value: float, field: str) -> float:
    if finite(value, field) < 0:
        raise LiquidationInputError(field, f"must be >= 0, got {value!r}")
    return float(value)


def units(value: int, field: str) -> int:
    """An amount in smallest units: an int, never a float that could carry a fraction of a unit."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LiquidationInputError(field, f"must be an integer amount in smallest units, got {value!r}")
    return value


def non_negative_units(value: int, field: str) -> int:
    if units(value, field) < 0:
        raise LiquidationInputError(field, f"must be >= 0, got {value}")
    return value


def share(value: float, field: str) -> float:
    """A fraction of an account or position in (0, 1]: taking nothing is not a liquidation step."""
    if not 0 < finite(value, field) <= 1:
        raise LiquidationInputError(field, f"must be in (0, 1], got {value!r}")
    return float(value)


def exact(ratio: float) -> Fraction:
    """A parameter ratio as the decimal it was written as (0.0075, not its binary neighbour), so
    integer amounts times a ratio round in the named direction without float noise."""
    return Fraction(repr(float(ratio)))

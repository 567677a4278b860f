"""Bad input to the perp maths (a NaN, a negative notional, tiers out of order): fixable by the caller."""

from __future__ import annotations

from margin_engine.errors import InputError


class PerpInputError(InputError):
    """A number outside its domain, or tiers that do not rise."""

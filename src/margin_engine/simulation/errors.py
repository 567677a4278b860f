"""Operating errors of the simulation building blocks: bad input the caller can fix.

Each names the field at fault, like every `InputError`.
"""

from __future__ import annotations

from margin_engine.errors import InputError


class SimulationInputError(InputError):
    """A parameter or array outside its domain: a negative volatility, a NaN price, a wrong shape."""


class BookExhaustedError(InputError):
    """A sale larger than everything the modelled book holds down to a price of zero.

    An operating error, not a bug: the simulator should bound the size it sends (Drift bounds
    liquidation steps the same way) or treat the rest as unfilled.
    """


class PriceWindowError(InputError):
    """A price CSV window that cannot become a path: too short, uneven bars, a step that does not fit."""

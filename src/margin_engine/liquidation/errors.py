"""Operating errors of the liquidation maths: bad input the caller (the engine) can fix or report.

Each names the field at fault, like every `InputError`. A state machine catches them to reject a
command (a bid after the auction ended, a duplicate sealed bid) without touching state.
"""

from __future__ import annotations

from margin_engine.errors import InputError


class LiquidationInputError(InputError):
    """A number outside its domain: a negative amount, a fraction outside (0, 1], a NaN."""


class NotLiquidatableError(InputError):
    """The account meets its maintenance requirement: there is nothing to liquidate."""


class AuctionEndedError(InputError):
    """A solvent Dutch auction whose price has reached 0: it must restart as an insolvent one."""


class DuplicateBidderError(InputError):
    """A sealed-bid batch takes one bid per bidder, so nobody gains by splitting a bid."""


class TooManyBidsError(InputError):
    """A batch holds at most `BatchParams.max_bids` bids (a bound on the clearing work)."""


class WaterfallInputError(InputError):
    """The waterfall mode's inputs are missing (ADL without a book, socialized loss without depositors)."""

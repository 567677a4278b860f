"""Fixed-penalty liquidation (Deribit): a liquidator takes the position at mark minus (long) or plus
(short) a penalty of `penalty_ratio` of notional, and the penalty is split with the insurance fund.

The engine books the take-over at mark (no value changes hands) and the penalty as integer
transfers out of the liquidated account; together they are the trade at `liquidation_price`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from margin_engine.liquidation._checks import exact, finite, non_negative_units
from margin_engine.liquidation.errors import LiquidationInputError
from margin_engine.liquidation.params import FixedParams


def liquidation_price(mark_price: float, size: float, params: FixedParams) -> float:
    """Price per unit at which the liquidator takes a position of signed `size`: the liquidated
    side always gets the worse price, mark * (1 - penalty) for a long, mark * (1 + penalty) for a short."""
    if finite(mark_price, "mark_price") <= 0:
        raise LiquidationInputError("mark_price", f"must be > 0, got {mark_price!r}")
    if finite(size, "size") == 0:
        raise LiquidationInputError("size", "must be non-zero (negative = short)")
    return mark_price * (1.0 - params.penalty_ratio) if size > 0 else mark_price * (1.0 + params.penalty_ratio)


@dataclass(frozen=True)
class FixedTransfers:
    """The penalty and its split, in settlement smallest units: liquidator + insurance == penalty."""

    penalty_units: int  # out of the liquidated account (owed: rounded up, then capped)
    liquidator_units: int  # to the liquidator (received: rounded down)
    insurance_units: int  # to the insurance fund: the rest, so no unit is lost to rounding


def penalty_transfers(
    notional_units: int, params: FixedParams, *, max_penalty_units: int | None = None
) -> FixedTransfers:
    """The penalty on the closed `notional_units` (|size| * mark) and who receives it.

    `max_penalty_units` is what the account still has after the close (its equity, floored at 0):
    a penalty never pushes an account below zero, where the insurance fund would pay it to itself.
    """
    non_negative_units(notional_units, "notional_units")
    penalty = math.ceil(notional_units * exact(params.penalty_ratio))
    if max_penalty_units is not None:
        penalty = min(penalty, non_negative_units(max_penalty_units, "max_penalty_units"))
    liquidator = math.floor(penalty * (1 - exact(params.insurance_share)))
    return FixedTransfers(penalty, liquidator, penalty - liquidator)

"""How much of an account to close: no more than it takes to restore maintenance plus a buffer.

Standard and cross accounts close every position pro rata (the same fraction f of each), at the
liquidation price, so the account keeps its shape (a spread stays a spread). The target after the
close is equity >= (1 + buffer_ratio) * maintenance requirement (Drift's liquidation buffer; Lyra's
buffer margin has the same form). Portfolio accounts close positions one by one, the largest
contributor to the worst-scenario loss first (REFERENCE.md, "Known user complaints").

Risk maths in floats, as the margin modules; `close_size` turns a fraction into a size the engine
can book.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

import numpy as np

from margin_engine.liquidation._checks import finite, non_negative, non_negative_units, share
from margin_engine.liquidation.errors import LiquidationInputError


def close_fraction(
    equity: float,
    maintenance: float,
    close_cost: float,
    buffer_ratio: float,
    *,
    fixed_maintenance: float = 0.0,
    quadratic_maintenance: float = 0.0,
) -> float:
    """Smallest f in [0, 1] that restores equity >= (1 + b) * requirement after closing f of every
    position at the liquidation price.

    Closing f leaves equity E - f C (C: the cost of closing everything at the liquidation price
    rather than mark, i.e. the penalty on the whole book) and, with g = 1 - f, requirement
    g (M - Q) + g^2 Q + H: M the requirement that closing scales away, of which Q grows with the
    square of size (Deribit's size add-on, size_ratio_per_unit * size^2 * index, summed over perps;
    every other term of the standard formulas, Lyra's max-loss cap included, scales with size),
    and H the terms no close removes (collateral haircuts). The surplus
    s(g) = E - (1 - g) C - (1 + b) (g (M - Q) + g^2 Q + H) is concave in g; the answer is 1 minus
    its largest root in [0, 1]. With Q = 0: f = ((1 + b)(M + H) - E) / ((1 + b) M - C).
    When even closing everything leaves s < 0 (the close costs more than it releases), it is 1.
    """
    b = non_negative(buffer_ratio, "buffer_ratio")
    m = non_negative(maintenance, "maintenance")
    q = non_negative(quadratic_maintenance, "quadratic_maintenance")
    h = non_negative(fixed_maintenance, "fixed_maintenance")
    c = non_negative(close_cost, "close_cost")
    e = finite(equity, "equity")
    if q > m:
        raise LiquidationInputError("quadratic_maintenance", f"{q!r} exceeds the maintenance it is part of, {m!r}")
    if e - (1 + b) * (m + h) >= 0:
        return 0.0  # g = 1: nothing to close
    at_zero = e - c - (1 + b) * h  # s(0): everything closed
    if at_zero < 0:
        return 1.0
    # s(g) = A g^2 + B g + at_zero, s(0) >= 0 > s(1): the root in (0, 1) where s turns negative
    a, slope = -(1 + b) * q, c - (1 + b) * (m - q)
    if a == 0:
        g = -at_zero / slope
    else:
        root = math.sqrt(max(slope * slope - 4 * a * at_zero, 0.0))
        # the larger root of a downward parabola, in the form that does not cancel
        g = (2 * at_zero) / (-slope + root) if slope < 0 else (-slope - root) / (2 * a)
    return min(max(1.0 - g, 0.0), 1.0)


def perp_close_fraction(
    equity: float,
    size: float,
    mark_price: float,
    mm_ratio: float,
    penalty_ratio: float,
    buffer_ratio: float,
    size_ratio_per_unit: float = 0.0,
) -> float:
    """One perp with MM = |size| * mark * (mm_ratio + size_ratio_per_unit * |size|), closed at
    mark -/+ penalty (with no add-on: f = ((1 + b) |q| S m - E) / ((1 + b) |q| S m - |q| S p))."""
    notional = abs(finite(size, "size")) * non_negative(mark_price, "mark_price")
    quadratic = notional * non_negative(size_ratio_per_unit, "size_ratio_per_unit") * abs(size)
    return close_fraction(
        equity,
        notional * non_negative(mm_ratio, "mm_ratio") + quadratic,
        notional * non_negative(penalty_ratio, "penalty_ratio"),
        buffer_ratio,
        quadratic_maintenance=quadratic,
    )


def apply_small_account_cutoff(fraction: float, gross_notional_units: int, cutoff_units: int) -> float:
    """Close the whole account when it, or what a partial close would leave of it, is smaller than
    the cutoff: a dust position costs more to liquidate later than it is worth."""
    if not 0 <= finite(fraction, "fraction") <= 1:
        raise LiquidationInputError("fraction", f"must be in [0, 1], got {fraction!r}")
    gross = non_negative_units(gross_notional_units, "gross_notional_units")
    cutoff = non_negative_units(cutoff_units, "cutoff_units")
    return 1.0 if gross < cutoff or gross * (1.0 - fraction) < cutoff else fraction


def close_size(size: Decimal, fraction: float, size_decimals: int) -> Decimal:
    """The signed size to close for `fraction` of a position: |size| * f rounded up to the size
    step (closing a step more never leaves the account short of its target), at most the whole."""
    if not isinstance(size, Decimal) or not size.is_finite() or size == 0:
        raise LiquidationInputError("size", f"must be a finite non-zero Decimal, got {size!r}")
    step = Decimal(1).scaleb(-non_negative_units(size_decimals, "size_decimals"))
    magnitude = (abs(size) * Decimal(repr(share(fraction, "fraction")))).quantize(step, rounding=ROUND_CEILING)
    return min(magnitude, abs(size)).copy_sign(size)


def close_order(loss_contributions: np.ndarray) -> np.ndarray:
    """Indices of a portfolio account's positions in the order to close them: the largest
    contribution to the worst-scenario loss first, ties by position index. Positions with a
    contribution <= 0 hedge the worst scenario and come last; closing them adds risk."""
    contributions = np.asarray(loss_contributions, dtype=np.float64)
    if contributions.ndim != 1:
        raise LiquidationInputError("loss_contributions", f"must be one-dimensional, got shape {contributions.shape}")
    if not np.all(np.isfinite(contributions)):
        raise LiquidationInputError("loss_contributions", "must be finite")
    return np.argsort(-contributions, kind="stable")

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

from collections.abc import Callable
from decimal import ROUND_CEILING, Decimal

import numpy as np

from margin_engine.liquidation._checks import finite, non_negative, non_negative_units, share
from margin_engine.liquidation.errors import LiquidationInputError

BISECTION_STEPS = 60  # halves [0, 1] to below 1e-18: past float resolution, and a bound on the work


def linear_close_fraction(
    equity: float,
    maintenance: float,
    close_cost: float,
    buffer_ratio: float,
    *,
    fixed_maintenance: float = 0.0,
) -> float:
    """Smallest f in [0, 1] that restores equity >= (1 + b) * requirement when the positions'
    requirement is linear in their sizes.

    Closing f of every position leaves equity E - f C (C: the cost of closing everything at the
    liquidation price rather than mark, i.e. the penalty on the whole book) and requirement
    (1 - f) M + H (H: terms no close removes, such as collateral haircuts). Solving
    E - f C >= (1 + b) ((1 - f) M + H) gives f >= ((1 + b)(M + H) - E) / ((1 + b) M - C).
    When closing releases no more requirement than it costs ((1 + b) M <= C), only closing all helps.
    """
    target = (1.0 + non_negative(buffer_ratio, "buffer_ratio")) * (
        non_negative(maintenance, "maintenance") + non_negative(fixed_maintenance, "fixed_maintenance")
    )
    shortfall = target - finite(equity, "equity")
    if shortfall <= 0:
        return 0.0
    released = (1.0 + buffer_ratio) * maintenance - non_negative(close_cost, "close_cost")
    if released <= 0:
        return 1.0
    return min(shortfall / released, 1.0)


def perp_close_fraction(
    equity: float, size: float, mark_price: float, mm_ratio: float, penalty_ratio: float, buffer_ratio: float
) -> float:
    """The closed form for one perp with MM = |size| * mark * mm_ratio, closed at mark -/+ penalty:
    f = ((1 + b) |q| S m - E) / ((1 + b) |q| S m - |q| S p), clamped to [0, 1]."""
    notional = abs(finite(size, "size")) * non_negative(mark_price, "mark_price")
    return linear_close_fraction(
        equity,
        notional * non_negative(mm_ratio, "mm_ratio"),
        notional * non_negative(penalty_ratio, "penalty_ratio"),
        buffer_ratio,
    )


def smallest_close_fraction(surplus_after: Callable[[float], float]) -> float:
    """Smallest f in [0, 1] with surplus_after(f) >= 0, for requirements that are not linear in size
    (Deribit's size add-on, Lyra's max-loss cap): surplus_after(f) is equity after closing f of
    every position at the liquidation price minus (1 + buffer_ratio) times the requirement left,
    assumed to rise with f. Bisection keeps the upper end, where the surplus is >= 0, so the
    answer always restores the account; 1 when even closing everything does not."""
    if finite(surplus_after(0.0), "surplus_after(0)") >= 0:
        return 0.0
    if finite(surplus_after(1.0), "surplus_after(1)") < 0:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if finite(surplus_after(middle), "surplus_after") >= 0:
            high = middle
        else:
            low = middle
    return high


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

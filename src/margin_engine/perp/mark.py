"""The perp mark with its basis, and a dated future's delivery price.

- **Mark** (Deribit, "Mark price" of futures and perpetuals; Paradex publishes the same shape):
  mark = index + an EMA of the basis (perp price - index) over `basis_ema_s` (Deribit: 30 s),
  the basis clamped to +/- `basis_max_ratio` of the index so one print in a thin book cannot move
  the margin of every account. `basis_ema` folds one observation in; the engine keeps the result.
- **Delivery** (Deribit, "Delivery price"): the time-weighted average of the index over the last
  30 minutes before expiry (`twap_window_s` = 1,800), each index value held until the next.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from margin_engine.perp.errors import PerpInputError

DERIBIT_BASIS_EMA_S = 30  # Deribit: 30-second EMA of (futures price - index)
DERIBIT_DELIVERY_WINDOW_S = 1800  # Deribit: TWAP of the index over the last 30 minutes


def clamped_basis(perp_price: float, index: float, basis_max_ratio: float) -> float:
    """perp - index (USD), within +/- basis_max_ratio x index."""
    for name, v in (("perp_price", perp_price), ("index", index)):
        if not (math.isfinite(v) and v > 0):
            raise PerpInputError(name, f"expected a finite price > 0, got {v!r}")
    if not (math.isfinite(basis_max_ratio) and 0 <= basis_max_ratio < 1):
        raise PerpInputError("basis_max_ratio", f"expected a ratio in [0, 1), got {basis_max_ratio!r}")
    bound = basis_max_ratio * index
    return min(max(perp_price - index, -bound), bound)


def basis_ema(previous: float | None, observed: float, elapsed_s: int, ema_s: int) -> float:
    """The basis EMA after `elapsed_s` more seconds with `observed` as the latest basis: a
    continuous-time EMA (weight 1 - e^(-elapsed/ema_s) on the new value); the first observation
    starts it."""
    if not math.isfinite(observed):
        raise PerpInputError("basis", f"expected a finite basis, got {observed!r}")
    if elapsed_s < 0 or ema_s <= 0:
        raise PerpInputError("elapsed_s", f"expected elapsed_s >= 0 and ema_s > 0, got {elapsed_s}, {ema_s}")
    if previous is None:
        return observed
    w = -math.expm1(-elapsed_s / ema_s)
    return previous + w * (observed - previous)


def mark_price(index: float, basis_average: float, basis_max_ratio: float) -> float:
    """index + the averaged basis, the average clamped again (the clamp binds the mark itself)."""
    bound = basis_max_ratio * index
    return index + min(max(basis_average, -bound), bound)


def delivery_price(
    points: Sequence[tuple[int, float]], expiry_s: int, window_s: int = DERIBIT_DELIVERY_WINDOW_S
) -> float:
    """TWAP of the index over [expiry - window, expiry): `points` are (time, index), sorted; each
    value holds until the next point; the value in force at the window's start counts from there."""
    if not points:
        raise PerpInputError("points", "no index values to average")
    start = expiry_s - window_s
    times = [t for t, _ in points]
    if times != sorted(times) or any(not (math.isfinite(p) and p > 0) for _, p in points):
        raise PerpInputError("points", "index values must be finite, > 0 and in time order")
    before = [p for p in points if p[0] <= start]
    if not before:
        raise PerpInputError("points", f"no index value at or before the window's start ({start})")
    inside = [before[-1]] + [p for p in points if start < p[0] < expiry_s]
    total = 0.0
    for (t, price), nxt in zip(inside, [*inside[1:], (expiry_s, 0.0)], strict=True):
        total += price * (nxt[0] - max(t, start))
    return total / window_s

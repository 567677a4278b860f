"""Keeper-facing ranking of liquidatable accounts: the worst first, vectorized over all accounts.

An account is liquidatable when equity < maintenance requirement (docs/model.md). Accounts are
ranked by equity / MM ascending (dYdX ranks by collateral over requirement), so accounts with
negative equity, which lose the insurance fund money with every tick, come first; an account with
no requirement but negative equity ranks first of all (-inf). Ties go to the larger requirement,
then the lower index, so the order never depends on anything but the numbers.
"""

from __future__ import annotations

import numpy as np

from margin_engine.liquidation.errors import LiquidationInputError


def _checked(equity: np.ndarray, maintenance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eq = np.asarray(equity, dtype=np.float64)
    mm = np.asarray(maintenance, dtype=np.float64)
    if eq.ndim != 1 or eq.shape != mm.shape:
        raise LiquidationInputError("equity", f"equity {eq.shape} and maintenance {mm.shape} must be equal 1-D shapes")
    if not (np.all(np.isfinite(eq)) and np.all(np.isfinite(mm))):
        raise LiquidationInputError("equity", "equity and maintenance must be finite")
    if np.any(mm < 0):
        raise LiquidationInputError("maintenance", "must be >= 0 (a requirement)")
    return eq, mm


def health_ratio(equity: np.ndarray, maintenance: np.ndarray) -> np.ndarray:
    """equity / MM per account; with MM == 0, +inf when equity >= 0 (nothing to liquidate) and -inf
    when equity < 0 (bankrupt with nothing left to close)."""
    eq, mm = _checked(equity, maintenance)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = eq / mm
    return np.where(mm > 0, ratio, np.where(eq < 0, -np.inf, np.inf))


def liquidation_order(equity: np.ndarray, maintenance: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Indices of the liquidatable accounts (equity < MM), worst first; at most `limit` of them
    (`LiquidationParams.max_accounts_per_tick`)."""
    eq, mm = _checked(equity, maintenance)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise LiquidationInputError("limit", f"must be a non-negative int, got {limit!r}")
    candidates = np.flatnonzero(eq < mm)
    ratio = health_ratio(eq, mm)[candidates]
    order = candidates[np.lexsort((candidates, -mm[candidates], ratio))]
    return order if limit is None else order[:limit]

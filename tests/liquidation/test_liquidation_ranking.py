"""Keeper ranking: liquidatable accounts, worst equity / MM first, against a plain loop twin."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import LiquidationInputError, health_ratio, liquidation_order


def test_hand_worked_order():
    equity = np.array([900.0, -50.0, 100.0, 500.0, -10.0, 0.0, 200.0])
    mm = np.array([1_000.0, 100.0, 0.0, 400.0, 0.0, 0.0, 400.0])
    # ratios: 0.9, -0.5, +inf (MM 0, equity >= 0: not liquidatable), 1.25 (healthy), -inf (bankrupt,
    # nothing to close), +inf (empty account), 0.5
    assert health_ratio(equity, mm).tolist() == [0.9, -0.5, math.inf, 1.25, -math.inf, math.inf, 0.5]
    assert liquidation_order(equity, mm).tolist() == [4, 1, 6, 0]
    assert liquidation_order(equity, mm, limit=2).tolist() == [4, 1]


def test_ties_go_to_the_larger_requirement_then_the_index():
    equity = np.array([50.0, 100.0, 50.0])
    mm = np.array([100.0, 200.0, 100.0])  # all at 0.5
    assert liquidation_order(equity, mm).tolist() == [1, 0, 2]


def test_rejects_bad_arrays():
    with pytest.raises(LiquidationInputError):
        liquidation_order(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(LiquidationInputError):
        liquidation_order(np.array([1.0]), np.array([-1.0]))
    with pytest.raises(LiquidationInputError):
        liquidation_order(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(LiquidationInputError):
        liquidation_order(np.array([1.0]), np.array([2.0]), limit=-1)


def _twin(equity, mm):
    """The plain per-account loop the vectorized ranking must match."""
    rows = []
    for i, (e, m) in enumerate(zip(equity, mm, strict=True)):
        if e >= m:
            continue
        ratio = e / m if m > 0 else -math.inf
        rows.append((ratio, -m, i))
    return [i for _, _, i in sorted(rows)]


@given(
    st.lists(
        st.tuples(st.integers(-1_000, 1_000), st.integers(0, 1_000)).map(lambda t: (float(t[0]), float(t[1]))),
        max_size=40,
    )
)
def test_matches_the_loop_and_puts_negative_equity_first(rows):
    equity = np.array([r[0] for r in rows], dtype=np.float64)
    mm = np.array([r[1] for r in rows], dtype=np.float64)
    order = liquidation_order(equity, mm).tolist()
    assert order == _twin(equity.tolist(), mm.tolist())
    negatives = [i for i in order if equity[i] < 0]
    assert order[: len(negatives)] == negatives

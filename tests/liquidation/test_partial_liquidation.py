"""How much to close: the closed form (with Deribit's size add-on), its bisection twin, dust cutoff,
close order."""

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import (
    FixedParams,
    LiquidationInputError,
    apply_small_account_cutoff,
    close_fraction,
    close_order,
    close_size,
    penalty_transfers,
    perp_close_fraction,
)

MM_RATIO, PENALTY, BUFFER = 0.05, 0.01, 0.20  # flat 5% MM (derive perps), 1% penalty, 20% buffer
USDC = 10**6


def bisect_smallest(surplus_after, steps: int = 80) -> float:
    """Brute force: the smallest f in [0, 1] with surplus_after(f) >= 0 (surplus rising with f)."""
    if surplus_after(0.0) >= 0:
        return 0.0
    if surplus_after(1.0) < 0:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if surplus_after(middle) >= 0 else (middle, high)
    return high


def test_long_perp_liquidated_in_steps_as_the_price_falls():
    # long 10 BTC from 62,000 with 41,000 USDC; target after a step: equity >= 1.2 * MM = 6% of notional
    size, entry, collateral = 10.0, 62_000.0, 41_000.0

    # step 1, mark 60,000: equity 41,000 + 10 * (60,000 - 62,000) = 21,000 < MM 30,000
    # f = (0.06 * 600,000 - 21,000) / (0.06 * 600,000 - 0.01 * 600,000) = 15,000 / 30,000 = 0.5
    equity = collateral + size * (60_000.0 - entry)
    f1 = perp_close_fraction(equity, size, 60_000.0, MM_RATIO, PENALTY, BUFFER)
    assert f1 == pytest.approx(0.5, rel=1e-15)
    # 5 BTC closed at 59,400 (mark - 1%): penalty 5 * 600 = 3,000; equity 18,000 = 1.2 * (5 * 60,000 * 5%)
    penalty = penalty_transfers(300_000 * USDC, FixedParams(penalty_ratio=PENALTY)).penalty_units
    assert penalty == 3_000 * USDC
    equity, size = equity - 3_000.0, size * (1 - f1)
    assert equity == pytest.approx((1 + BUFFER) * size * 60_000.0 * MM_RATIO)

    # step 2, mark 58,750: equity 18,000 + 5 * (58,750 - 60,000) = 11,750 < MM 5 * 58,750 * 5% = 14,687.5
    # f = (0.06 * 293,750 - 11,750) / (0.05 * 293,750) = (17,625 - 11,750) / 14,687.5 = 0.4
    equity += size * (58_750.0 - 60_000.0)
    assert equity == 11_750.0
    f2 = perp_close_fraction(equity, size, 58_750.0, MM_RATIO, PENALTY, BUFFER)
    assert f2 == pytest.approx(0.4, rel=1e-12)
    # 2 BTC closed: penalty 2 * 587.5 = 1,175; equity 10,575 = 1.2 * (3 * 58,750 * 5% = 8,812.5)
    equity, size = equity - 2 * 587.5, size * (1 - f2)
    assert equity == pytest.approx(10_575.0) and size == pytest.approx(3.0)

    # step 3, a gap to 55,000: equity 10,575 + 3 * (55,000 - 58,750) = -675, below zero
    # f = (0.06 * 165,000 + 675) / (0.05 * 165,000) = 10,575 / 8,250 = 1.28 -> close everything
    equity += size * (55_000.0 - 58_750.0)
    assert equity == pytest.approx(-675.0)
    assert perp_close_fraction(equity, size, 55_000.0, MM_RATIO, PENALTY, BUFFER) == 1.0
    # no penalty is left to take: the 675 deficit goes to the waterfall
    assert penalty_transfers(165_000 * USDC, FixedParams(penalty_ratio=PENALTY), max_penalty_units=0).penalty_units == 0


def test_close_fraction_edges():
    assert close_fraction(1_000.0, 500.0, 10.0, 0.1) == 0.0  # already above 1.1 * MM
    # cross account with 100 of collateral haircut that no close removes:
    # f = (1.1 * (500 + 100) - 400) / (1.1 * 500 - 50) = 260 / 500 = 0.52
    assert close_fraction(400.0, 500.0, 50.0, 0.1, fixed_maintenance=100.0) == pytest.approx(0.52)
    # the penalty eats more than a close releases: only closing everything helps
    assert close_fraction(100.0, 500.0, 600.0, 0.1) == 1.0
    with pytest.raises(LiquidationInputError):
        close_fraction(float("nan"), 500.0, 5.0, 0.1)
    with pytest.raises(LiquidationInputError, match="quadratic_maintenance"):
        close_fraction(100.0, 500.0, 5.0, 0.1, quadratic_maintenance=600.0)


def test_deribit_size_add_on_closes_less_than_the_linear_rule():
    # long 10 BTC at 60,000; MM ratio 1% + 0.005% per BTC: M = 600,000 * 1.05% = 6,300, of which the
    # add-on Q = 600,000 * 0.005% * 10 = 300; equity 5,000; penalty 0.75% (C = 4,500); buffer 2%.
    # With g = 1 - f: s(g) = 5,000 - (1 - g) 4,500 - 1.02 (6,000 g + 300 g^2) = 500 - 1,620 g - 306 g^2,
    # root g = (-1,620 + sqrt(1,620^2 + 4 * 306 * 500)) / 612 = (sqrt(3,236,400) - 1,620) / 612
    g = (math.sqrt(3_236_400) - 1_620) / 612
    f = perp_close_fraction(5_000.0, 10.0, 60_000.0, 0.01, 0.0075, 0.02, size_ratio_per_unit=0.00005)
    assert f == pytest.approx(1 - g, rel=1e-12) and f == pytest.approx(0.707517, abs=1e-6)
    # treating the whole 6,300 as linear closes (6,426 - 5,000) / (6,426 - 4,500) = 0.7404: 4.6% too much
    assert close_fraction(5_000.0, 6_300.0, 4_500.0, 0.02) == pytest.approx(1_426 / 1_926)

    def surplus_after(f):
        q = 10 * (1 - f)
        return 5_000 - f * 10 * 60_000 * 0.0075 - 1.02 * q * 60_000 * (0.01 + 0.00005 * q)

    assert surplus_after(f) == pytest.approx(0, abs=1e-7) and surplus_after(f - 1e-9) < 0


@given(
    equity=st.floats(min_value=-1e6, max_value=1e6),
    size=st.floats(min_value=0.001, max_value=100),
    mark=st.floats(min_value=1, max_value=1e5),
    penalty=st.floats(min_value=0, max_value=0.02),
    buffer=st.floats(min_value=0, max_value=0.5),
    add_on=st.sampled_from([0.0, 0.00005, 0.0005]),
)
def test_bisection_twin_of_the_closed_form(equity, size, mark, penalty, buffer, add_on):
    notional = size * mark

    def surplus_after(f):
        q = size * (1 - f)
        return equity - f * notional * penalty - (1 + buffer) * q * mark * (MM_RATIO + add_on * q)

    closed = perp_close_fraction(equity, size, mark, MM_RATIO, penalty, buffer, size_ratio_per_unit=add_on)
    assert closed == pytest.approx(bisect_smallest(surplus_after), abs=1e-9)
    assert 0 <= closed <= 1
    if closed < 1:
        assert surplus_after(closed) >= -1e-9 * max(notional, abs(equity))


def test_small_accounts_are_closed_whole():
    cutoff = 100 * USDC
    assert apply_small_account_cutoff(0.2, 50 * USDC, cutoff) == 1.0  # smaller than the cutoff
    assert apply_small_account_cutoff(0.5, 150 * USDC, cutoff) == 1.0  # would leave 75 of dust
    assert apply_small_account_cutoff(0.5, 1_000 * USDC, cutoff) == 0.5
    with pytest.raises(LiquidationInputError):
        apply_small_account_cutoff(1.5, 1_000, cutoff)


def test_close_size_rounds_up_to_the_size_step():
    assert close_size(Decimal("5"), 0.4, 4) == Decimal("2.0000")
    assert close_size(Decimal("-3.0001"), 1 / 3, 4) == Decimal("-1.0001")  # 1.000033.. -> up to the step
    assert close_size(Decimal("0.0003"), 0.999, 4) == Decimal("0.0003")  # never more than the position
    with pytest.raises(LiquidationInputError):
        close_size(Decimal("1"), 0.0, 4)


def test_portfolio_close_order_largest_loss_first():
    order = close_order(np.array([5.0, -2.0, 7.0, 5.0, 0.0]))
    assert order.tolist() == [2, 0, 3, 4, 1]  # ties by index; the hedge (-2) last
    with pytest.raises(LiquidationInputError):
        close_order(np.array([1.0, np.nan]))

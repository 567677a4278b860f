"""How much to close: the closed form for a perp, its bisection twin, dust cutoff, close order."""

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import (
    FixedParams,
    LiquidationInputError,
    apply_small_account_cutoff,
    close_order,
    close_size,
    linear_close_fraction,
    penalty_transfers,
    perp_close_fraction,
    smallest_close_fraction,
)

MM_RATIO, PENALTY, BUFFER = 0.05, 0.01, 0.20  # flat 5% MM (derive perps), 1% penalty, 20% buffer
USDC = 10**6


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


def test_linear_close_fraction_edges():
    assert linear_close_fraction(1_000.0, 500.0, 10.0, 0.1) == 0.0  # already above 1.1 * MM
    # cross account with 100 of collateral haircut that no close removes:
    # f = (1.1 * (500 + 100) - 400) / (1.1 * 500 - 50) = 260 / 500 = 0.52
    assert linear_close_fraction(400.0, 500.0, 50.0, 0.1, fixed_maintenance=100.0) == pytest.approx(0.52)
    # the penalty eats more than a close releases: only closing everything helps
    assert linear_close_fraction(100.0, 500.0, 600.0, 0.1) == 1.0
    with pytest.raises(LiquidationInputError):
        linear_close_fraction(float("nan"), 500.0, 5.0, 0.1)


def test_nonlinear_requirement_deribit_size_add_on():
    # long 10 BTC at 60,000, MM ratio 1% + 0.005% per BTC; equity 5,000; penalty 0.75%; buffer 2%
    def surplus_after(f):
        q = 10 * (1 - f)
        return 5_000 - f * 10 * 60_000 * 0.0075 - 1.02 * q * 60_000 * (0.01 + 0.00005 * q)

    f = smallest_close_fraction(surplus_after)
    assert surplus_after(f) >= 0 > surplus_after(f - 1e-12)
    assert smallest_close_fraction(lambda f: 1.0) == 0.0
    assert smallest_close_fraction(lambda f: -1.0) == 1.0


@given(
    equity=st.floats(min_value=-1e6, max_value=1e6),
    size=st.floats(min_value=0.001, max_value=100),
    mark=st.floats(min_value=1, max_value=1e5),
    penalty=st.floats(min_value=0, max_value=0.02),
    buffer=st.floats(min_value=0, max_value=0.5),
)
def test_bisection_twin_of_the_closed_form(equity, size, mark, penalty, buffer):
    notional = size * mark

    def surplus_after(f):
        return equity - f * notional * penalty - (1 + buffer) * (1 - f) * notional * MM_RATIO

    closed = perp_close_fraction(equity, size, mark, MM_RATIO, penalty, buffer)
    assert closed == pytest.approx(smallest_close_fraction(surplus_after), abs=1e-9)
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

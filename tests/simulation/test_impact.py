"""Market impact: depth book and constant-product pool against hand-worked fills, resilience, replay."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.simulation.errors import BookExhaustedError, SimulationInputError
from margin_engine.simulation.impact import (
    ConstantProductPool,
    DepthBook,
    execute,
    impacted_path,
    recover_mid,
)

LINEAR = DepthBook(depth_usd_per_pct=1_000_000, permanent_fraction=0.25)
SQUARE_ROOT = DepthBook(depth_usd_per_pct=1_000_000, permanent_fraction=0.25, depth_exponent=2.0)
# x = 1000 ETH, y = 2,000,000 USD at a mid of 2000: L = sqrt(1000 * 2e6) = 44721.36
POOL = ConstantProductPool(liquidity=np.sqrt(2e9), fee_fraction=0.0)


@given(
    size=st.floats(-50, 50, allow_nan=False),
    consumed=st.floats(0, 5e6),
    exponent=st.sampled_from([1.0, 1.5, 2.0]),
    depth=st.floats(1e5, 1e8),
)
def test_one_fill_in_floats_is_the_array_fill_to_the_bit(size, consumed, exponent, depth):
    book = DepthBook(depth_usd_per_pct=depth, permanent_fraction=0.3, depth_exponent=exponent)
    try:
        avg, mid = book.fill(np.array([size]), np.array([60_000.0]), consumed)
    except BookExhaustedError:
        with pytest.raises(BookExhaustedError):
            DepthBook(1e6, 0.3, exponent).fill_one(size, 60_000.0, consumed, depth)
        return
    assert DepthBook(1e6, 0.3, exponent).fill_one(size, 60_000.0, consumed, depth) == (float(avg[0]), float(mid[0]))


def test_linear_book_sell_and_buy_by_hand():
    # 40 BTC at 50,000 = 2,000,000 USD at mid; 1,000,000 USD per 1%: the sale walks x* = 2%.
    # Uniform depth: average fill at x*/2 = 1% below mid = 49,500; the mid keeps 0.25 * 2% = 0.5%: 49,750.
    avg, mid = execute("sell", 40, 50_000, LINEAR)
    assert float(avg) == pytest.approx(49_500.0)
    assert float(mid) == pytest.approx(49_750.0)
    avg, mid = execute("buy", 40, 50_000, LINEAR)
    assert float(avg) == pytest.approx(50_500.0)
    assert float(mid) == pytest.approx(50_250.0)


def test_square_root_book_by_hand():
    # 80 BTC at 50,000 = 4,000,000 USD; depth grows as (x / 1%)^2: x* = 1% * sqrt(4) = 2%.
    # Quantity density ~ x, so the average distance is 2/3 x* = 1.3333%: 49,333.33; mid 49,750.
    avg, mid = execute("sell", 80, 50_000, SQUARE_ROOT)
    assert float(avg) == pytest.approx(50_000 * (1 - 0.02 * 2 / 3))
    assert float(mid) == pytest.approx(49_750.0)
    # four times the size walks twice as far: the square-root law
    _, mid_4x = execute("sell", 320, 50_000, SQUARE_ROOT)
    assert 50_000 - float(mid_4x) == pytest.approx(2 * (50_000 - float(mid)))


def test_book_is_vectorized_and_zero_size_moves_nothing():
    avg, mid = execute("sell", np.array([0.0, 40.0, 80.0]), np.array([50_000.0, 50_000.0, 25_000.0]), LINEAR)
    assert avg.tolist() == pytest.approx([50_000.0, 49_500.0, 24_750.0])
    assert mid.tolist() == pytest.approx([50_000.0, 49_750.0, 24_875.0])
    assert avg[0] == 50_000.0 and mid[0] == 50_000.0


def test_sale_through_the_whole_book_is_an_operating_error():
    # 1,000,000 USD per 1% holds 100,000,000 USD down to a price of 0: 2,000 BTC at 50,000
    with pytest.raises(BookExhaustedError) as err:
        execute("sell", np.array([1.0, 2_000.0]), 50_000, LINEAR)
    assert err.value.field == "size_base"
    execute("buy", 2_000, 50_000, LINEAR)  # the ask side has no floor


def test_pool_sell_by_hand_and_invariant():
    # sell 100 ETH into x = 1000, y = 2,000,000 without fee: out = 2e6 * 100 / 1100 = 181,818.18,
    # average 1,818.18; after: x = 1100, y = 1,818,181.82, mid = y / x = 1,652.89
    avg, mid = execute("sell", 100, 2000, POOL)
    assert float(avg) == pytest.approx(2e6 / 1100)
    assert float(mid) == pytest.approx((2e6 - 2e6 * 100 / 1100) / 1100)
    x, y = POOL.reserves(mid)
    assert float(x * y) == pytest.approx(2e9, rel=1e-12)  # x * y = k after the trade
    assert float(x) == pytest.approx(1100.0)


def test_pool_fee_matches_uniswap_v2_get_amount_out():
    pool = ConstantProductPool(liquidity=np.sqrt(2e9))  # 0.3% fee
    avg, mid = execute("sell", 100, 2000, pool)
    # UniswapV2Library.getAmountOut: amountIn * 997 * reserveOut / (reserveIn * 1000 + amountIn * 997)
    amount_out = 100 * 997 * 2e6 / (1000 * 1000 + 100 * 997)
    assert float(avg) * 100 == pytest.approx(amount_out)
    x, y = pool.reserves(mid)
    assert float(x) == pytest.approx(1000 + 99.7)  # the fee left the pool: it stays on x * y = k
    assert float(x * y) == pytest.approx(2e9, rel=1e-12)


def test_pool_buy_by_hand_and_round_trip():
    # buy 100 ETH: pay y * 100 / (x - 100) = 2e6 * 100 / 900 = 222,222.22, average 2,222.22;
    # mid after = (2e6 + 222,222.22) / 900 = 2,469.14
    avg, mid = execute("buy", 100, 2000, POOL)
    assert float(avg) == pytest.approx(2e6 / 900)
    assert float(mid) == pytest.approx((2e6 + 2e6 * 100 / 900) / 900)
    _, back = execute("sell", 100, mid, POOL)  # selling it back without fee restores the pool
    assert float(back) == pytest.approx(2000.0, rel=1e-12)
    with pytest.raises(BookExhaustedError):
        execute("buy", 1000, 2000, POOL)  # the whole base reserve


def test_recover_mid_half_life_by_hand():
    # 2% below a flat fundamental of 50,000; after one half-life the log gap halves: 50,000 * 0.98^0.5
    assert float(recover_mid(49_000, 50_000, 50_000, 600, 600)) == pytest.approx(49_497.474683)
    # an infinite half-life is permanent impact: the mid rides 2% below the fundamental
    assert float(recover_mid(49_000, 50_000, 40_000, 600, np.inf)) == pytest.approx(39_200.0)


def test_impacted_path_replays_a_forced_sale_and_recovers():
    fundamental = np.full((2, 4), 50_000.0)
    trades = np.zeros((2, 4))
    trades[1, 0] = -40.0  # path 1 sells 40 BTC at t0: mid 49,750 (0.5% below)
    out = impacted_path(fundamental, trades, LINEAR, dt_s=60, resilience_half_life_s=60)
    assert np.array_equal(out.mid[0], fundamental[0])  # no trade: the oracle sees the fundamental
    # the 0.995 gap halves (in logs) every 60 s step: 50,000 * 0.995^(1/2^k)
    assert out.mid[1] == pytest.approx([50_000 * 0.995 ** (0.5**k) for k in range(4)])
    assert out.avg_price[1, 0] == pytest.approx(49_500.0)


def test_impacted_path_and_execute_check_inputs():
    with pytest.raises(SimulationInputError) as err:
        impacted_path(np.ones((2, 3)), np.zeros((2, 4)), LINEAR, 60, 60)
    assert err.value.field == "net_buy_base"
    with pytest.raises(SimulationInputError) as err:
        execute("short", 1, 100, LINEAR)
    assert err.value.field == "side"
    with pytest.raises(SimulationInputError) as err:
        execute("sell", -1, 100, LINEAR)
    assert err.value.field == "size_base"
    with pytest.raises(SimulationInputError) as err:
        DepthBook(depth_usd_per_pct=1e6, permanent_fraction=1.5)
    assert err.value.field == "permanent_fraction"
    with pytest.raises(SimulationInputError) as err:
        recover_mid(1, 1, 1, 60, 0)
    assert err.value.field == "resilience_half_life_s"


@pytest.mark.parametrize("g", [1.0, 2.0])
def test_a_fill_after_consumed_depth_is_the_rest_of_one_larger_fill(g):
    book = DepthBook(1e6, 0.4, g)
    mid = np.array([50_000.0])
    first, second = 3.0, 5.0  # BTC
    whole_avg, whole_mid = book.fill(np.array([-(first + second)]), mid)
    a_avg, a_mid = book.fill(np.array([-first]), mid)
    b_avg, b_mid = book.fill(np.array([-second]), mid, consumed_usd=first * 50_000.0)
    # the notional-weighted average of the two pieces is the whole's; the permanent moves add up
    assert (first * a_avg + second * b_avg) / (first + second) == pytest.approx(whole_avg, rel=1e-12)
    assert (a_mid - mid) + (b_mid - mid) == pytest.approx(whole_mid - mid, rel=1e-12)
    assert b_avg < a_avg  # the second sale fills deeper in the book


def test_consumed_depth_can_exhaust_the_book():
    book = DepthBook(1e6, 0.3)
    # 1e6 per 1%: 99e6 of notional walks 99%; one more BTC at 50,000 reaches past 100%
    with pytest.raises(BookExhaustedError):
        book.fill(np.array([-40.0]), np.array([50_000.0]), consumed_usd=99e6)

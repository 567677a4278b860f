"""The crash book: depth that thins with volatility and drawdown, is consumed and refills, and a
market maker that withdraws at its inventory limit. Hand-computed numbers."""

import pytest

from margin_engine.simulation.errors import BookExhaustedError
from margin_engine.simulation.impact import DepthBook
from margin_engine.simulation.liquidity import Liquidity, LiquidityParams

BOOK = DepthBook(1e6, 0.3)
SELL, BUY = -1, 1


def test_depth_halves_when_vol_doubles_and_thins_with_the_drawdown():
    liq = Liquidity(BOOK, LiquidityParams(vol_elasticity=1.0, drawdown_elasticity=9.9), 0.5, 100.0, 0)
    assert liq.depth_usd_per_pct(SELL, 100.0, 1.0) == pytest.approx(5e5)
    # 15% below the peak with vol doubled: 1e6 * 0.5 * 0.85^9.9 = 100,050 (the 90% collapse of 2025-10-10)
    assert liq.depth_usd_per_pct(SELL, 85.0, 1.0) == pytest.approx(1e6 * 0.5 * 0.85**9.9)
    assert liq.depth_usd_per_pct(SELL, 85.0, 1.0) == pytest.approx(100_050, rel=1e-4)
    liq.advance(60, 120.0)  # a new peak: the drawdown is measured from it
    assert liq.depth_usd_per_pct(SELL, 102.0, 0.5) == pytest.approx(1e6 * 0.85**9.9)


def test_consumed_depth_refills_with_its_half_life():
    liq = Liquidity(BOOK, LiquidityParams(refill_half_life_s=300.0), 0.5, 50_000.0, 0)
    fresh = liq.quote(-2.0, 50_000.0, 0.5)
    liq.fill(-4.0, 50_000.0, 0.5)  # 200,000 USD of bids taken
    assert liq.consumed_usd[SELL] == 200_000.0 and liq.consumed_usd[BUY] == 0.0
    after = liq.quote(-2.0, 50_000.0, 0.5)
    # the next 100,000 fills from 0.2% to 0.3% of the book: average 0.25% below the mid
    assert after[0] == pytest.approx(50_000.0 * (1 - 0.0025)) and after[0] < fresh[0]
    liq.advance(600, 50_000.0)  # two half-lives
    assert liq.consumed_usd[SELL] == pytest.approx(50_000.0)
    assert liq.quote(2.0, 50_000.0, 0.5) == fresh_buy(50_000.0)  # the asks were never touched


def fresh_buy(mid):
    return Liquidity(BOOK, LiquidityParams(), 0.5, mid, 0).quote(2.0, mid, 0.5)


def test_without_refill_every_fill_finds_the_whole_book():
    liq = Liquidity(BOOK, LiquidityParams(), 0.5, 50_000.0, 0)
    first = liq.fill(-4.0, 50_000.0, 0.5)
    assert liq.fill(-4.0, 50_000.0, 0.5) == first


def test_the_market_maker_withdraws_as_its_inventory_nears_the_limit():
    liq = Liquidity(BOOK, LiquidityParams(inventory_max_usd=1e6), 0.5, 50_000.0, 0)
    liq.fill(-10.0, 50_000.0, 0.5)  # it buys 10 BTC = 500,000 USD: half its limit
    assert liq.inventory_base == 10.0
    assert liq.depth_usd_per_pct(SELL, 50_000.0, 0.5) == pytest.approx(5e5)
    assert liq.depth_usd_per_pct(BUY, 50_000.0, 0.5) == 1e6  # selling back to buyers is no risk to it
    liq.fill(-10.0, 50_000.0, 0.5)
    assert liq.depth_usd_per_pct(SELL, 50_000.0, 0.5) == 0.0
    assert liq.capacity_base(SELL, 50_000.0, 0.5, 0.5) == 0.0
    with pytest.raises(BookExhaustedError):
        liq.quote(-1.0, 50_000.0, 0.5)
    assert liq.capacity_base(BUY, 50_000.0, 0.5, 0.5) == pytest.approx(1e6 * 50 / 50_000.0)


def test_capacity_is_what_walks_the_book_to_the_limit_past_the_consumed_depth():
    liq = Liquidity(BOOK, LiquidityParams(refill_half_life_s=60.0), 0.5, 50_000.0, 0)
    assert liq.capacity_base(SELL, 50_000.0, 0.5, 0.5) == pytest.approx(50e6 / 50_000.0)  # 50% x 1e6 per 1%
    liq.fill(-100.0, 50_000.0, 0.5)
    assert liq.capacity_base(SELL, 50_000.0, 0.5, 0.5) == pytest.approx(45e6 / 50_000.0)

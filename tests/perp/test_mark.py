"""Deribit's mark (index + an EMA of the clamped basis) and delivery price (30-minute TWAP)."""

import math

import pytest

from margin_engine.perp.errors import PerpInputError
from margin_engine.perp.mark import basis_ema, clamped_basis, delivery_price, mark_price


def test_basis_is_clamped_and_averaged_over_30_seconds():
    assert clamped_basis(60_150, 60_000, 0.005) == 150
    assert clamped_basis(58_000, 60_000, 0.005) == -300  # 0.5% of the index
    first = basis_ema(None, 150.0, 0, 30)
    assert first == 150.0
    # 30 s later the basis is 0: e^-1 of the old value is left
    assert basis_ema(first, 0.0, 30, 30) == pytest.approx(150 * math.exp(-1))
    assert mark_price(60_000, 150 * math.exp(-1), 0.005) == pytest.approx(60_000 + 55.18, abs=0.01)
    with pytest.raises(PerpInputError):
        clamped_basis(float("nan"), 60_000, 0.005)


def test_delivery_is_the_twap_of_the_last_30_minutes():
    expiry = 1_800_000_000
    # the index is 60,000 from before the window until 10 minutes in, then 61,000, then 59,500 for the last 5 minutes
    points = [(expiry - 3_600, 60_000.0), (expiry - 1_200, 61_000.0), (expiry - 300, 59_500.0), (expiry, 1.0)]
    expected = (600 * 60_000 + 900 * 61_000 + 300 * 59_500) / 1_800
    assert delivery_price(points, expiry) == pytest.approx(expected)
    with pytest.raises(PerpInputError, match="window's start"):
        delivery_price([(expiry - 60, 60_000.0)], expiry)

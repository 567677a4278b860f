"""Derive's interest rate model at three utilizations, and accruals that conserve every unit."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.errors import InputError
from margin_engine.ledger.interest import RateModel, accrue, interest_factor, utilization

DERIVE = RateModel()  # mainnet: minRate 0.02, rateMultiplier 0.08, highRateMultiplier 0.9, optimalUtil 0.85


def test_borrow_rate_at_three_utilizations():
    assert DERIVE.borrow_rate(utilization(500, 1_000)) == pytest.approx(0.02 + 0.5 * 0.08)  # 6%
    assert DERIVE.borrow_rate(0.85) == pytest.approx(0.02 + 0.85 * 0.08)  # 8.8% at the kink
    assert DERIVE.borrow_rate(0.95) == pytest.approx(0.088 + 0.10 * 0.9)  # 17.8%
    assert utilization(0, 0) == 0.0 and utilization(5, 0) == 1.0 and utilization(30, 10) == 1.0
    assert DERIVE.borrow_rate(1.0) == pytest.approx(0.223)
    with pytest.raises(InputError):
        RateModel(min_rate=1.5)


def test_a_year_at_six_percent_compounds_continuously():
    assert interest_factor(0.06, 365 * 86_400) == pytest.approx(math.exp(0.06) - 1)


def test_accrual_by_hand():
    # one borrower of 4,018 USDC against 8,036 supplied: u = 0.5, 6% a year, for 30 days
    balances = {"b": -4_018_000_000, "l1": 6_000_000_000, "l2": 2_036_000_000}
    a = accrue(balances, DERIVE, 0.2, 30 * 86_400)
    owed = 4_018_000_000 * math.expm1(0.06 * 30 / 365)
    assert a.paid == {"b": math.ceil(owed)}  # 19,833,000-odd units: 19.83 USDC
    assert a.to_fund == math.floor(a.total * 0.2)
    assert a.to_lenders["l1"] == (a.total - a.to_fund) * 6_000_000_000 // 8_036_000_000
    assert a.total == a.to_fund + a.to_fees + sum(a.to_lenders.values())


@given(
    st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(-(10**13), 10**13), max_size=12),
    st.floats(0, 1),
    st.integers(0, 366 * 86_400),
)
def test_accruals_conserve_every_unit(balances, share, elapsed):
    a = accrue(balances, DERIVE, share, elapsed)
    assert a.total == a.to_fund + a.to_fees + sum(a.to_lenders.values())
    assert a.to_fees >= 0 and a.to_fund >= 0 and all(v > 0 for v in a.paid.values())
    assert set(a.paid) <= {k for k, v in balances.items() if v < 0}

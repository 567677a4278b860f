"""Fixed-penalty liquidation (Deribit): prices, and integer transfers that add up to the penalty."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import FixedParams, LiquidationInputError, liquidation_price, penalty_transfers

DERIBIT_BTC = FixedParams()  # 0.75% penalty, half to the insurance fund


def test_liquidation_price_is_worse_for_the_liquidated_side():
    assert liquidation_price(60_000.0, 1.0, DERIBIT_BTC) == pytest.approx(59_550.0)  # 60,000 * (1 - 0.0075)
    assert liquidation_price(60_000.0, -2.0, DERIBIT_BTC) == pytest.approx(60_450.0)  # 60,000 * (1 + 0.0075)
    with pytest.raises(LiquidationInputError):
        liquidation_price(60_000.0, 0.0, DERIBIT_BTC)
    with pytest.raises(LiquidationInputError):
        liquidation_price(0.0, 1.0, DERIBIT_BTC)


def test_penalty_on_ten_btc():
    # 10 BTC at 60,000: notional 600,000 USDC = 600,000,000,000 units; 0.75% = 4,500 USDC, split 50/50
    t = penalty_transfers(600_000_000_000, DERIBIT_BTC)
    assert (t.penalty_units, t.liquidator_units, t.insurance_units) == (4_500_000_000, 2_250_000_000, 2_250_000_000)


def test_odd_units_round_against_the_payer_and_the_dust_goes_to_the_fund():
    # 1,000,001 * 0.0075 = 7,500.0075 -> 7,501 owed; liquidator floor(7,501 / 2) = 3,750; fund 3,751
    t = penalty_transfers(1_000_001, DERIBIT_BTC)
    assert (t.penalty_units, t.liquidator_units, t.insurance_units) == (7_501, 3_750, 3_751)
    # 1,000,000 * 0.0075 is exactly 7,500 (the ratio is read as the decimal 0.0075, no float noise)
    assert penalty_transfers(1_000_000, DERIBIT_BTC).penalty_units == 7_500


def test_penalty_capped_at_what_the_account_has_left():
    t = penalty_transfers(600_000_000_000, DERIBIT_BTC, max_penalty_units=1_001)
    assert (t.penalty_units, t.liquidator_units, t.insurance_units) == (1_001, 500, 501)
    assert penalty_transfers(600_000_000_000, DERIBIT_BTC, max_penalty_units=0).penalty_units == 0
    with pytest.raises(LiquidationInputError):
        penalty_transfers(-1, DERIBIT_BTC)
    with pytest.raises(LiquidationInputError):
        penalty_transfers(1.5, DERIBIT_BTC)  # type: ignore[arg-type]


@given(
    notional=st.integers(min_value=0, max_value=10**18),
    penalty_ratio=st.decimals(min_value="0.0001", max_value="0.5", places=4).map(float),
    insurance_share=st.decimals(min_value="0", max_value="1", places=3).map(float),
)
def test_parts_add_up_and_round_in_the_named_direction(notional, penalty_ratio, insurance_share):
    params = FixedParams(penalty_ratio=penalty_ratio, insurance_share=insurance_share)
    t = penalty_transfers(notional, params)
    assert t.liquidator_units + t.insurance_units == t.penalty_units
    assert t.liquidator_units >= 0 and t.insurance_units >= 0
    # owed rounds up, received rounds down: penalty >= exact, liquidator <= its exact share
    assert t.penalty_units * 10_000 >= notional * round(penalty_ratio * 10_000)
    assert t.liquidator_units * 1_000 <= t.penalty_units * (1_000 - round(insurance_share * 1_000))

"""Lyra v2 Dutch auction against Lyra's own published test and hand-worked numbers.

Lyra's case (v2-core integration test `test_BMAfterLiquidation`): a
short perp account with MM = -21.75 and MtM = 30, buffer 5%, auction starting at 80% of MtM.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import (
    AuctionAccount,
    AuctionEndedError,
    DutchParams,
    LiquidationInputError,
    NotLiquidatableError,
    buffer_margin,
    can_terminate,
    discount_at,
    dutch_bid,
    insolvent_payment,
    max_fraction,
    solvent_bid_price,
    start_phase,
)

LYRA_CASE = DutchParams(start_discount=0.8, buffer_margin_ratio=0.05, insurance_share=0.0, small_account_cutoff_units=0)
USDC = 10**6


def test_lyra_published_buffer_margin_and_max_fraction():
    # BM = -21.75 + (-21.75 - 30) * 0.05 = -24.3375 (Lyra asserts -24.33 within 0.01)
    bm = buffer_margin(-21.75, 30.0, 0.05)
    assert bm == pytest.approx(-24.3375, abs=1e-12)
    # f_max = BM / (BM - MtM * d) = -24.3375 / (-24.3375 - 30 * 0.8) = 24.3375 / 48.3375 = 0.50349...
    # Lyra's 18-decimal fixed point truncates to 0.5034 at 4 places
    assert max_fraction(bm, 30.0, 0.8) == pytest.approx(24.3375 / 48.3375, rel=1e-15)
    assert int(max_fraction(bm, 30.0, 0.8) * 10_000) == 5034


def test_lyra_published_two_bids_reserve_the_first_bidders_cash():
    account = AuctionAccount(mm_units=-21_750_000, mtm_units=30_000_000)  # USDC, 6 decimals
    assert start_phase(account) == "solvent"
    first = dutch_bid(account, 0.1, elapsed_s=0, phase="solvent", params=LYRA_CASE)
    # bid price for the whole account 30 * 0.8 = 24; 10% of it = 2.4 USDC
    assert first.bidder_pays_units == 2_400_000
    assert (first.fraction, first.terminates, first.insurance_fee_units) == (0.1, False, 0)
    # cash required: 2.4 + 10% of |BM| = 2.4 + 2.43375 = 4.83375
    assert first.bidder_cash_required_units == 4_833_750

    # after the bid: 90% of the portfolio is left (MtM 27, requirement 0.9 * 51.75 = 46.575), plus the
    # reserved 2.4 in cash: MtM = 29.4, MM = 29.4 - 46.575 = -17.175
    after = AuctionAccount(mm_units=-17_175_000, mtm_units=29_400_000, reserved_units=2_400_000)
    second = dutch_bid(after, 1.0, elapsed_s=0, phase="solvent", params=LYRA_CASE)
    # BM = -17.175 - 46.575 * 0.05 = -19.50375
    # f = BM / (BM - MtM d - R (1 - d)) = 19.50375 / (19.50375 + 23.52 + 0.48) = 0.44832... (Lyra: 4483)
    assert int(second.fraction * 10_000) == 4483
    assert second.terminates
    # pays f * (29.4 - 2.4) * 0.8 = 0.44832342 * 21.6 = 9.68378588 USDC -> rounded up
    assert second.bidder_pays_units == 9_683_786
    # BM after: MtM (1 - f) 27 + 2.4 + 9.683786, requirement (1 - f) 46.575 -> BM within a unit of 0
    remaining = 1 - second.fraction
    bm_after = remaining * 27e6 + 2.4e6 + second.bidder_pays_units - 1.05 * remaining * 46.575e6
    assert 0 <= bm_after < 1


def test_discount_curve_lyra_mainnet():
    params = DutchParams()
    assert discount_at(0, params) == 0.95
    assert discount_at(450, params) == pytest.approx(0.825)  # 0.95 - 0.25 * 450 / 900
    assert discount_at(900, params) == pytest.approx(0.70)  # end of the fast phase
    assert discount_at(900 + 6 * 3600, params) == pytest.approx(0.35)  # half the slow phase: 0.70 / 2
    assert discount_at(900 + 12 * 3600, params) == 0.0
    assert discount_at(10**9, params) == 0.0
    with pytest.raises(LiquidationInputError):
        discount_at(-1, params)


def test_insolvent_payment_grows_from_mtm_to_mm():
    params = DutchParams()
    # MtM -10, MM -60 (requirement 50): |MtM| + (|MM| - |MtM|) * t / 3600
    assert insolvent_payment(-10.0, -60.0, 0, params) == 10.0
    assert insolvent_payment(-10.0, -60.0, 1800, params) == 35.0  # 10 + 50 * 0.5
    assert insolvent_payment(-10.0, -60.0, 3600, params) == 60.0
    assert insolvent_payment(-10.0, -60.0, 7200, params) == 60.0  # capped at |MM|
    assert insolvent_payment(5.0, -20.0, 0, params) == 0.0  # MtM capped at 0
    assert insolvent_payment(-10.0, 0.0, 0, params) == 0.0  # MM >= 0: not insolvent


def test_solvent_bid_default_params_with_insurance_fee():
    # engine convention: equity 1,000, maintenance requirement 1,200 -> MtM 1,000, MM -200
    account = AuctionAccount.from_engine(equity_units=1_000 * USDC, maintenance_units=1_200 * USDC)
    assert (account.mm_units, account.mtm_units) == (-200 * USDC, 1_000 * USDC)
    params = DutchParams()
    # BM = -200 + (-200 - 1000) * 0.15 = -380; at t = 0, d = 0.95: f_max = 380 / (380 + 950) = 2/7
    fill = dutch_bid(account, 0.2, elapsed_s=0, phase="solvent", params=params)
    assert fill.bidder_pays_units == 190 * USDC  # 0.2 * 1000 * 0.95
    assert fill.insurance_fee_units == 1 * USDC  # 10% of the discount 0.2 * 1000 * 0.05 = 10
    assert fill.bidder_cash_required_units == 267 * USDC  # 190 + 1 + 0.2 * 380
    assert not fill.terminates

    capped = dutch_bid(account, 0.5, elapsed_s=0, phase="solvent", params=params)
    assert capped.fraction == pytest.approx(2 / 7)
    assert capped.terminates
    assert capped.bidder_pays_units == 271_428_572  # 2/7 * 950 = 271.4285714 -> up
    assert capped.insurance_fee_units == 1_428_572  # 0.1 * 2/7 * 50 = 1.4285714 -> up
    # after: equity 1000 * 5/7 + 271.43 = 985.71, requirement 1200 * 5/7 = 857.14, * 1.15 = 985.71: BM ~ 0


def test_small_account_is_taken_whole():
    # MtM 50 USDC < cutoff 100 USDC: f_max = 1 although the buffer would be met earlier
    account = AuctionAccount.from_engine(equity_units=50 * USDC, maintenance_units=60 * USDC)
    fill = dutch_bid(account, 1.0, elapsed_s=0, phase="solvent", params=DutchParams())
    assert fill.fraction == 1.0 and fill.terminates
    assert fill.bidder_pays_units == 47_500_000  # 50 * 0.95


def test_insolvent_bid_paid_by_insurance_fund():
    # equity -10, requirement 50: MtM -10, MM -60
    account = AuctionAccount.from_engine(equity_units=-10 * USDC, maintenance_units=50 * USDC)
    assert start_phase(account) == "insolvent"
    fill = dutch_bid(account, 0.5, elapsed_s=1800, phase="insolvent", params=DutchParams())
    assert fill.insurance_pays_units == 17_500_000  # 0.5 * 35 (payment at half the insolvent phase)
    assert fill.bidder_pays_units == 0 and fill.insurance_fee_units == 0
    assert fill.bidder_cash_required_units == 12_500_000  # 0.5 * |MM| 60 - 17.5
    assert not fill.terminates
    assert dutch_bid(account, 1.0, elapsed_s=1800, phase="insolvent", params=DutchParams()).terminates


def test_auction_ends_and_rejections():
    params = DutchParams()
    account = AuctionAccount.from_engine(equity_units=1_000 * USDC, maintenance_units=1_200 * USDC)
    with pytest.raises(AuctionEndedError):  # past the slow phase: restart as insolvent
        dutch_bid(account, 0.1, elapsed_s=900 + 12 * 3600, phase="solvent", params=params)
    healthy = AuctionAccount.from_engine(equity_units=1_000 * USDC, maintenance_units=800 * USDC)
    with pytest.raises(NotLiquidatableError):
        start_phase(healthy)
    assert can_terminate(healthy, "solvent", 0, params)
    with pytest.raises(AuctionEndedError):
        dutch_bid(healthy, 0.1, elapsed_s=0, phase="solvent", params=params)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(LiquidationInputError):
            dutch_bid(account, bad, elapsed_s=0, phase="solvent", params=params)
    with pytest.raises(LiquidationInputError):
        AuctionAccount.from_engine(equity_units=1, maintenance_units=-1)
    with pytest.raises(LiquidationInputError):
        AuctionAccount(mm_units=10, mtm_units=5)
    with pytest.raises(LiquidationInputError):
        AuctionAccount(mm_units=-1.5, mtm_units=5)  # type: ignore[arg-type]


def test_dutch_params_validation():
    with pytest.raises(ValueError, match="fast_end_discount"):
        DutchParams(start_discount=0.7, fast_end_discount=0.8)


@given(
    requirement=st.floats(min_value=1.0, max_value=1e7),
    equity_share=st.floats(min_value=0.01, max_value=0.99),
    buffer=st.floats(min_value=0.0, max_value=1.0),
    elapsed_s=st.integers(min_value=0, max_value=900 + 12 * 3600 - 1),
)
def test_taking_the_max_fraction_restores_the_buffer_margin(requirement, equity_share, buffer, elapsed_s):
    params = DutchParams(buffer_margin_ratio=buffer)
    mtm = requirement * equity_share
    mm = mtm - requirement
    d = discount_at(elapsed_s, params)
    bm = buffer_margin(mm, mtm, buffer)
    f = max_fraction(bm, mtm, d)
    assert 0 < f <= 1
    # after taking f: equity (1 - f) MtM + f d MtM, requirement (1 - f) * requirement
    bm_after = (1 - f) * mtm + f * solvent_bid_price(mtm, d) - (1 + buffer) * (1 - f) * requirement
    assert bm_after == pytest.approx(0.0, abs=1e-9 * requirement)


@given(st.integers(min_value=0, max_value=50_000), st.integers(min_value=0, max_value=50_000))
def test_discount_never_rises(t1, t2):
    params = DutchParams()
    early, late = sorted((t1, t2))
    assert discount_at(late, params) <= discount_at(early, params)

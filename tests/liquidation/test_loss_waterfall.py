"""The loss waterfall in integer units: insurance fund, then ADL or a socialized loss, exactly."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import (
    AdlBook,
    AdlCandidate,
    AdlFill,
    LiquidationInputError,
    WaterfallInputError,
    WaterfallParams,
    adl_ranking,
    cover_deficit,
    largest_remainder,
    run_waterfall,
)

USDC = 10**6
LOT = 10**4  # BTC size steps of 0.0001
SOCIALIZED = WaterfallParams(mode="socialized")
ADL = WaterfallParams(mode="adl")

# shorts facing a bankrupt long of 3 BTC, marked at 55,000
SHORTS = (
    # uPnL 5,000 / entry 60,000 = 1/12; leverage 55,000 / 11,000 = 5 -> score 5/12 = 0.417
    AdlCandidate("a", 1 * LOT, 5_000 * USDC, 60_000 * USDC, 55_000 * USDC, 11_000 * USDC),
    # 4,000 / 114,000 * (110,000 / 22,000 = 5) = 0.175
    AdlCandidate("b", 2 * LOT, 4_000 * USDC, 114_000 * USDC, 110_000 * USDC, 22_000 * USDC),
    # 4,000 / 224,000 * (220,000 / 110,000 = 2) = 0.036
    AdlCandidate("c", 4 * LOT, 4_000 * USDC, 224_000 * USDC, 220_000 * USDC, 110_000 * USDC),
)


def test_insurance_fund_covers_an_insolvent_account():
    # the long perp of the partial-liquidation steps ends 675 USDC below zero; the fund holds 10,000
    result = run_waterfall(675 * USDC, 10_000 * USDC, SOCIALIZED)
    assert result.insurance_units == 675 * USDC
    assert (result.adl, result.socialized, result.uncovered_units, result.covered) == ((), (), 0, True)


def test_cap_per_event_limits_the_fund():
    params = WaterfallParams(insurance_cap_per_event_units=500 * USDC, mode="socialized")
    result = run_waterfall(675 * USDC, 10_000 * USDC, params, balances={"x": 1_000 * USDC})
    assert result.insurance_units == 500 * USDC  # min(675, 10,000, cap 500)
    assert result.socialized[0].units == 175 * USDC


def test_small_fund_then_adl_at_the_bankruptcy_price():
    # deficit 675, fund 200: 475 left for ADL against the 3 BTC long
    assert [c.account for c in adl_ranking(SHORTS)] == ["a", "b", "c"]
    result = run_waterfall(675 * USDC, 200 * USDC, ADL, adl_book=AdlBook(3 * LOT, SHORTS))
    assert result.insurance_units == 200 * USDC
    # a closes 1 BTC, b 2 BTC, c untouched; 475 / 3 BTC = 158.333333 per BTC:
    # a 158,333,333.33 -> 158,333,333 (remainder 1/3); b 316,666,666.67 -> floor + the last unit (2/3)
    assert [(f.account, f.closed_lots, f.loss_units) for f in result.adl] == [
        ("a", 1 * LOT, 158_333_333),
        ("b", 2 * LOT, 316_666_667),
    ]
    assert result.covered


def test_small_fund_then_socialized_loss():
    balances = {"x": 1_000 * USDC, "y": 2_000 * USDC, "z": 3_000 * USDC}
    result = run_waterfall(675 * USDC, 200 * USDC, SOCIALIZED, balances=balances)
    # 475 over 6,000: x 79,166,666.67, y 158,333,333.33, z 237,500,000 exactly;
    # floors add up to 474,999,999; the unit left goes to the largest remainder, x (2/3)
    assert [(c.account, c.units) for c in result.socialized] == [
        ("x", 79_166_667),
        ("y", 158_333_333),
        ("z", 237_500_000),
    ]
    assert result.covered


def test_balances_too_small_are_reported_not_looped_on():
    result = run_waterfall(675 * USDC, 0, SOCIALIZED, balances={"x": 100 * USDC, "y": 0})
    assert [(c.account, c.units) for c in result.socialized] == [("x", 100 * USDC)]
    assert result.uncovered_units == 575 * USDC and not result.covered
    # ADL: the opposite side holds 1 BTC of the 3: one third of 475 can be charged, the rest is uncovered
    thin = run_waterfall(675 * USDC, 200 * USDC, ADL, adl_book=AdlBook(3 * LOT, SHORTS[:1]))
    assert [(f.closed_lots, f.loss_units) for f in thin.adl] == [(1 * LOT, 158_333_334)]  # 158.33 owed -> up
    assert thin.uncovered_units == 316_666_666
    # an account is never charged beyond its equity
    poor = AdlCandidate("p", 3 * LOT, 10 * USDC, 100 * USDC, 110 * USDC, 50 * USDC)
    capped = run_waterfall(475 * USDC, 0, ADL, adl_book=AdlBook(3 * LOT, (poor,)))
    assert capped.adl[0].loss_units == 50 * USDC and capped.uncovered_units == 425 * USDC


def test_missing_mode_inputs_and_bad_numbers():
    with pytest.raises(WaterfallInputError):
        run_waterfall(675, 0, ADL)
    with pytest.raises(WaterfallInputError):
        run_waterfall(675, 0, SOCIALIZED)
    assert run_waterfall(675, 1_000, ADL).covered  # the fund suffices: no ADL book needed
    with pytest.raises(LiquidationInputError):
        run_waterfall(-1, 0, SOCIALIZED)
    with pytest.raises(LiquidationInputError):
        run_waterfall(10, 0, SOCIALIZED, balances={"x": -5})
    with pytest.raises(LiquidationInputError):
        AdlBook(3, (SHORTS[0], SHORTS[0]))


def test_accounts_with_no_equity_are_not_deleveraged():
    broke = AdlCandidate("broke", LOT, 1 * USDC, 100 * USDC, 101 * USDC, 0)
    assert [c.account for c in adl_ranking((broke, *SHORTS))] == ["a", "b", "c"]


@given(st.integers(0, 10**12), st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 10**9)))
def test_largest_remainder_is_exact(total, weights):
    if sum(weights.values()) == 0:
        return
    parts = largest_remainder(total, weights)
    assert sum(parts.values()) == total
    weight_total = sum(weights.values())
    for key, w in weights.items():
        assert abs(parts[key] * weight_total - total * w) < weight_total  # within one unit of the exact share


@given(
    deficit=st.integers(0, 10**13),
    fund=st.integers(0, 10**13),
    cap=st.integers(0, 10**13),
    balances=st.dictionaries(st.text("xyz", min_size=1, max_size=3), st.integers(0, 10**12), max_size=8),
)
def test_socialized_parts_sum_to_the_deficit(deficit, fund, cap, balances):
    params = WaterfallParams(insurance_cap_per_event_units=cap, mode="socialized")
    result = run_waterfall(deficit, fund, params, balances=balances)
    assert result.insurance_units + sum(c.units for c in result.socialized) + result.uncovered_units == deficit
    assert result.insurance_units <= min(fund, cap)
    assert all(0 < c.units <= balances[c.account] for c in result.socialized)
    assert result.uncovered_units == max(deficit - result.insurance_units - sum(balances.values()), 0)


candidates = st.lists(
    st.builds(
        AdlCandidate,
        account=st.text("abc", min_size=1, max_size=3),
        lots=st.integers(1, 10**6),
        unrealized_pnl_units=st.integers(-(10**9), 10**9),
        entry_notional_units=st.integers(1, 10**10),
        notional_units=st.integers(1, 10**10),
        equity_units=st.integers(-(10**9), 10**10),
    ),
    max_size=8,
    unique_by=lambda c: c.account,
)


@given(deficit=st.integers(0, 10**12), fund=st.integers(0, 10**12), bankrupt=st.integers(1, 10**6), book=candidates)
def test_adl_parts_sum_to_the_deficit(deficit, fund, bankrupt, book):
    result = run_waterfall(deficit, fund, ADL, adl_book=AdlBook(bankrupt, tuple(book)))
    assert result.insurance_units + sum(f.loss_units for f in result.adl) + result.uncovered_units == deficit
    equity = {c.account: c.equity_units for c in book}
    lots = {c.account: c.lots for c in book}
    assert all(0 <= f.loss_units <= equity[f.account] for f in result.adl)
    assert all(0 < f.closed_lots <= lots[f.account] for f in result.adl)
    assert sum(f.closed_lots for f in result.adl) <= bankrupt
    assert result.uncovered_units >= 0


def test_cover_after_adl_is_the_engines_last_step():
    # the engine trades ADL first (here 400 of a 675 deficit, the fund holding 200), then the
    # waterfall covers what is still owed: the fund's 200, the uncovered 75 reported as such
    adl = (AdlFill("a", 1 * LOT, 400 * USDC),)
    result = cover_deficit(275 * USDC, 200 * USDC, ADL, adl)
    assert (result.deficit_units, result.insurance_units, result.uncovered_units) == (675 * USDC, 200 * USDC, 75 * USDC)
    # socialized: the 75 the fund lacks falls on depositors pro rata (largest remainder, exact)
    shared = cover_deficit(275 * USDC, 200 * USDC, SOCIALIZED, balances={"x": 1, "y": 2})
    assert [(c.account, c.units) for c in shared.socialized] == [("x", 1), ("y", 2)]
    assert shared.uncovered_units == 75 * USDC - 3
    with pytest.raises(WaterfallInputError):
        cover_deficit(275 * USDC, 200 * USDC, SOCIALIZED)


@given(
    owed=st.integers(0, 10**15),
    fund=st.integers(0, 10**15),
    adl=st.lists(st.integers(0, 10**12), max_size=3),
    balances=st.dictionaries(st.sampled_from("abcd"), st.integers(1, 10**13)),
    mode=st.sampled_from([ADL, SOCIALIZED]),
)
def test_cover_parts_add_up_and_never_take_more_than_held(owed, fund, adl, balances, mode):
    fills = tuple(AdlFill(f"k{i}", 1, loss) for i, loss in enumerate(adl))
    r = cover_deficit(owed, fund, mode, fills, balances)
    socialized = {c.account: c.units for c in r.socialized}
    assert r.insurance_units + sum(adl) + sum(socialized.values()) + r.uncovered_units == r.deficit_units
    assert r.deficit_units == owed + sum(adl) and 0 <= r.insurance_units <= fund
    assert all(0 < units <= balances[a] for a, units in socialized.items())

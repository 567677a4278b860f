"""Sealed-bid batch clearing: one uniform price, pro rata at the margin, blind to arrival order.

Prices are settlement units for the whole lot; allocations are exact Fractions of the lot.
"""

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.liquidation import (
    BatchParams,
    Bid,
    DuplicateBidderError,
    LiquidationInputError,
    TooManyBidsError,
    clear_batch,
    lot_reserve_price_units,
    window_closes_at_s,
)

PARAMS = BatchParams()


def _by_bidder(clearing):
    return {a.bidder: (a.fraction, a.pays_units) for a in clearing.allocations}


def test_uniform_price_is_the_lowest_accepted_bid():
    bids = [
        Bid("a", Fraction(1, 2), 900),
        Bid("b", Fraction(1, 2), 850),
        Bid("c", Fraction(1, 2), 800),  # not needed: a and b cover the lot
        Bid("d", Fraction(1, 4), 600),  # below the reserve 700
    ]
    result = clear_batch(bids, 1, reserve_price_units=700, params=PARAMS)
    assert result.clearing_price_units == 850
    # both pay half the lot at 850: 425 each, although a bid 900
    assert _by_bidder(result) == {"a": (Fraction(1, 2), 425), "b": (Fraction(1, 2), 425)}
    assert result.sold_fraction == 1 and result.unsold_fraction == 0


def test_marginal_level_is_shared_pro_rata():
    bids = [Bid("c", Fraction(1, 4), 800), Bid("a", Fraction(1, 2), 900), Bid("b", Fraction(1, 2), 800)]
    result = clear_batch(bids, 1, reserve_price_units=700, params=PARAMS)
    # a fills 1/2; 1/2 is left for the 800 level, which wants 3/4: each gets 2/3 of its bid
    # b: 1/2 * 2/3 = 1/3, c: 1/4 * 2/3 = 1/6; everyone pays 800 per lot
    assert result.clearing_price_units == 800
    assert _by_bidder(result) == {
        "a": (Fraction(1, 2), 400),  # 1/2 * 800
        "b": (Fraction(1, 3), 267),  # 800 / 3 = 266.67 -> owed, rounded up
        "c": (Fraction(1, 6), 134),  # 800 / 6 = 133.33 -> up
    }


def test_reserve_not_met_sells_nothing():
    result = clear_batch([Bid("a", 1, 699), Bid("b", Fraction(1, 2), 500)], 1, reserve_price_units=700, params=PARAMS)
    assert result.clearing_price_units is None
    assert result.allocations == ()
    assert result.unsold_fraction == 1


def test_thin_demand_sells_part_of_the_lot():
    result = clear_batch([Bid("a", Fraction(1, 4), 900)], Fraction(1, 2), reserve_price_units=700, params=PARAMS)
    assert (result.clearing_price_units, result.sold_fraction, result.unsold_fraction) == (
        900,
        Fraction(1, 4),
        Fraction(1, 4),
    )


def test_insolvent_lot_pays_bidders_and_rounds_their_receipts_down():
    # MtM -1,000: reserve -1,000 - 0.3 * 1,000 = -1,300 (the fund pays at most 1,300 for the lot)
    assert lot_reserve_price_units(-1_000, PARAMS) == -1_300
    result = clear_batch(
        [Bid("a", Fraction(1, 2), -1_201), Bid("b", Fraction(1, 2), -1_250), Bid("c", 1, -1_400)],
        1,
        reserve_price_units=-1_300,
        params=PARAMS,
    )
    # c asks too much; a and b clear at b's -1,250: each receives 625
    assert result.clearing_price_units == -1_250
    assert _by_bidder(result) == {"a": (Fraction(1, 2), -625), "b": (Fraction(1, 2), -625)}
    one = clear_batch([Bid("a", Fraction(1, 2), -1_201)], 1, reserve_price_units=-1_300, params=PARAMS)
    assert one.allocations[0].pays_units == -600  # receives 600.5 -> rounded down to 600


def test_reserve_price_rounds_up():
    assert lot_reserve_price_units(1_000, PARAMS) == 700  # 1,000 - 300
    assert lot_reserve_price_units(1_001, PARAMS) == 701  # 1,001 - 300.3 = 700.7 -> up
    assert lot_reserve_price_units(-1_001, PARAMS) == -1_301  # -1,001 - 300.3 = -1,301.3 -> up
    assert window_closes_at_s(1_000, PARAMS) == 1_010


def test_rejections():
    with pytest.raises(DuplicateBidderError):
        clear_batch([Bid("a", Fraction(1, 2), 900), Bid("a", Fraction(1, 2), 950)], 1, 0, PARAMS)
    with pytest.raises(TooManyBidsError):
        clear_batch([Bid(f"x{i}", Fraction(1, 10), 1) for i in range(3)], 1, 0, BatchParams(max_bids=2))
    with pytest.raises(LiquidationInputError):
        Bid("a", 0.1, 900)  # type: ignore[arg-type]  # floats are not exact
    with pytest.raises(LiquidationInputError):
        Bid("a", Fraction(3, 2), 900)
    with pytest.raises(LiquidationInputError):
        Bid("", Fraction(1, 2), 900)
    with pytest.raises(LiquidationInputError):
        clear_batch([], 0, 0, PARAMS)
    assert Bid("a", "0.25", 900).fraction == Fraction(1, 4)


bid_lists = st.lists(
    st.tuples(
        st.fractions(min_value=Fraction(1, 100), max_value=1, max_denominator=100),
        st.integers(min_value=-50, max_value=50),
    ),
    max_size=12,
).map(lambda rows: [Bid(f"bidder{i}", f, p) for i, (f, p) in enumerate(rows)])


@given(bids=bid_lists, order=st.randoms(use_true_random=False), reserve=st.integers(-60, 60))
def test_arrival_order_never_changes_the_result(bids, order, reserve):
    shuffled = list(bids)
    order.shuffle(shuffled)
    assert clear_batch(shuffled, 1, reserve, PARAMS) == clear_batch(bids, 1, reserve, PARAMS)


@given(bids=bid_lists, offered=st.fractions(min_value=Fraction(1, 10), max_value=1), reserve=st.integers(-60, 60))
def test_one_price_and_pro_rata_at_the_margin(bids, offered, reserve):
    result = clear_batch(bids, offered, reserve, PARAMS)
    fills = {a.bidder: a for a in result.allocations}
    assert sum(a.fraction for a in result.allocations) == result.sold_fraction <= offered
    if result.clearing_price_units is None:
        assert all(b.max_price_units < reserve for b in bids)
        return
    price = result.clearing_price_units
    assert price >= reserve
    marginal_ratios = set()
    for bid in bids:
        got = fills.get(bid.bidder)
        if bid.max_price_units < price:
            assert got is None  # priced out
        elif bid.max_price_units > price:
            assert got.fraction == bid.fraction  # above the margin: filled in full
        else:
            marginal_ratios.add(got.fraction / bid.fraction)
        if got is not None:  # everyone pays the one price
            assert got.pays_units == -((-got.fraction * price) // 1)
    assert len(marginal_ratios) == 1  # the marginal level is shared pro rata
    if result.sold_fraction < offered:  # demand ran out: every acceptable bid was filled in full
        assert all(fills[b.bidder].fraction == b.fraction for b in bids if b.max_price_units >= reserve)

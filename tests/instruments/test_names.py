from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.errors import InputError
from margin_engine.instruments.names import Option, Perpetual, parse_instrument


def test_perp():
    assert parse_instrument("BTC-PERP") == Perpetual("BTC")
    assert parse_instrument("ETH-PERP").name == "ETH-PERP"


def test_option_expires_at_0800_utc():
    opt = parse_instrument("BTC-25DEC26-60000-C")
    assert opt == Option("BTC", datetime(2026, 12, 25, 8, tzinfo=UTC), Decimal(60000), True)
    assert opt.expiry_s == 1798185600  # 2026-12-25T08:00:00Z
    assert opt.name == "BTC-25DEC26-60000-C"


def test_single_digit_day_and_fractional_strike():
    assert parse_instrument("ETH-5JAN27-3500-P").name == "ETH-5JAN27-3500-P"
    assert parse_instrument("BTC-05JAN27-3500-P").name == "BTC-5JAN27-3500-P"  # Deribit drops the zero
    assert parse_instrument("XRP-27DEC26-0d625-C").strike == Decimal("0.625")


@pytest.mark.parametrize(
    "bad",
    [
        "btc-perp",
        "BTC",
        "BTC-25DEC26-60000",
        "BTC-25DEC26-60000-X",
        "BTC-25DXC26-1-C",
        "BTC-25DEC2026-60000-C",
        "BTC-PERPETUAL",
        "",
        "BTC-25DEC26--1-C",
        "BTC-25DEC2026",
        "BTC-25DXC26",
    ],
)
def test_malformed_names_show_expected_form(bad):
    expected = "expected UNDERLYING-PERP, UNDERLYING-DMMMYY or UNDERLYING-DMMMYY-STRIKE-C\\|P"
    with pytest.raises(InputError, match=expected):
        parse_instrument(bad)


@pytest.mark.parametrize("bad", ["BTC-31FEB26-60000-C", "BTC-25DEC26-0-C"])
def test_impossible_date_or_zero_strike(bad):
    with pytest.raises(InputError):
        parse_instrument(bad)


@given(
    st.dates(min_value=datetime(2001, 1, 1).date(), max_value=datetime(2099, 12, 31).date()),
    st.integers(min_value=1, max_value=10**7),
    st.booleans(),
    st.sampled_from(["BTC", "ETH", "SOL"]),
)
def test_format_parse_round_trip(day, strike, is_call, underlying):
    opt = Option(underlying, datetime(day.year, day.month, day.day, 8, tzinfo=UTC), Decimal(strike), is_call)
    assert parse_instrument(opt.name) == opt

import math

import numpy as np
import pytest

from margin_engine.errors import InputError
from margin_engine.instruments.names import parse_expiry
from margin_engine.market.snapshot import parse_market

NOW = int(parse_expiry("25NOV26").timestamp())
E1 = int(parse_expiry("25DEC26").timestamp())  # 30 days
E2 = int(parse_expiry("24JAN27").timestamp())  # 60 days


def test_flat_vol():
    snap = parse_market("BTC", {"index": "60000", "vol": "0.6"}, "market.BTC")
    assert snap.rate == 0.0
    assert snap.vol.vols(np.array([E1, E2]), np.array([50000.0, 70000.0]), NOW).tolist() == [0.6, 0.6]


def test_per_expiry_is_linear_in_total_variance():
    snap = parse_market("BTC", {"index": 60000, "vol": {"25DEC26": 0.5, "24JAN27": 0.7}}, "m")
    mid = NOW + 45 * 86400
    # w(30d) = 0.25 * 30, w(60d) = 0.49 * 60; at 45 days w = (7.5 + 29.4) / 2 = 18.45 -> vol sqrt(18.45 / 45)
    got = snap.vol.vols(np.array([E1, mid, E2, E2 + 86400 * 30]), np.array([60000.0] * 4), NOW)
    assert got[0] == pytest.approx(0.5) and got[2] == pytest.approx(0.7)
    assert got[1] == pytest.approx(math.sqrt(18.45 / 45), rel=1e-12)
    assert got[3] == pytest.approx(0.7)  # flat beyond the last expiry


def test_smile_linear_in_strike_flat_beyond():
    snap = parse_market("BTC", {"index": 60000, "vol": {"25DEC26": {"50000": 0.7, "60000": 0.6, "70000": 0.65}}}, "m")
    got = snap.vol.vols(np.array([E1] * 4), np.array([40000.0, 55000.0, 65000.0, 90000.0]), NOW)
    assert got.tolist() == pytest.approx([0.7, 0.65, 0.625, 0.65])


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"vol": 0.6}, "m.index"),
        ({"index": -1, "vol": 0.6}, "m.index"),
        ({"index": "nan", "vol": 0.6}, "m.index"),
        ({"index": 1, "vol": 60}, "m.vol"),  # percent instead of a fraction
        ({"index": 1, "vol": {"25XYZ26": 0.6}}, "m.vol.25XYZ26"),
        ({"index": 1, "vol": 0.6, "rate": 5}, "m.rate"),
        ({"index": 1, "vol": 0.6, "spot": 2}, "m"),
    ],
)
def test_bad_market_names_the_field(value, field):
    with pytest.raises(InputError) as info:
        parse_market("BTC", value, "m")
    assert info.value.field == field

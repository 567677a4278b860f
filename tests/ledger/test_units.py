from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margin_engine.errors import InputError, InvariantViolation
from margin_engine.ledger.units import ceil_units, floor_units, format_units, parse_decimal, to_units


def test_to_units_exact_and_rejects_finer_than_decimals():
    assert to_units(Decimal("1.5"), 6) == 1_500_000
    assert to_units(Decimal("0.00000001"), 8) == 1
    with pytest.raises(InputError, match="more than 6 decimal places"):
        to_units(Decimal("0.0000001"), 6)


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "abc", None, True, [1]])
def test_parse_decimal_rejects_non_finite_and_non_numbers(bad):
    with pytest.raises(InputError):
        parse_decimal(bad, "amount")


def test_parse_decimal_signs():
    with pytest.raises(InputError, match="must be > 0"):
        parse_decimal("0", "size", positive=True)
    with pytest.raises(InputError, match="must be >= 0"):
        parse_decimal("-1", "price", non_negative=True)


def test_rounding_directions_and_float_noise():
    assert ceil_units(1303.2500000000002, 6) == 1_303_250_000  # noise is not a unit
    assert ceil_units(6000.0000000000055, 6) == 6_000_000_000
    assert ceil_units(0.0000001, 6) == 1  # a real fraction of a unit is owed in full
    assert floor_units(0.0000019, 6) == 1
    assert floor_units(-0.0000001, 6) == -1  # equity below zero rounds further down
    with pytest.raises(InvariantViolation):
        ceil_units(float("nan"), 6)


def test_format_units():
    assert format_units(-1_500_000, 6) == "-1.500000"
    assert format_units(1, 18) == "0.000000000000000001"


@given(st.integers(min_value=-(10**15), max_value=10**15), st.integers(min_value=0, max_value=18))
def test_units_round_trip(units, decimals):
    assert to_units(Decimal(format_units(units, decimals)), decimals) == units


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_ceil_never_below_floor(x):
    assert floor_units(x, 6) <= ceil_units(x, 6) <= floor_units(x, 6) + 1


# Floats near whole units (noise of 1e-16 relative) are where snapping decides; draw many of them.
_near_units = st.builds(
    lambda units, noise, decimals: (units * (1 + noise) / 10.0**decimals, decimals),
    st.integers(-(10**15), 10**15),
    st.sampled_from([0.0, 1e-16, -1e-16, 3e-15, -3e-15, 1e-13, -1e-12, 1e-9]),
    st.sampled_from([2, 6, 8]),
)
# Values whose 13th significant digit is a half plus a little: where the snap's direction flips.
_near_halves = st.builds(
    lambda digits, shift, offset, decimals: ((digits + 0.5 + offset) * 10.0**shift / 10.0**decimals, decimals),
    st.integers(10**12, 10**13 - 1) | st.integers(-(10**13) + 1, -(10**12)),
    st.integers(-20, 5),
    st.sampled_from([0.0, 1e-3, -1e-3, 0.015, -0.015, 0.03, -0.03, 0.2]),
    st.sampled_from([2, 6, 8]),
)
_any_amount = st.tuples(
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 0.05 * 120000]),
    st.sampled_from([2, 6, 8]),
)


@given(st.lists(_near_units | _near_halves | _any_amount, min_size=1, max_size=40))
def test_array_rounding_is_the_scalar_rule_bit_for_bit(cases):
    import numpy as np

    from margin_engine.ledger.units import ceil_units_array, floor_units_array

    for decimals in (2, 6, 8):
        values = np.array([v for v, d in cases if d == decimals])
        if values.size == 0:
            continue
        assert ceil_units_array(values, decimals).tolist() == [ceil_units(float(v), decimals) for v in values]
        assert floor_units_array(values, decimals).tolist() == [floor_units(float(v), decimals) for v in values]


def test_array_rounding_snaps_noise_and_rejects_non_finite():
    import numpy as np

    from margin_engine.ledger.units import ceil_units_array, floor_units_array

    assert ceil_units_array(np.array([0.05 * 120000, 0.1234564]), 6).tolist() == [6_000_000_000, 123_457]
    assert floor_units_array(np.array([-0.0000015, 1e-7]), 6).tolist() == [-2, 0]
    with pytest.raises(InvariantViolation, match="non-finite"):
        ceil_units_array(np.array([1.0, np.nan]), 6)


def test_array_rounding_beyond_int64_gives_exact_python_ints():
    import numpy as np

    from margin_engine.ledger.units import floor_units_array

    wei = floor_units_array(np.array([12.5, 1e-18]), 18)  # 12.5 ETH is 1.25e19 wei, past int64
    assert wei.tolist() == [12_500_000_000_000_000_000, 1]


@pytest.mark.parametrize("decimals", [2, 6, 8])
def test_array_rounding_matches_the_scalar_rule_on_many_values(decimals):
    import numpy as np

    from margin_engine.ledger.units import ceil_units_array, floor_units_array

    rng = np.random.default_rng(decimals)
    spread = 10.0 ** rng.uniform(-10, 10, 6_000) * rng.choice([-1, 1], 6_000)
    whole = rng.integers(-(10**14), 10**14, 3_000) / 10.0**decimals * (1 + rng.normal(0, 1e-15, 3_000))
    digits = rng.integers(10**12, 10**13, 2_000) * rng.choice([-1, 1], 2_000)
    halves = (digits + 0.5) * 10.0 ** rng.integers(-12, 3, 2_000) / 10.0**decimals  # 13th digit a half
    values = np.concatenate([spread, whole, halves, np.nextafter(halves, np.inf), np.nextafter(halves, -np.inf)])
    assert ceil_units_array(values, decimals).tolist() == [ceil_units(float(v), decimals) for v in values]
    assert floor_units_array(values, decimals).tolist() == [floor_units(float(v), decimals) for v in values]

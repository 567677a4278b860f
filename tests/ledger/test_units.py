import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
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


def test_large_amounts_keep_their_fractions():
    """Issue 12: the former 13-digit snap rounded these against their direction by whole units."""
    assert ceil_units(12_345_678.9012344, 6) == 12_345_678_901_235  # a requirement: up, not 4.4 units down
    assert floor_units(1_234_567.8901236, 6) == 1_234_567_890_123  # equity: down, not up
    near_a_trillion = 999_999_999_999.9  # the float's own value is 999,999,999,999.900024...
    assert ceil_units(near_a_trillion, 6) == math.ceil(Fraction(near_a_trillion) * 10**6) == 999_999_999_999_900_025


@settings(max_examples=2_000)
@given(
    st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from([2, 6, 8, 18]),
)
def test_rounding_direction_holds_from_a_micro_dollar_to_a_trillion(magnitude, negative, decimals):
    """Requirements never below the exact value, equity never above it, by more than the snap (at most
    1/1024 of a unit, and only for a value that close to a whole unit); never a unit or more the
    other way; and exactly the true ceiling or floor whenever the value is not that close to a unit."""
    from fractions import Fraction

    from margin_engine.ledger.units import SNAP_UNITS_MAX

    value = -magnitude if negative else magnitude
    x = Fraction(value) * 10**decimals
    up, down = ceil_units(value, decimals), floor_units(value, decimals)
    assert x - SNAP_UNITS_MAX <= up < x + 1
    assert x - 1 < down <= x + SNAP_UNITS_MAX
    if abs(x - round(x)) > SNAP_UNITS_MAX:
        assert (up, down) == (math.ceil(x), math.floor(x))


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
# Values a whole number of units plus about the snap's bound (relative 2^-46, or 1/1024 of a unit):
# where the array's float arithmetic and the scalar's exact one could part.
_near_bounds = st.builds(
    lambda units, relative, scale, decimals: (
        (units + scale * min(abs(units) * 2.0**-46, 2.0**-10)) / 10.0**decimals,
        decimals,
    ),
    st.integers(-(10**17), 10**17),
    st.booleans(),
    st.sampled_from([1.0, -1.0, 1 + 1e-12, -(1 + 1e-12), 1 - 1e-12, -(1 - 1e-12), 0.5, 2.0]),
    st.sampled_from([2, 6, 8]),
)
_any_amount = st.tuples(
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 0.05 * 120000]),
    st.sampled_from([2, 6, 8]),
)


@given(st.lists(_near_units | _near_bounds | _any_amount, min_size=1, max_size=40))
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
    units = rng.integers(-(10**16), 10**16, 2_000).astype(float)
    bounds = (units + np.minimum(np.abs(units) * 2.0**-46, 2.0**-10)) / 10.0**decimals  # at the snap's edge
    halves = (units + 0.5) / 10.0**decimals
    values = np.concatenate(
        [spread, whole, bounds, np.nextafter(bounds, np.inf), np.nextafter(bounds, -np.inf), halves]
    )
    assert ceil_units_array(values, decimals).tolist() == [ceil_units(float(v), decimals) for v in values]
    assert floor_units_array(values, decimals).tolist() == [floor_units(float(v), decimals) for v in values]


def test_share_units_is_exact_where_a_float_was_not():
    from margin_engine.ledger.units import share_units

    # a 17-digit fraction of a 21-digit amount (ETH in wei) needs 38 digits: past a float's 16 and
    # Decimal's default 28
    fraction = Decimal("0.12345678901234567")
    units = 98_765_432_109_876_543_21
    assert share_units(units, fraction) == (units * 12345678901234567) // 10**17
    assert share_units(units, fraction) != int(float(fraction) * units)
    assert share_units(-7, Decimal("0.5")) == -4  # floor, also below zero

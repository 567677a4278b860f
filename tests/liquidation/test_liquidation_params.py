"""Liquidation parameters: venue defaults, validation at the boundary, errors that name the field."""

import pytest
from pydantic import ValidationError

from margin_engine.liquidation import LiquidationInputError, LiquidationParams, parse_liquidation_params


def test_defaults_follow_the_venues():
    p = LiquidationParams()
    assert p.mechanism == "dutch"
    assert (p.fixed.penalty_ratio, p.fixed.insurance_share) == (0.0075, 0.5)  # Deribit BTC
    d = p.dutch  # Lyra v2 mainnet
    assert (d.start_discount, d.fast_end_discount) == (0.95, 0.70)
    assert (d.fast_duration_s, d.slow_duration_s, d.insolvent_duration_s) == (900, 43_200, 3_600)
    assert (d.buffer_margin_ratio, d.insurance_share) == (0.15, 0.10)
    assert p.waterfall.mode == "socialized"


def test_parse_names_the_field_and_forbids_unknown_keys():
    p = parse_liquidation_params({"mechanism": "batch", "batch": {"window_s": 5}, "waterfall": {"mode": "adl"}})
    assert (p.mechanism, p.batch.window_s, p.waterfall.mode) == ("batch", 5, "adl")
    with pytest.raises(LiquidationInputError) as err:
        parse_liquidation_params({"fixed": {"penalty_ratio": -0.1}})
    assert err.value.field == "liquidation.fixed.penalty_ratio"
    with pytest.raises(LiquidationInputError) as err:
        parse_liquidation_params({"dutch": {"bogus": 1}})
    assert err.value.field == "liquidation.dutch.bogus"
    with pytest.raises(LiquidationInputError) as err:
        parse_liquidation_params({"mechanism": "lottery"})
    assert err.value.field == "liquidation.mechanism"


def test_frozen():
    p = LiquidationParams()
    with pytest.raises(ValidationError):
        p.mechanism = "fixed"  # type: ignore[misc]

"""Oracle parameters: defaults from Drift and Lyra, and bad values named."""

import pytest
from pydantic import ValidationError

from margin_engine.errors import InputError
from margin_engine.oracle import OracleParams, parse_oracle_params


def test_defaults():
    p = OracleParams()
    assert (p.staleness_s_max, p.confidence_ratio_max, p.deviation_ratio_max, p.twap_window_s) == (60, 0.02, 0.10, 300)
    assert (p.jump_ratio_max, p.update_interval_s, p.halt_move_ratio, p.halt_window_s) == (0.05, 10, 0.5, 300)


def test_frozen_and_no_unknown_fields():
    with pytest.raises(ValidationError):
        OracleParams().staleness_s_max = 5
    with pytest.raises(ValidationError):
        OracleParams(stalenes_s_max=5)


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"staleness_s_max": 0}, "oracle.staleness_s_max", "greater than 0"),
        ({"jump_ratio_max": 1.5}, "oracle.jump_ratio_max", "less than 1"),
        ({"future_skew_s_max": -1}, "oracle.future_skew_s_max", "greater than or equal to 0"),
        ({"degraded_confidence_ratio": 0.05}, "oracle", "degraded_confidence_ratio must be <= confidence_ratio_max"),
        ({"sources_min": 20}, "oracle", "sources_min must be <= sources_max"),
        ({"staleness_s_max": 5}, "oracle", "staleness_s_max must be >= update_interval_s"),
        ({"twap_window_s": 5}, "oracle", "twap_window_s must be >= update_interval_s"),
        ({"halt_window": 5}, "oracle.halt_window", "Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_are_input_errors_naming_the_field(data, field, words):
    with pytest.raises(InputError) as exc:
        parse_oracle_params(data)
    assert exc.value.field == field
    assert words in exc.value.message


def test_parse_valid():
    assert parse_oracle_params({"staleness_s_max": 180}).staleness_s_max == 180  # Lyra's spot heartbeat

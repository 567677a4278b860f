"""Oracle guards at one-minute steps (examples/scenarios/flash-wick-1m.toml, made smaller): a 25%
two-minute wick that every source reports."""

from pathlib import Path

import pytest

from margin_engine.errors import InputError
from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import load_scenario, parse_scenario

SCENARIO = Path(__file__).parents[2] / "examples" / "scenarios" / "flash-wick-1m.toml"


def _small():
    sc = load_scenario(SCENARIO)
    data = sc.model_dump(exclude={"base_dir"})
    data.update(steps=70, paths=1)
    data["population"].update(traders=80, option_sellers=2, hedged_books=2, vault_btc=5)
    data["variants"] = [v for v in data["variants"] if not v["name"].endswith("dutch")]
    return parse_scenario(data)


def test_slow_guards_hold_the_mark_through_a_wick_that_the_default_guards_follow():
    sc = _small()
    m = {v.name: run_path(sc, v, 0).metrics for v in sc.all_variants()}
    off, on, slow = m["guards-off"], m["guards-on"], m["guards-slow"]
    # the same prices: the mid falls 25% with the wick (and further with forced sales)
    assert off["min_mid_usd"] < 0.76 * 60_000 and slow["min_mid_usd"] < 0.76 * 60_000
    # the profile's jump limit (5% per 10 s) lets a consensus move of 25% in a minute through
    assert on["min_mark_usd"] == pytest.approx(on["min_mid_usd"], rel=0.01)
    # 1% per 10 s: the mark falls at most ~6% a minute and is back before it gets near the low
    assert slow["min_mark_usd"] > 0.84 * 60_000
    assert slow["liquidation_count"] < off["liquidation_count"]
    assert slow["bad_debt_usd"] < off["bad_debt_usd"]


def test_oracle_overrides_of_a_variant_are_checked():
    data = _small().model_dump(exclude={"base_dir"})
    data["variants"] = [{"name": "bad", "oracle_params": {"jump_ratio_max": 2.0}}]
    sc = parse_scenario(data)
    with pytest.raises(InputError, match="variants.bad.oracle_params"):
        run_path(sc, sc.all_variants()[0], 0)

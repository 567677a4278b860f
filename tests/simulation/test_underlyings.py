"""Several underlyings at once: BTC and ETH with their own perps, traders, books and parameters, on
their joint historical paths or correlated generated ones."""

from pathlib import Path

import numpy as np
import pytest
from test_runner import CASCADE

from margin_engine.errors import InputError
from margin_engine.simulation.prices import underlying_path
from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import Underlying, parse_scenario

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
ETH = {"name": "ETH", "spot0_usd": 3000, "traders": 20, "correlation": 0.9, "vol_annual": 0.0}


def test_generated_paths_have_the_correlation_asked_for():
    sc = parse_scenario({"name": "c", "steps": 20_000, "dt_s": 3600, "price": {"kind": "gbm", "vol_annual": 0.8}})
    btc = 60_000 * np.exp(
        np.concatenate([[0.0], np.cumsum(np.random.default_rng(1).normal(0, 0.8 / np.sqrt(8760), 20_000))])
    )
    eth, note = underlying_path(
        sc, Underlying(name="ETH", spot0_usd=3000, correlation=0.7), btc, np.random.default_rng(2)
    )
    r_btc, r_eth = np.diff(np.log(btc)), np.diff(np.log(eth))
    assert eth[0] == 3000 and "correlation 0.7" in note
    assert np.corrcoef(r_btc, r_eth)[0, 1] == pytest.approx(0.7, abs=0.02)
    hourly = 0.9 / np.sqrt(365 * 24)  # ETH's own vol_annual, hourly
    assert r_eth.std() == pytest.approx(hourly, rel=0.05)


def test_btc_and_eth_liquidate_in_their_own_books():
    sc = parse_scenario({**CASCADE, "steps": 6, "underlyings": [ETH]})
    r = run_path(sc, sc.all_variants()[0], 0)
    alone = parse_scenario({**CASCADE, "steps": 6})
    solo = run_path(alone, alone.all_variants()[0], 0)
    m = r.metrics
    assert r.accounts == solo.accounts + 20
    assert "ETH: generated (GBM, correlation 0.9 with BTC)" in r.price_source
    # the 6% gap hits ETH too; its longs are liquidated and their sales push ETH's own mid down
    assert r.series["eth_fundamental"][0] == 3000 and r.series["eth_fundamental"][-1] == pytest.approx(2820, rel=1e-9)
    assert m["eth_min_mid_usd"] < 2820 * 0.999
    assert m["liquidation_count"] > solo.metrics["liquidation_count"]
    assert m["open_interest_start_usd"] > solo.metrics["open_interest_start_usd"]
    # BTC's members and path are the same as without ETH
    assert r.series["fundamental"] == solo.series["fundamental"]


def test_the_2022_window_replays_btc_and_eth_together():
    base = {
        "name": "ftx",
        "steps": 24,
        "paths": 1,
        "price": {
            "kind": "historical",
            "csv": str(DATA / "btc-usd-1h-2022-11.csv"),
            "start": "2022-11-08T00:00:00Z",
            "end": "2022-11-10T00:00:00Z",
            "spot0_usd": None,
        },
        "population": {"traders": 20, "option_sellers": 0, "hedged_books": 0, "vault_btc": 0},
        "underlyings": [{"name": "ETH", "csv": str(DATA / "eth-usd-1h-2022-11.csv"), "traders": 10}],
    }
    sc = parse_scenario(base)
    r = run_path(sc, sc.all_variants()[0], 0)
    # the closes of the 2022-11-08T00:00 bars in the two files
    assert r.series["fundamental"][0] == 20_514.25
    assert r.series["eth_fundamental"][0] == 1_561.56
    assert len(r.series["eth_fundamental"]) == len(r.series["fundamental"]) == 25
    assert "ETH: historical eth-usd-1h-2022-11.csv" in r.price_source


def test_an_underlying_the_profile_does_not_list_is_an_error():
    sc = parse_scenario({**CASCADE, "underlyings": [{**ETH, "name": "SOL"}]})
    with pytest.raises(InputError) as err:
        run_path(sc, sc.all_variants()[0], 0)
    assert err.value.field == "scenario.underlyings.SOL" and "no [underlyings.SOL]" in str(err.value)


def test_a_historical_underlying_needs_its_file_and_a_generated_one_its_price():
    with pytest.raises(InputError) as err:
        parse_scenario({**CASCADE, "underlyings": [{"name": "ETH"}]})
    assert "spot0_usd" in str(err.value)
    with pytest.raises(InputError):
        parse_scenario({**CASCADE, "underlyings": [ETH, ETH]})

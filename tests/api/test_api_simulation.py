"""`me.simulate` runs a scenario as `margin-engine simulate` does, as a report of DataFrames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import margin_engine as me
from margin_engine.errors import InputError
from margin_engine.simulation.report import summarize
from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import load_scenario, parse_scenario

CRASH = Path(__file__).resolve().parents[2] / "examples" / "scenarios" / "crash-2022-11-09.toml"


@pytest.fixture(scope="module")
def small():
    sc = load_scenario(CRASH)
    data = sc.model_dump()
    data["steps"] = 12
    data["population"] = {**data["population"], "traders": 20}
    return parse_scenario(data, "small", sc.base_dir)


def test_simulate_equals_the_sweep(small, tmp_path):
    report = me.simulate(small, paths=1, variants=["deribit-fixed"], out=tmp_path)
    (variant,) = report.scenario.all_variants()
    direct = run_path(report.scenario, variant, 0)
    df = report.to_pandas()
    assert len(df) == 1 and df.loc[0, "variant"] == "deribit-fixed" and df.loc[0, "steps"] == 12
    for name, value in direct.metrics.items():
        assert df.loc[0, name] == pytest.approx(value, nan_ok=True), name
    assert report.summary_json == summarize(report.scenario, list(report.results))
    assert json.loads((tmp_path / "summary.json").read_text())["scenario"] == "crash-2022-11-09"
    means = report.variants_to_pandas()
    assert list(means.index) == ["deribit-fixed"]
    assert means.loc["deribit-fixed", "bad_debt_usd"] == pytest.approx(direct.metrics["bad_debt_usd"], rel=1e-5)
    series = report.series_to_pandas()
    assert len(series) == 13 and series.index.name == "step"
    assert "crash-2022-11-09" in report.summary() and "bad_debt_usd" in report.summary()
    assert "<table" in report._repr_html_() and "deribit-fixed" in report._repr_html_()
    assert repr(report) == "SimulationReport(scenario='crash-2022-11-09', variants=['deribit-fixed'], paths=1)"


def test_simulate_errors(small):
    with pytest.raises(InputError, match="no variant 'nope'"):
        me.simulate(small, variants=["nope"])
    with pytest.raises(InputError, match="scenario.paths"):
        me.simulate(small, paths=0)
    with pytest.raises(InputError, match="scenario"):
        me.simulate(42)
    with pytest.raises(InputError):
        me.simulate(CRASH.with_name("missing.toml"))

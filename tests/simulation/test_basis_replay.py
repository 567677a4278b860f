"""The 2020-03-12 crash with the perp marked at its own file's basis (Binance BTCUSDT perp over
the spot index, examples/data): the basis widens to -2.6% at the bottom bar and the mark, not the
index, liquidates accounts that the index alone would have left standing."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from margin_engine.errors import InputError
from margin_engine.simulation import runner
from margin_engine.simulation.prices import basis_path
from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import load_scenario, parse_scenario

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
CRASH = {
    "name": "basis-2020-03",
    "seed": 3,
    "dt_s": 300,
    "steps": 288,
    "price": {
        "kind": "historical",
        "csv": str(DATA / "btc-usd-1h-2020-03.csv"),
        "start": "2020-03-12T06:00:00Z",
        "end": "2020-03-13T06:00:00Z",
        "intrabar": "bridge",
    },
    "population": {"traders": 60, "option_sellers": 0, "leverage_median": 10, "long_fraction": 0.8},
    "keepers": {"count": 2, "latency_s": 10},
    "market": {"perp_csv": str(DATA / "btc-usdt-perp-1h-2020-03.csv")},
}


def test_the_basis_of_each_step_is_that_of_its_hour():
    sc = parse_scenario(CRASH)
    start = 1_583_992_800  # 2020-03-12T06:00Z
    basis = basis_path(sc, sc.csv_path(), sc.perp_csv_path(), start)
    assert len(basis) == 289 and np.all(basis[:12] == basis[0])  # one hourly bar: 12 steps of 5 minutes
    bottom = (1_584_064_800 - start) // 300  # the 2020-03-13T02:00Z bar
    assert basis.min() == basis[bottom] == pytest.approx(-0.0257, abs=5e-4)


def test_the_mark_not_the_index_drives_liquidations(monkeypatch):
    """Each account a keeper moves to liquidate that is liquidatable is checked at the index too
    (the same state with the perp's mark taken away): with the basis some are liquidatable only at
    the mark; without it, none."""
    only_at_mark = []
    real_submit = runner._Sim.submit

    def submit(self, cmd, step=None, rnd=0):
        if cmd["type"] == "start_liquidation" and self.engine.state.margin(cmd["account"]).liquidatable:
            s = self.engine.state.scratch()
            for u, m in list(s.markets.items()):
                s.markets[u] = replace(m, perp=None)
            if not s.margin(cmd["account"]).liquidatable:
                only_at_mark.append(cmd["account"])
        return real_submit(self, cmd, step, rnd)

    monkeypatch.setattr(runner._Sim, "submit", submit)
    sc = parse_scenario(CRASH)
    marked = run_path(sc, sc.all_variants()[0], 0)
    assert "BTC-PERP marked at its own file's hourly basis" in marked.price_source
    n = len(only_at_mark)
    assert n > 0  # 8 of 95 liquidations when measured (2026-12-02)
    plain = parse_scenario({**CRASH, "market": {}})
    at_index = run_path(plain, plain.all_variants()[0], 0)
    assert len(only_at_mark) == n  # without the basis, every liquidation is one at the index
    assert (
        marked.metrics["liquidation_count"] != at_index.metrics["liquidation_count"]
        or marked.metrics != at_index.metrics
    )


def test_a_missing_perp_file_is_an_error(tmp_path):
    scenario = tmp_path / "s.toml"
    csv = DATA / "btc-usd-1h-2020-03.csv"
    scenario.write_text(
        f'name = "x"\n[price]\nkind = "historical"\ncsv = "{csv}"\n'
        'start = "2020-03-12T06:00:00Z"\nend = "2020-03-13T06:00:00Z"\n[market]\nperp_csv = "nope.csv"\n'
    )
    with pytest.raises(InputError, match="perp_csv"):
        load_scenario(scenario)


def test_the_simulator_pays_the_funding_the_profile_computes():
    """Under a profile with [funding] the engine pays every hour the run crosses: with a 0.2% basis
    Hyperliquid's rule charges the longs (P + clamp(I - P) = 0.15% per 8 h); deribit has no rule."""
    from test_runner import CASCADE

    paid = {}
    for profile in ("deribit", "hyperliquid"):
        sc = parse_scenario(
            {**CASCADE, "profile": profile, "steps": 30, "dt_s": 600, "market": {"perp_basis_ratio": 0.002}}
        )
        paid[profile] = run_path(sc, sc.all_variants()[0], 0).metrics["funding_paid_usd"]
    assert paid["deribit"] == 0 and paid["hyperliquid"] > 0

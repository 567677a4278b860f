"""The stress simulator on the real engine: determinism across workers, conservation audited at the
end of every step that moved money, and the cascade that forced selling into a thin book causes."""

import math
from pathlib import Path

import pytest

from margin_engine.engine import Rejection
from margin_engine.engine.events import PositionChanged, Transferred
from margin_engine.errors import InputError, InvariantViolation
from margin_engine.simulation import runner
from margin_engine.simulation.report import write_report
from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import Variant, load_scenario, parse_scenario
from margin_engine.simulation.sweep import run_sweep

SMALL = {
    "name": "small",
    "seed": 7,
    "paths": 2,
    "steps": 6,
    "price": {"kind": "merton", "vol_annual": 1.0, "shock_step": 3, "shock_pct": -12},
    "population": {"traders": 20, "option_sellers": 2},
    "keepers": {"count": 2, "latency_s": 10},
    "depth": {"depth_usd_per_pct": 2e6},
    "variants": [{"name": "fixed"}, {"name": "dutch", "mechanism": "dutch", "oracle_guards": False}],
}

# 40 longs at about 10x; the price gaps 6% once and stays there
CASCADE = {
    "name": "cascade",
    "steps": 3,
    "price": {"kind": "gbm", "vol_annual": 0.0, "shock_step": 2, "shock_pct": -6},
    "population": {
        "traders": 40,
        "long_fraction": 1.0,
        "leverage_median": 10,
        "leverage_sigma_log": 0.4,
        "leverage_max": 30,
        "notional_median_usd": 100_000,
        "notional_sigma_log": 0.3,
        "option_sellers": 0,
    },
    "keepers": {"count": 2, "latency_s": 0, "cost_per_action_usd": 0},
    "depth": {"depth_usd_per_pct": 300_000, "permanent_fraction": 0.5, "resilience_half_life_s": 3600},
}


def test_same_seed_same_summary_with_one_and_two_workers(tmp_path):
    sc = parse_scenario(SMALL)
    one = run_sweep(sc, workers=1)
    two = run_sweep(sc, workers=2)
    write_report(tmp_path / "one", sc, one)
    write_report(tmp_path / "two", sc, two)
    assert (tmp_path / "one" / "summary.json").read_bytes() == (tmp_path / "two" / "summary.json").read_bytes()
    assert [(r.variant, r.path) for r in two] == [("fixed", 0), ("fixed", 1), ("dutch", 0), ("dutch", 1)]
    assert b"data:image/png;base64," in (tmp_path / "one" / "report.html").read_bytes()


def test_another_seed_changes_the_run():
    sc = parse_scenario(SMALL)
    other = parse_scenario({**SMALL, "seed": 8})
    v = sc.all_variants()[0]
    assert run_path(sc, v, 0).series["fundamental"] != run_path(other, v, 0).series["fundamental"]


MOVES = (Transferred, PositionChanged)


def test_conservation_is_audited_at_the_end_of_every_step_that_moved_money(monkeypatch):
    calls = {"audit": 0, "events": 0, "moved": 0, "unaudited": 0, "clocks": []}
    real_audit, real_events, real_submit = runner.audit, runner.audit_events, runner._Sim.submit

    def audit(state):
        calls["audit"] += 1
        calls["unaudited"] = 0
        calls["clocks"].append(state.now_s)
        return real_audit(state)

    def audit_events(state, events):
        calls["events"] += 1
        return real_events(state, events)

    def submit(self, cmd, step=None, rnd=0):
        out = real_submit(self, cmd, step, rnd)
        if not isinstance(out, Rejection) and any(isinstance(e, MOVES) for e in out):
            calls["moved"] += 1
            calls["unaudited"] += 1
        return out

    monkeypatch.setattr(runner, "audit", audit)
    monkeypatch.setattr(runner, "audit_events", audit_events)
    monkeypatch.setattr(runner._Sim, "submit", submit)
    sc = parse_scenario(SMALL)
    result = run_path(sc, sc.all_variants()[0], 0)
    assert result.metrics["liquidation_count"] > 0  # the shock liquidates someone: the audits saw it
    # each moving command's transfers as it comes; the whole ledger after opening and at the end
    # of each step that moved (at most one a step, each at another clock), nothing left unaudited
    assert calls["events"] == calls["moved"] > sc.steps
    assert 2 < calls["audit"] <= sc.steps + 1 and calls["unaudited"] == 0
    assert len(set(calls["clocks"])) == calls["audit"]


def test_a_break_of_conservation_stops_the_run(monkeypatch):
    from margin_engine.engine import state as engine_state

    real_post = engine_state.Ledger.post

    def leaky(self, t):  # from the first liquidation on, the fee pool gains a unit that no one paid
        real_post(self, t)
        if t.reason.startswith("liquidation"):
            self.balances[("fees", t.asset)] = self.balances.get(("fees", t.asset), 0) + 1

    monkeypatch.setattr(engine_state.Ledger, "post", leaky)
    sc = parse_scenario(SMALL)
    with pytest.raises(InvariantViolation, match="conservation broken"):
        run_path(sc, sc.all_variants()[0], 0)


def test_thin_book_without_guards_cascades_and_the_default_design_does_not():
    sc = parse_scenario(
        {
            **CASCADE,
            "variants": [
                {"name": "thin-off", "oracle_guards": False},
                {"name": "deep-on", "oracle_guards": True, "depth_usd_per_pct": 50e6},
            ],
        }
    )
    thin, deep = (run_path(sc, v, 0) for v in sc.all_variants())
    # the gap alone liquidates the most leveraged; their keepers' sales push the mid down further and
    # liquidate accounts that were above maintenance at the step's first round
    assert thin.metrics["cascade_liquidations"] >= 5
    assert thin.metrics["liquidation_count"] > deep.metrics["liquidation_count"]
    assert thin.metrics["min_mid_usd"] < deep.metrics["min_mid_usd"]
    assert deep.metrics["cascade_liquidations"] == 0


def test_a_missing_price_file_is_an_error_never_generated_prices(tmp_path):
    sc = parse_scenario({**SMALL, "paths": 1, "variants": [], "price": {"kind": "historical", "csv": "no/such.csv"}})
    with pytest.raises(InputError) as err:
        run_path(sc, sc.all_variants()[0], 0)
    assert err.value.field == "scenario.price.csv" and "no/such.csv" in err.value.message
    # loading the file says so before anything runs; the old `fallback` key is refused with a reason
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\n[price]\nkind = "historical"\ncsv = "missing.csv"\n')
    with pytest.raises(InputError, match="no price file"):
        load_scenario(path)
    with pytest.raises(InputError, match="fallback is no more"):
        parse_scenario({**SMALL, "price": {"kind": "historical", "csv": "x.csv", "fallback": "gbm"}})


def test_shipped_replays_read_the_shipped_data_from_any_directory(tmp_path, monkeypatch):
    examples = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
    monkeypatch.chdir(tmp_path)  # a Dask worker started elsewhere
    for f in sorted(examples.glob("crash-*.toml")):
        sc = load_scenario(f)
        assert Path(sc.base_dir).is_absolute() and sc.csv_path().is_file(), f.name
        assert "examples/data" in sc.csv_path().resolve().as_posix()


def test_portfolio_mode_needs_a_portfolio_profile():
    sc = parse_scenario({**SMALL, "variants": [{"name": "pm", "margin_mode": "portfolio"}]})
    with pytest.raises(InputError, match="portfolio"):
        run_path(sc, sc.all_variants()[0], 0)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": "x", "stepz": 3}, "scenario.stepz"),
        ({"name": "x", "variants": [{"name": "a"}, {"name": "a"}]}, "scenario"),
        ({"name": "x", "price": {"kind": "historical"}}, "scenario.price"),
    ],
)
def test_bad_scenarios_name_the_field(data, field):
    with pytest.raises(InputError) as err:
        parse_scenario(data)
    assert err.value.field == field


def test_variant_names_are_checked():
    with pytest.raises(ValueError):
        Variant(name="has space")


def test_example_scenarios_load():
    from pathlib import Path

    from margin_engine.simulation.runner import resolve_variant
    from margin_engine.simulation.scenario import load_scenario

    files = sorted(Path(__file__).parents[2].joinpath("examples", "scenarios").glob("*.toml"))
    crashes = ["crash-2020-03-12", "crash-2021-05-19", "crash-2022-11-09", "crash-2024-08-05", "crash-2025-10-10"]
    assert [f.stem for f in files] == [*crashes, "flash-wick-1m"]
    for f in files:
        sc = load_scenario(f)
        names = [resolve_variant(sc, v).name for v in sc.all_variants()]
        assert names[0] == ("guards-off" if f.stem == "flash-wick-1m" else "deribit-fixed")
        if f.stem in crashes:  # BTC and ETH on their real minutes-through-the-wicks path, every loss counted
            assert sc.price.intrabar == "bridge" and sc.dt_s == 60 and sc.price.spot0_usd is None
            assert [u.name for u in sc.underlyings] == ["ETH"] and sc.backstop.enabled
            assert sc.underlyings[0].csv_path(sc.base_dir).is_file() and sc.csv_path().is_file()


def test_implied_vol_follows_the_traded_mid_down_a_cascade():
    """Forced sales push the mid below the fundamental; option books are then marked at the vol of
    the mid (spot-vol relation, realized vol of the mid), not of the price nobody trades at."""
    runs = {
        follows: run_path(
            sc := parse_scenario({**CASCADE, "steps": 4, "vol": {"follows": follows}}), sc.all_variants()[0], 0
        )
        for follows in ("mid", "fundamental")
    }
    mid, fundamental = runs["mid"].series, runs["fundamental"].series
    assert mid["fundamental"] == fundamental["fundamental"]
    assert mid["vol"][:2] == pytest.approx(fundamental["vol"][:2], rel=1e-12)  # before the gap, mid = price
    gap = 3  # the step after the shock's forced sales
    assert mid["mid"][gap] < mid["fundamental"][gap]
    assert mid["vol"][gap] > fundamental["vol"][gap]
    # by hand from the recorded mids: base = 0.6 (mid / mid0)^-2.5 pulled halfway up to realized vol
    v = parse_scenario(CASCADE).vol
    keep, years = 2.0 ** (-3600 / v.realized_half_life_s), 3600 / (365 * 86_400)
    variance = v.vol0_annual**2
    for k in range(1, gap + 1):
        variance = keep * variance + (1 - keep) * math.log(mid["mid"][k] / mid["mid"][k - 1]) ** 2 / years
    base = v.vol0_annual * (mid["mid"][gap] / mid["mid"][0]) ** -v.spot_vol_beta
    expected = min(max(base + v.realized_weight * max(math.sqrt(variance) - base, 0), v.vol_floor_annual), 3.0)
    assert mid["vol"][gap] == pytest.approx(expected, rel=1e-12)


def test_the_perp_mark_at_a_basis_and_a_stablecoin_price_go_through_the_engine():
    """market.perp_basis_ratio puts the perp's mark below the mid: the same path liquidates more,
    since margin and liquidation read the mark; a depegged stablecoin runs with every audit."""
    base = parse_scenario({**CASCADE, "oracle": {"guards": False}})
    below = parse_scenario({**CASCADE, "oracle": {"guards": False}, "market": {"perp_basis_ratio": -0.03}})
    depeg = parse_scenario({**CASCADE, "market": {"stablecoin_usd": 0.97}})
    counts = [run_path(sc, sc.all_variants()[0], 0).metrics["liquidation_count"] for sc in (base, below)]
    assert counts[1] > counts[0] > 0
    assert run_path(depeg, depeg.all_variants()[0], 0).steps == depeg.steps
    with pytest.raises(InputError):
        parse_scenario({**CASCADE, "market": {"perp_basis_ratio": 0.5}})


def test_an_account_left_underwater_at_the_end_is_counted():
    """Keepers that see the queue a day late and no searcher: the gap leaves longs below zero that
    nobody liquidates. Their negative equity at the final mark is bad debt, counted apart and in
    the total; it is not zero because no bankruptcy was resolved."""
    idle = parse_scenario(
        {
            **CASCADE,
            "price": {"kind": "gbm", "vol_annual": 0.0, "shock_step": 2, "shock_pct": -30},
            "keepers": {"count": 1, "latency_s": 86_400, "cost_per_action_usd": 0},
            "mev": {"searchers": 0},
        }
    )
    result = run_path(idle, idle.all_variants()[0], 0)
    m = result.metrics
    assert m["liquidation_count"] == 0 and m["bad_debt_resolved_usd"] == 0
    assert m["accounts_underwater_at_end"] > 0 and m["bad_debt_open_usd"] > 0
    assert m["bad_debt_usd"] == m["bad_debt_resolved_usd"] + m["bad_debt_open_usd"]

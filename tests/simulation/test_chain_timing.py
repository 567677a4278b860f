"""Oracle and chain timing: push oracles that update on a deviation or a heartbeat, sources that
report late, liquidators' transactions lost to outages, and a sequencer that goes down."""

import pytest
from test_runner import CASCADE

from margin_engine.simulation.runner import run_path
from margin_engine.simulation.scenario import parse_scenario

# CASCADE at one-minute steps (rounds of 10 s, at most 5): the 6% gap at step 2 stays
MINUTES = {**CASCADE, "dt_s": 60, "steps": 12, "keepers": {**CASCADE["keepers"], "rounds_max": 5}}


def run(**over):
    sc = parse_scenario({**MINUTES, **over})
    return run_path(sc, sc.all_variants()[0], 0)


def test_a_push_oracle_updates_on_its_heartbeat_and_on_a_deviation():
    every_round = run().metrics["oracle_updates_accepted"]
    # heartbeat 60 s, deviation 1%: one push a minute per source (3), and the 6% gap pushes at once
    pushed = run(oracle={"heartbeat_s": 60, "deviation_ratio": 0.01, "noise_ratio": 0.0})
    assert pushed.metrics["oracle_updates_accepted"] == 3 * 13  # the start, then each of 12 minutes
    assert every_round > pushed.metrics["oracle_updates_accepted"]
    # the gap shows in the mark in the step it happens
    assert pushed.series["mark"][2] == pytest.approx(0.94 * pushed.series["mark"][1], rel=0.002)


def test_late_sources_report_the_mid_of_their_latency_ago():
    on_time = run(oracle={"noise_ratio": 0.0})
    late = run(oracle={"noise_ratio": 0.0, "source_latency_s": [60, 60, 60]})
    # the gap at step 2 reaches the mark a minute later
    assert late.series["mark"][2] == pytest.approx(late.series["mark"][1], rel=1e-3)
    assert late.series["mark"][3] < 0.95 * late.series["mark"][1]
    assert on_time.series["mark"][2] < 0.95 * on_time.series["mark"][1]


def test_liquidators_lost_to_outages_leave_the_losses_open():
    ok = run().metrics
    down = run(chain={"liquidator_outage_probability": 1.0}).metrics
    assert ok["keeper_fills"] > 0 and down["keeper_fills"] == down["mev_fills"] == 0
    assert down["liquidator_transactions_dropped"] == down["keeper_actions"] + down["mev_actions"] > 0
    assert down["liquidation_count"] == 0
    assert down["bad_debt_usd"] == down["bad_debt_open_usd"] > 0  # the loss is counted anyway


def test_a_sequencer_down_through_the_gap_delays_every_liquidation():
    ok = run()
    down = run(chain={"sequencer_down_from_step": 2, "sequencer_down_s": 300})
    m = down.metrics
    assert m["sequencer_down_rounds"] == 5  # one round each of the 5 minutes down
    liq = down.series["liquidations"]
    assert sum(liq[1:6]) == 0 and sum(liq[6:]) > 0  # nothing until it is back (step 7)
    assert sum(ok.series["liquidations"][1:3]) > 0

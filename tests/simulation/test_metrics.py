"""Run metrics from recorded arrays, against hand-worked numbers."""

import numpy as np
import pytest

from margin_engine.simulation.errors import SimulationInputError
from margin_engine.simulation.metrics import (
    fund_minimum_usd,
    margin_per_notional,
    max_drawdown_usd,
    run_metrics,
    time_under_water_s,
)

FUND = np.array([[100.0, 50.0, 80.0, -20.0, 30.0], [10.0, 20.0, 30.0, 40.0, 50.0]])


def test_fund_minimum_and_drawdown():
    assert fund_minimum_usd(FUND).tolist() == [-20.0, 10.0]
    # path 0: peak 100 at t0, trough -20 at t3: drawdown 120; path 1 only rises: 0
    assert max_drawdown_usd(FUND).tolist() == [120.0, 0.0]
    # a later, deeper fall from a higher peak counts, not the first one
    assert float(max_drawdown_usd([5.0, 1.0, 10.0, 2.0])) == 8.0


def test_time_under_water_counts_fund_or_any_account():
    equity = np.ones((2, 3, 5))
    equity[0, 2, 1] = -5.0  # account 2 of path 0 is under water in sample 1
    equity[1, 0, 4] = -1.0  # the last sample opens no step: it does not count
    # path 0: samples 1 (account) and 3 (fund) are below zero, each stands for one step of 60 s
    assert time_under_water_s(FUND, equity, 60).tolist() == [120.0, 0.0]


def test_time_under_water_checks_the_account_axis():
    with pytest.raises(SimulationInputError) as err:
        time_under_water_s(FUND, np.ones((2, 5)), 60)
    assert err.value.field == "equity_usd"


def test_margin_per_notional_is_notional_weighted():
    margin = np.array([[10.0, 20.0], [0.0, 0.0]])
    notional = np.array([[100.0, 100.0], [0.0, 0.0]])
    out = margin_per_notional(margin, notional)
    assert out[0] == pytest.approx(30.0 / 200.0)  # (10 + 20) / (100 + 100) = 0.15
    assert np.isnan(out[1])  # no position on this path: undefined, not zero


def test_run_metrics_sums_flows_and_summarizes():
    m = run_metrics(
        insurance_fund_usd=FUND,
        equity_usd=np.ones((2, 1, 5)),
        bad_debt_usd=[[0.0, 0.0, 0.0, 120.0], [0.0] * 4],
        socialized_loss_usd=[[0.0, 0.0, 0.0, 20.0], [0.0] * 4],
        liquidation_count=[[0, 1, 0, 3], [0, 0, 0, 1]],
        liquidation_volume_usd=[[0.0, 5e3, 0.0, 2e4], [0.0, 0.0, 0.0, 1e3]],
        margin_required_usd=np.full((2, 5), 10.0),
        notional_usd=np.full((2, 5), 100.0),
        dt_s=3600,
    )
    assert m.bad_debt_usd.tolist() == [120.0, 0.0]
    assert m.socialized_loss_usd.tolist() == [20.0, 0.0]
    assert m.liquidation_count.tolist() == [4, 1]
    assert m.liquidation_volume_usd.tolist() == [25e3, 1e3]
    assert m.time_under_water_s.tolist() == [3600.0, 0.0]
    assert m.margin_per_notional.tolist() == [0.1, 0.1]
    text = m.summary()
    assert "fund_max_drawdown_usd" in text and "q0.99" in text


def test_run_metrics_rejects_flows_of_other_paths():
    with pytest.raises(SimulationInputError) as err:
        run_metrics(
            insurance_fund_usd=FUND,
            equity_usd=np.ones((2, 1, 5)),
            bad_debt_usd=np.zeros((3, 4)),
            socialized_loss_usd=np.zeros((2, 4)),
            liquidation_count=np.zeros((2, 4)),
            liquidation_volume_usd=np.zeros((2, 4)),
            margin_required_usd=np.zeros((2, 5)),
            notional_usd=np.zeros((2, 5)),
            dt_s=1,
        )
    assert err.value.field == "bad_debt_usd"

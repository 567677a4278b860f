"""Margin backtests: exceedance counting, Kupiec and Christoffersen against hand-worked numbers, Basel zones."""

import numpy as np
import pytest

from margin_engine.simulation.backtest import (
    backtest_margin,
    basel_zone,
    christoffersen_independence,
    coverage_verdict,
    exceedances,
    kupiec_pof,
)
from margin_engine.simulation.errors import SimulationInputError


def hits_on(days, n_days=250):
    hit = np.zeros(n_days, dtype=bool)
    hit[list(days)] = True
    return hit


def test_exceedance_is_a_loss_strictly_larger_than_margin():
    pnl = np.array([-100.0, -100.0, 50.0, -100.01])
    margin = np.array([100.0, 99.99, 0.0, 100.0])
    assert exceedances(pnl, margin).tolist() == [False, True, False, True]


def test_kupiec_250_days_5_exceptions_at_99_percent():
    # p = 0.01, T = 250, x = 5, observed rate 5 / 250 = 0.02:
    # ln L0 = 245 ln 0.99 + 5 ln 0.01 = -2.462333 - 23.025851 = -25.488183
    # ln L1 = 245 ln 0.98 + 5 ln 0.02 = -4.949662 - 19.560116 = -24.509778
    # LR = -2 (ln L0 - ln L1) = 1.956810; p-value = P(chi2_1 > 1.956810) = 0.161855
    k = kupiec_pof(5, 250, 0.99)
    assert float(k.lr) == pytest.approx(1.956810, abs=1e-6)
    assert float(k.p_value) == pytest.approx(0.161855, abs=1e-6)
    assert float(k.expected) == pytest.approx(2.5)
    assert float(k.rate) == pytest.approx(0.02)


def test_kupiec_edge_counts():
    k = kupiec_pof(np.array([0, 10, 250]), np.array([250, 1000, 250]), 0.99)
    # x = 0: LR = -2 * 250 ln 0.99 = 5.025168 (too few exceptions is rejected at 5% too)
    assert k.lr[0] == pytest.approx(-2 * 250 * np.log(0.99))
    assert k.p_value[0] == pytest.approx(0.024982, abs=1e-6)
    # x = expected: the observed rate is the null, LR = 0, p = 1
    assert k.lr[1] == pytest.approx(0.0, abs=1e-12) and k.p_value[1] == pytest.approx(1.0)
    # x = T: LR = -2 * 250 ln 0.01
    assert k.lr[2] == pytest.approx(-2 * 250 * np.log(0.01))


@pytest.mark.parametrize(
    "args, field",
    [((6, 5, 0.99), "n_exceed"), ((-1, 5, 0.99), "n_exceed"), ((1, 0, 0.99), "n_obs"), ((1, 5, 1.0), "coverage")],
)
def test_kupiec_rejects_bad_counts(args, field):
    with pytest.raises(SimulationInputError) as err:
        kupiec_pof(*args)
    assert err.value.field == field


def test_christoffersen_clustered_exceptions_reject_independence():
    # 5 consecutive exceptions (days 100-104) in 250: n00 = 243, n01 = 1, n10 = 1, n11 = 4
    # pi = 5/249, pi0 = 1/244, pi1 = 4/5
    # ln L(pi) = 244 ln(244/249) + 5 ln(5/249) = -24.489535
    # ln L(pi0, pi1) = 243 ln(243/244) + ln(1/244) + ln(1/5) + 4 ln(4/5) = -8.997128
    # LR = 30.984813, p = 2.6e-8
    ind = christoffersen_independence(hits_on(range(100, 105)))
    assert (int(ind.n00), int(ind.n01), int(ind.n10), int(ind.n11)) == (243, 1, 1, 4)
    assert float(ind.lr) == pytest.approx(30.984813, abs=1e-6)
    assert float(ind.p_value) < 1e-7


def test_christoffersen_spread_exceptions_pass():
    # days 10, 60, 110, 160, 210: n00 = 239, n01 = 5, n10 = 5, n11 = 0; pi1 = 0 (0 ln 0 = 0)
    # ln L(pi0, pi1) = 239 ln(239/244) + 5 ln(5/244) = -24.387068; LR = 0.204932, p = 0.650769
    ind = christoffersen_independence(hits_on([10, 60, 110, 160, 210]))
    assert float(ind.lr) == pytest.approx(0.204932, abs=1e-6)
    assert float(ind.p_value) == pytest.approx(0.650769, abs=1e-6)


def test_christoffersen_without_exceptions_or_with_only_the_last_day():
    assert float(christoffersen_independence(hits_on([])).lr) == 0.0
    last = christoffersen_independence(hits_on([249]))  # no day follows an exception: pi1 undefined, terms vanish
    assert np.isfinite(last.lr) and (int(last.n10), int(last.n11)) == (0, 0)


def test_basel_traffic_light_for_250_days_at_99_percent():
    zones = basel_zone(np.arange(12), 250, 0.99)
    assert zones.tolist() == ["green"] * 5 + ["yellow"] * 5 + ["red"] * 2


def test_backtest_two_portfolios_by_hand():
    margin = np.full((2, 250), 1000.0)
    pnl = np.zeros((2, 250))
    pnl[0, [10, 60, 110, 160, 210]] = -1500.0  # 5 spread exceptions
    pnl[1, 100:105] = -1500.0  # 5 clustered exceptions
    pnl[1, 200] = -999.0  # covered
    result = backtest_margin(pnl, margin, 0.99)
    assert result.kupiec.n_exceed.tolist() == [5, 5]
    assert result.kupiec.lr == pytest.approx([1.956810, 1.956810], abs=1e-6)
    assert result.independence.lr == pytest.approx([0.204932, 30.984813], abs=1e-6)
    # conditional coverage: LR_cc = 1.956810 + 30.984813 = 32.941623, chi-square with 2 dof
    assert result.conditional_coverage_lr[1] == pytest.approx(32.941623, abs=1e-6)
    assert result.conditional_coverage_p_value[1] == pytest.approx(np.exp(-32.941623 / 2), rel=1e-9)
    assert result.zone.tolist() == ["yellow", "yellow"]
    text = result.summary()
    assert "99.00% coverage" in text and text.count("yellow") == 2


def test_backtest_checks_shapes_and_margin_sign():
    with pytest.raises(SimulationInputError) as err:
        backtest_margin(np.zeros(10), np.zeros(9), 0.99)
    assert err.value.field == "margin_usd"
    with pytest.raises(SimulationInputError) as err:
        backtest_margin(np.zeros(10), np.full(10, -1.0), 0.99)
    assert err.value.field == "margin_usd"


def test_verdict_reads_kupiec_in_words_and_agrees_with_the_zone():
    # 250 days at 99%: 0 exceptions -> LR = -500 ln 0.99 = 5.025, p = 0.025 < 0.05: too few, zone green
    # (the zone counts exceptions only); 2 -> consistent; 10 -> too many, zone red
    k = kupiec_pof(np.array([0, 2, 10]), np.array([250, 250, 250]), 0.99)
    assert k.lr[0] == pytest.approx(-500 * np.log(0.99))
    assert coverage_verdict(k, 0.99).tolist() == ["too few (conservative)", "consistent", "too many exceedances"]
    assert basel_zone(np.array([0, 2, 10]), np.array([250] * 3), 0.99).tolist() == ["green", "green", "red"]

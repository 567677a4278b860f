"""Median, TWAP, EMA and VWAP with hand-worked numbers; histories stay bounded."""

import pytest

from margin_engine.oracle.averages import Point, VolumeReport, ema, median, twap, vwap, with_point


def test_median_odd_and_even():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5  # (2 + 3) / 2


def test_twap_is_time_weighted_over_the_window():
    history = (Point(0, 100.0), Point(10, 110.0), Point(40, 90.0))
    # [0, 10) at 100, [10, 40) at 110, [40, 60) at 90: (1000 + 3300 + 1800) / 60
    assert twap(history, 60, 300) == pytest.approx(6100 / 60)
    # window [30, 60]: [30, 40) at 110, [40, 60) at 90: (1100 + 1800) / 30
    assert twap(history, 60, 30) == pytest.approx(2900 / 30)


def test_twap_edges():
    assert twap((), 10, 300) is None
    assert twap((Point(5, 100.0),), 5, 300) == 100.0  # no time elapsed: the last price
    assert twap((Point(0, 100.0), Point(10, 200.0)), 10, 300) == 100.0  # a point at now weighs nothing


def test_ema_halves_the_old_weight_every_half_life():
    assert ema(100.0, 200.0, 60, 60) == pytest.approx(150.0)  # 200 + (100 - 200) / 2
    assert ema(100.0, 200.0, 120, 60) == pytest.approx(175.0)
    assert ema(100.0, 200.0, 0, 60) == 100.0


def test_vwap_weights_by_volume_within_the_window():
    reports = (VolumeReport(0, 100.0, 1.0), VolumeReport(50, 110.0, 3.0), VolumeReport(90, 120.0, 1.0))
    assert vwap(reports, 100, 300) == pytest.approx((100 + 330 + 120) / 5)
    assert vwap(reports, 100, 20) == 120.0  # only the one at 90
    assert vwap(reports, 500, 20) is None


def test_with_point_replaces_the_same_second_and_keeps_the_step_the_window_starts_on():
    history = (Point(0, 1.0), Point(10, 2.0), Point(20, 3.0))
    assert with_point(history, Point(20, 4.0), 0) == (Point(0, 1.0), Point(10, 2.0), Point(20, 4.0))
    assert with_point(history, Point(30, 5.0), 15) == (Point(10, 2.0), Point(20, 3.0), Point(30, 5.0))
    assert with_point(history, Point(100, 5.0), 90) == (Point(20, 3.0), Point(100, 5.0))
    assert with_point(history, Point(30, 5.0), 10) == (Point(10, 2.0), Point(20, 3.0), Point(30, 5.0))

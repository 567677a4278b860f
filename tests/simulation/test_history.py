"""Crash windows from price CSVs and GARCH-t fitted to daily returns. Tests on shared/data skip when
that folder is absent; the rest write their own CSVs."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from margin_engine.errors import InputError
from margin_engine.simulation.errors import PriceWindowError, SimulationInputError
from margin_engine.simulation.history import daily_log_returns, fit_garch_t, historical_path
from margin_engine.simulation.paths import GarchParams, garch_t_paths

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not here")

T0 = 1_583_625_600  # 2020-03-08T00:00:00Z


def write_csv(path, closes, step_s=3600, skip=()):
    rows = ["time,open,high,low,close,volume"]
    for i, close in enumerate(closes):
        if i not in skip:
            time = datetime.fromtimestamp(T0 + i * step_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            rows.append(f"{time},{close},{close},{close},{close},1")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_slice_resample_and_rescale(tmp_path):
    csv = write_csv(tmp_path / "h.csv", [100.0 + i for i in range(48)])
    window = historical_path(csv, start="2020-03-08T02:00:00Z", end=T0 + 20 * 3600)
    assert window.dt_s == 3600 and window.spot.shape == (1, 19)
    assert window.spot[0, 0] == 102.0 and window.spot[0, -1] == 120.0
    every_4h = historical_path(csv, dt_s=4 * 3600, spot0=50.0)
    assert every_4h.time_s.tolist() == [T0 + k * 4 * 3600 for k in range(12)]
    # closes 100, 104, ... scaled by 50 / 100
    assert every_4h.spot[0].tolist() == pytest.approx([0.5 * (100.0 + 4 * k) for k in range(12)])


def test_daily_returns_from_hourly_bars(tmp_path):
    csv = write_csv(tmp_path / "h.csv", [100.0 * 1.01**i for i in range(72)])
    # every 24th close: 100, 100 * 1.01^24, 100 * 1.01^48
    assert daily_log_returns(csv) == pytest.approx([24 * np.log(1.01)] * 2)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"dt_s": 5400}, "dt_s"),  # 1.5 bars
        ({"start": "2021-01-01T00:00:00Z"}, "start"),  # no bar in the window
        ({"dt_s": 3600 * 48}, "dt_s"),  # one point left of 48 bars
        ({"spot0": -1.0}, "spot0"),
        ({"start": "2020-03-08"}, "start"),  # no time zone
    ],
)
def test_bad_windows_are_named(tmp_path, kwargs, field):
    csv = write_csv(tmp_path / "h.csv", [100.0] * 48)
    with pytest.raises(InputError) as err:
        historical_path(csv, **kwargs)
    assert err.value.field == field


def test_missing_bar_inside_the_window_is_an_error(tmp_path):
    csv = write_csv(tmp_path / "h.csv", [100.0] * 48, skip={30})
    with pytest.raises(PriceWindowError) as err:
        historical_path(csv)
    assert err.value.field == "file"
    assert historical_path(csv, end=T0 + 29 * 3600).spot.shape == (1, 30)  # fine before the gap


def test_fit_recovers_known_garch_parameters():
    # 4,000 days simulated from a known GARCH(1,1)-t, fitted back by maximum likelihood
    truth = GarchParams(omega_daily=2e-5, alpha=0.10, beta=0.85, nu=6.0)
    path = garch_t_paths(100.0, truth, 4000, 86400, 1, np.random.default_rng(17))
    fit = fit_garch_t(np.diff(np.log(path[0])))
    assert fit.params.alpha == pytest.approx(0.10, abs=0.04)
    assert fit.params.beta == pytest.approx(0.85, abs=0.05)
    assert fit.params.nu == pytest.approx(6.0, abs=2.0)
    assert fit.params.variance_daily == pytest.approx(truth.variance_daily, rel=0.3)
    assert fit.variance_next_daily > 0


def test_fit_needs_a_year_of_returns():
    with pytest.raises(SimulationInputError) as err:
        fit_garch_t(np.zeros(100))
    assert err.value.field == "returns_daily"


@needs_data
def test_btc_march_2020_crash_window():
    crash = historical_path(DATA / "btc-usd-1h-2020-03.csv", start="2020-03-11T23:00:00Z", end="2020-03-13T23:00:00Z")
    assert crash.spot.shape == (1, 49) and crash.dt_s == 3600
    # close of the 2020-03-11T23 bar 7934.52; lowest close 4130.64 (bar 2020-03-13T01): -47.9%
    assert crash.spot[0, 0] == 7934.52
    assert crash.spot.min() == 4130.64
    assert crash.spot.min() / crash.spot[0, 0] - 1 == pytest.approx(-0.4794, abs=1e-4)


@needs_data
@pytest.mark.parametrize(
    "name", ["btc-usd-1h-2021-05.csv", "btc-usd-1h-2022-11.csv", "eth-usd-1h-2024-08.csv", "eth-usd-1h-2025-10.csv"]
)
def test_every_hourly_window_replays_from_todays_price(name):
    path = historical_path(DATA / name, dt_s=3600, spot0=100_000.0)
    assert path.spot[0, 0] == pytest.approx(100_000.0)
    assert np.all(np.diff(path.time_s) == 3600)


@needs_data
def test_btc_daily_fit_is_fat_tailed_and_persistent():
    fit = fit_garch_t(daily_log_returns(DATA / "btc-usd-1d.csv", start="2017-01-01T00:00:00Z"))
    # crypto daily returns fit on the integrated boundary with very fat tails (nu about 3.3)
    assert fit.params.persistence == pytest.approx(1.0, abs=1e-6)
    assert 2 < fit.params.nu < 5
    hourly = garch_t_paths(100_000.0, fit.params, 24 * 7, 3600, 200, np.random.default_rng(1), fit.variance_next_daily)
    assert np.all(np.isfinite(hourly)) and np.all(hourly > 0)


SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "data"


def write_bars(path, bars, step_s=3600):
    rows = ["time,open,high,low,close,volume"]
    for i, (o, h, lo, c) in enumerate(bars):
        time = datetime.fromtimestamp(T0 + i * step_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{time},{o},{h},{lo},{c},1")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_bridge_visits_every_wick_and_each_close(tmp_path):
    # 40 bars; bar 1 rises (low first), bar 2 falls (high first), the rest flat at 100
    bars = [(100, 100, 100, 100), (100, 104, 97, 103), (103, 105, 90, 94)] + [(94, 94, 94, 94)] * 37
    csv = write_bars(tmp_path / "b.csv", bars)
    path = historical_path(csv, dt_s=600, intrabar="bridge", rng=np.random.default_rng(5))
    spot = path.spot[0]
    assert spot.shape == (1 + 39 * 6,) and path.dt_s == 600
    assert np.all(np.diff(path.time_s) == 600)
    first, second = spot[1:7], spot[7:13]  # the steps inside bars 1 and 2
    assert (first.min(), first.max()) == pytest.approx((97.0, 104.0), rel=1e-12)
    assert (second.min(), second.max()) == pytest.approx((90.0, 105.0), rel=1e-12)
    assert np.argmin(first) < np.argmax(first) and np.argmax(second) < np.argmin(second)
    assert spot[[0, 6, 12, 18]] == pytest.approx([100.0, 103.0, 94.0, 94.0], rel=1e-12)  # each bar ends on its close
    assert np.all(spot[13:] == pytest.approx(94.0))
    again = historical_path(csv, dt_s=600, intrabar="bridge", rng=np.random.default_rng(5))
    other = historical_path(csv, dt_s=600, intrabar="bridge", rng=np.random.default_rng(6))
    assert np.array_equal(again.spot, path.spot) and not np.array_equal(other.spot, path.spot)


@pytest.mark.parametrize("dt_s", [3600, 1800, 700])  # no step inside, 2 steps a bar, not a divisor
def test_bridge_needs_three_steps_a_bar(tmp_path, dt_s):
    csv = write_csv(tmp_path / "h.csv", [100.0] * 48)
    with pytest.raises(PriceWindowError) as err:
        historical_path(csv, dt_s=dt_s, intrabar="bridge", rng=np.random.default_rng(0))
    assert err.value.field == "dt_s"


def test_a_bar_whose_low_is_above_its_close_is_refused(tmp_path):
    csv = write_bars(tmp_path / "b.csv", [(100, 101, 99, 100)] * 30 + [(100, 101, 99.5, 99)])
    with pytest.raises(InputError) as err:
        historical_path(csv, dt_s=600, intrabar="bridge", rng=np.random.default_rng(0))
    assert err.value.field == "line 32"


def test_october_2025_wick_survives_the_replay():
    # 2025-10-10: the 21:00 bar trades down to 102,000 and closes at 113,451.86; the lowest close of
    # the window is 111,095.37 (bar 01:00), so closes alone miss 8% of the fall
    args = (SHIPPED / "btc-usd-1h-2025-10.csv", "2025-10-10T18:00:00Z", "2025-10-11T02:00:00Z")
    closes = historical_path(*args)
    bridged = historical_path(*args, dt_s=60, intrabar="bridge", rng=np.random.default_rng(1))
    assert closes.spot.min() == 111_095.37
    assert bridged.spot.min() == pytest.approx(102_000.0, rel=1e-12)
    assert bridged.spot.shape == (1, 1 + 8 * 60)

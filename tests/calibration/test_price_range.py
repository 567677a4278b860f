"""Dynamic price range: bounds, rate limit, response to volatility, profile output, CSV errors."""

from pathlib import Path

import numpy as np
import pytest

from margin_engine.calibration.price_range import RangeSettings, calibrate_range, ewma_sigma, rate_limited
from margin_engine.calibration.prices import read_prices
from margin_engine.calibration.profile_writer import with_price_range
from margin_engine.errors import InputError
from margin_engine.margin.profile import load_profile, parse_profile

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "btc-usd-1d.csv"


def regime_returns(seed=3, calm=0.01, storm=0.05, n=500):
    """Calm days, then a volatile stretch, then calm again: Student-t shocks (dof 4), unit variance."""
    rng = np.random.default_rng(seed)
    z = rng.standard_t(4, size=n) / np.sqrt(2.0)
    vol = np.full(n, calm)
    vol[300:360] = storm
    return z * vol


def test_ewma_recursion_by_hand():
    r = np.array([0.01] * 30 + [0.05])
    sigma = ewma_sigma(r, 0.94)
    # seed var = var(first 30) = 0; after 30 returns of 0.01: var = 0.01^2 (1 - 0.94^30)
    v30 = 1e-4 * (1 - 0.94**30)
    assert sigma[29] == pytest.approx(np.sqrt(v30))
    assert sigma[30] == pytest.approx(np.sqrt(0.94 * v30 + 0.06 * 0.05**2))


def test_rate_limit():
    out = rate_limited(np.array([0.1, 0.3, 0.3, 0.05]), 0.02)
    assert out.tolist() == pytest.approx([0.1, 0.12, 0.14, 0.12])


@pytest.mark.parametrize("model", ["ewma", "garch"])
@pytest.mark.parametrize("tail", ["student-t", "historical"])
def test_range_rises_in_stress_within_bounds_and_rate(model, tail):
    settings = RangeSettings(model=model, tail=tail, floor=0.05, cap=0.4, max_change_per_day=0.01)
    c = calibrate_range(regime_returns(), settings)
    assert np.all(c.smoothed >= 0.05 - 1e-12) and np.all(c.smoothed <= 0.4 + 1e-12)
    assert np.max(np.abs(np.diff(c.smoothed))) <= 0.01 + 1e-12
    calm, storm = c.smoothed[250:299].mean(), c.smoothed[340:365].mean()
    assert storm > 1.5 * calm  # the range follows the volatility up
    assert c.quantile > 2.33  # fatter than the normal 99% point


def test_student_t_quantile_is_fat_tailed():
    c = calibrate_range(regime_returns(), RangeSettings(model="ewma", tail="student-t", confidence=0.999))
    assert c.dof is not None and c.dof < 10
    assert c.quantile > 3.09  # the normal 99.9% point


def test_profile_with_calibrated_range_loads():
    text = with_price_range(load_profile("deribit-pm"), "BTC", 0.12345, "test")
    prof = parse_profile(text)
    grid = prof.portfolio.underlyings["BTC"]
    assert grid.price_range == 0.1235 and grid.price_step == pytest.approx(0.1235 / 4)
    assert prof.portfolio.underlyings["ETH"].price_range == 0.18  # untouched
    with pytest.raises(InputError):
        with_price_range(load_profile("deribit"), "BTC", 0.1, "no portfolio section")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("time,close\n2024-01-01T00:00:00Z,abc\n", "line 2: close"),
        ("time,close\n2024-01-01T00:00:00Z,-5\n", "line 2: close"),
        ("time,close\n2024-01-02T00:00:00Z,5\n2024-01-01T00:00:00Z,5\n", "line 3: time"),
        ("time,open\n2024-01-01T00:00:00Z,5\n", "file"),
        ("time,close\nyesterday,5\n", "line 2: time"),
    ],
)
def test_bad_csv(tmp_path, text, field):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_prices(path)
    assert info.value.field == field


def test_example_prices_give_a_plausible_btc_range():
    prices = read_prices(Path(__file__).resolve().parents[2] / "examples" / "btc-usd-1d-2023-2025.csv")
    c = calibrate_range(prices.log_returns(), RangeSettings())
    assert 0.05 <= c.recommended <= 0.3


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data is not here")
def test_real_history_range_peaks_in_march_2020():
    prices = read_prices(SHARED)
    c = calibrate_range(prices.log_returns(), RangeSettings(model="ewma", max_change_per_day=0.05))
    days = prices.time_s[1:]
    march_2020 = (days >= 1583020800) & (days < 1585699200)
    calm_2023 = (days >= 1688169600) & (days < 1690848000)  # July 2023
    assert c.smoothed[march_2020].max() > 2 * c.smoothed[calm_2023].mean()

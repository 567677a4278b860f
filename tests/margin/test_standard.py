"""Per-position formulas against hand-worked numbers from the published rules."""

import numpy as np
import pytest

from margin_engine.margin.profile import DeribitOptionParams, DeriveOptionParams
from margin_engine.margin.standard import deribit_short_option, derive_max_loss, derive_short_option, perp_requirements

DERIBIT = DeribitOptionParams()
DERIVE = DeriveOptionParams()


def test_perp_size_add_on_deribit():
    # 10 BTC at 60,000: notional 600,000; IM ratio 2% + 10 * 0.005% = 2.05% -> 12,300; MM 1.05% -> 6,300
    im, mm = perp_requirements(np.array([10.0]), np.array([60000.0]), 0.02, 0.01, 0.00005)
    assert im[0] == pytest.approx(12300.0, rel=1e-12)
    assert mm[0] == pytest.approx(6300.0, rel=1e-12)


@pytest.mark.parametrize(
    ("strike", "is_call", "mark", "im_unit", "mm_unit"),
    [
        # ATM call: max(0.15*60000 - 0, 6000) + 2500 = 11,500; MM 0.075*60000 + 2500 = 7,000
        (60000.0, True, 2500.0, 11500.0, 7000.0),
        # call 10,000 OTM: max(9000 - 10000, 6000) + 300 = 6,300; MM 4500 + 300 = 4,800
        (70000.0, True, 300.0, 6300.0, 4800.0),
        # put 10,000 OTM: max(9000 - 10000, 6000) + 200 = 6,200 >= MM 4,700; MM max(4500, 15) + 200 = 4,700
        (50000.0, False, 200.0, 6200.0, 4700.0),
        # deep ITM put, mark 140,000: MM = max(4500, 10500) + 140000 = 150,500; IM = max(9000 + 140000, 150500)
        (200000.0, False, 140000.0, 150500.0, 150500.0),
    ],
)
def test_deribit_short_option(strike, is_call, mark, im_unit, mm_unit):
    im, mm = deribit_short_option(
        np.array([60000.0]), np.array([strike]), np.array([is_call]), np.array([2.0]), np.array([mark]), DERIBIT
    )
    assert im[0] == pytest.approx(2 * im_unit, rel=1e-12)
    assert mm[0] == pytest.approx(2 * mm_unit, rel=1e-12)


@pytest.mark.parametrize(
    ("strike", "is_call", "mark", "im_unit", "mm_unit"),
    [
        # ITM call, otm 0: mult max(0.15, 0.13) = 0.15 -> 300; MM 0.09 * 2000 = 180
        (1800.0, True, 250.0, 300.0, 180.0),
        # call 10% OTM: mult max(0.15 - 0.10, 0.13) = 0.13 -> 260; MM 180
        (2200.0, True, 15.0, 260.0, 180.0),
        # put 10% OTM: IM max(260, 1.05*180 + 0.05*20 = 190) = 260; MM max(180, 0.09*20) = 180
        (1800.0, False, 20.0, 260.0, 180.0),
        # deep ITM put, mark 8000: MM max(180, 720) = 720; IM max(300, 1.05*720 + 0.05*8000 = 1156) = 1156
        (10000.0, False, 8000.0, 1156.0, 720.0),
    ],
)
def test_derive_short_option(strike, is_call, mark, im_unit, mm_unit):
    im, mm = derive_short_option(
        np.array([2000.0]), np.array([strike]), np.array([is_call]), np.array([1.0]), np.array([mark]), DERIVE
    )
    assert im[0] == pytest.approx(im_unit, rel=1e-12)
    assert mm[0] == pytest.approx(mm_unit, rel=1e-12)


def test_derive_max_loss_call_spread_is_its_width():
    # short 1500 call, long 1600 call: payoff at {0, 1500, 1600} = {0, 0, -100}; net calls 0
    loss = derive_max_loss(np.array([1500.0, 1600.0]), np.array([True, True]), np.array([-1.0, 1.0]), 1550.0, 1.2)
    assert loss == pytest.approx(-100.0)


def test_derive_max_loss_naked_short_call_adds_unpaired_forward():
    # payoff at {0, 1500} = {0, 0}; 1 net short call adds -1.2 * F = -1.2 * 2000
    loss = derive_max_loss(np.array([1500.0]), np.array([True]), np.array([-1.0]), 2000.0, 1.2)
    assert loss == pytest.approx(-2400.0)


def test_derive_max_loss_put_spread_and_straddle():
    # short 2 puts at 1500 and long 2 at 1400: payoff at 0 = -2*1500 + 2*1400 = -200, at 1400 -200, at 1500 0
    loss = derive_max_loss(np.array([1500.0, 1400.0]), np.array([False, False]), np.array([-2.0, 2.0]), 1550.0, 1.2)
    assert loss == pytest.approx(-200.0)

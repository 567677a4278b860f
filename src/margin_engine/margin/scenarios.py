"""Risk-matrix scenarios: spot multipliers x implied-vol shocks, with weights.

Deribit PM and CME SPAN both scan a grid of spot moves at vol up, unchanged and down, plus a few
extreme moves counted at a fraction; Lyra's PMRM lists its scenarios explicitly. A grid's range
is rounded up to whole steps, so widening the range only ever adds scenarios (and raises the
weight of extended moves): the requirement can never fall when the range grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from margin_engine.margin.profile import PmUnderlyingParams, PortfolioParams

VOL_CODES = {"down": -1, "none": 0, "up": 1}
VOL_NAMES = {-1: "down", 0: "none", 1: "up"}


@dataclass(frozen=True)
class ScenarioSet:
    spot_mult: np.ndarray  # price multiplier per scenario (1.16 = +16%)
    vol_shock: np.ndarray  # -1 down, 0 unchanged, +1 up
    weight: np.ndarray  # share of the scenario's P&L that counts (extended moves < 1)
    extended: np.ndarray  # True for the extended table's moves

    def __len__(self) -> int:
        return len(self.spot_mult)

    def label(self, j: int) -> str:
        kind = "extended " if self.extended[j] else ""
        return f"{kind}spot {self.spot_mult[j] - 1:+.2%}, vol {VOL_NAMES[int(self.vol_shock[j])]}"

    def describe(self, j: int) -> dict:
        return {
            "spot_shock": round(float(self.spot_mult[j] - 1), 10),
            "vol_shock": VOL_NAMES[int(self.vol_shock[j])],
            "weight": float(self.weight[j]),
            "extended": bool(self.extended[j]),
        }


def scenario_set(pm: PortfolioParams, params: PmUnderlyingParams) -> ScenarioSet:
    damp_range = None
    if params.scenarios is not None:
        mult = [m for m, _ in params.scenarios]
        vol = [VOL_CODES[v] for _, v in params.scenarios]
        weight = [1.0] * len(mult)
    else:
        assert params.price_range is not None and params.price_step is not None
        steps = math.ceil(params.price_range / params.price_step - 1e-9)
        moves = [k * params.price_step for k in range(-steps, steps + 1)]
        mult = [1 + m for m in moves for _ in (-1, 0, 1)]
        vol = [v for _ in moves for v in (-1, 0, 1)]
        weight = [1.0] * len(mult)
        damp_range = steps * params.price_step
    for move in pm.extended_moves:
        mult.append(1 + move)
        vol.append(1)
        # Dampener (our form; Deribit publishes that one exists, not its shape): an extended move
        # counts scaled back to the size of the regular range, so a linear position needs no more
        # than the range, and only what grows faster than the move (short far-OTM options) adds.
        damp = 1.0 if damp_range is None else min(1.0, damp_range / abs(move))
        weight.append(pm.extended_weight * damp)
    extended = np.arange(len(mult)) >= len(mult) - len(pm.extended_moves)
    return ScenarioSet(
        np.asarray(mult, dtype=float), np.asarray(vol, dtype=np.int8), np.asarray(weight, dtype=float), extended
    )


def shocked_vols(
    vol: np.ndarray, dte_days: np.ndarray, shocks: np.ndarray, pm: PortfolioParams, params: PmUnderlyingParams
) -> np.ndarray:
    """IV * (1 + up * m) or IV * max(0, 1 - down * m), m = (30 / DTE)^power (Deribit, Lyra)
    with power vol_power_short up to the switch and vol_power_long beyond; instruments x scenarios."""
    dte = np.maximum(dte_days, pm.min_dte_days)
    power = np.where(dte <= pm.vol_power_switch_days, pm.vol_power_short, pm.vol_power_long)
    m = (30.0 / dte) ** power
    up = 1.0 + params.vol_range_up * m
    down = np.maximum(0.0, 1.0 - params.vol_range_down * m)
    factor = np.where(shocks[None, :] > 0, up[:, None], np.where(shocks[None, :] < 0, down[:, None], 1.0))
    return vol[:, None] * factor

"""What one simulated run did to the venue, per path, from the arrays the simulator records.

Time runs along the last axis: a state (insurance fund, equity, margin, notional) has one sample per
time point, n_steps + 1 of them dt_s apart; a flow (bad debt, socialized loss, liquidations) has one
entry per step. Leading axes are paths; equity has an account axis just before time. Statistics are
in float USD: the ledger's integer units are converted when the simulator records them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from margin_engine.simulation._checks import float_array, non_negative_array, positive, same_shape
from margin_engine.simulation.errors import SimulationInputError

SUMMARY_QUANTILES = (0.01, 0.5, 0.99)


@dataclass(frozen=True)
class RunMetrics:
    """One entry per path."""

    fund_min_usd: np.ndarray
    fund_max_drawdown_usd: np.ndarray
    bad_debt_usd: np.ndarray  # deficits of bankrupt accounts beyond their own collateral
    socialized_loss_usd: np.ndarray  # the part of it charged to other depositors
    liquidation_count: np.ndarray
    liquidation_volume_usd: np.ndarray
    time_under_water_s: np.ndarray
    margin_per_notional: np.ndarray  # NaN on a path with no notional

    def summary(self) -> str:
        """Mean and quantiles across paths of each metric."""
        head = "".join(f"{f'q{q:g}':>16}" for q in SUMMARY_QUANTILES)
        lines = [f"{'metric':<24}{'mean':>16}{head}"]
        for field in fields(self):
            values = np.ravel(getattr(self, field.name)).astype(np.float64)
            values = values[~np.isnan(values)]
            stats = [np.mean(values), *np.quantile(values, SUMMARY_QUANTILES)] if values.size else [np.nan] * 4
            lines.append(f"{field.name:<24}" + "".join(f"{s:>16.6g}" for s in stats))
        return "\n".join(lines)


def fund_minimum_usd(insurance_fund_usd) -> np.ndarray:
    return np.min(float_array(insurance_fund_usd, "insurance_fund_usd"), axis=-1)


def max_drawdown_usd(insurance_fund_usd) -> np.ndarray:
    """Largest fall from a running peak: max over t of (max_{s <= t} F_s) - F_t, >= 0."""
    fund = float_array(insurance_fund_usd, "insurance_fund_usd")
    return np.max(np.maximum.accumulate(fund, axis=-1) - fund, axis=-1)


def time_under_water_s(insurance_fund_usd, equity_usd, dt_s: float) -> np.ndarray:
    """Seconds during which the insurance fund or any account's equity is below zero. A sample
    stands for the step that starts at it (left-point rule), so a run lasts n_steps * dt_s at most."""
    fund = float_array(insurance_fund_usd, "insurance_fund_usd")
    equity = float_array(equity_usd, "equity_usd", ndim_min=2)
    same_shape(equity, "equity_usd", fund.shape[:-1] + (equity.shape[-2],) + fund.shape[-1:], "insurance_fund_usd")
    below = (fund < 0) | np.any(equity < 0, axis=-2)
    return np.sum(below[..., :-1], axis=-1) * positive(dt_s, "dt_s")


def margin_per_notional(margin_required_usd, notional_usd) -> np.ndarray:
    """Capital efficiency: margin required per USD of gross notional, summed over the run (a
    notional-weighted average of the sample ratios); lower is more efficient."""
    margin = non_negative_array(margin_required_usd, "margin_required_usd")
    notional = non_negative_array(notional_usd, "notional_usd")
    same_shape(notional, "notional_usd", margin.shape, "margin_required_usd")
    total_margin, total_notional = margin.sum(axis=-1), notional.sum(axis=-1)
    return np.divide(total_margin, total_notional, out=np.full(total_margin.shape, np.nan), where=total_notional > 0)


def run_metrics(
    *,
    insurance_fund_usd,
    equity_usd,
    bad_debt_usd,
    socialized_loss_usd,
    liquidation_count,
    liquidation_volume_usd,
    margin_required_usd,
    notional_usd,
    dt_s: float,
) -> RunMetrics:
    """All metrics of a run; flows are summed over the steps of each path."""
    fund = float_array(insurance_fund_usd, "insurance_fund_usd")
    flows = {
        "bad_debt_usd": bad_debt_usd,
        "socialized_loss_usd": socialized_loss_usd,
        "liquidation_count": liquidation_count,
        "liquidation_volume_usd": liquidation_volume_usd,
    }
    totals = {}
    for name, values in flows.items():
        flow = non_negative_array(values, name)
        if flow.shape[:-1] != fund.shape[:-1]:
            raise SimulationInputError(name, f"leading shape {flow.shape[:-1]} must match the paths {fund.shape[:-1]}")
        totals[name] = flow.sum(axis=-1)
    return RunMetrics(
        fund_min_usd=fund_minimum_usd(fund),
        fund_max_drawdown_usd=max_drawdown_usd(fund),
        time_under_water_s=time_under_water_s(fund, equity_usd, dt_s),
        margin_per_notional=margin_per_notional(margin_required_usd, notional_usd),
        **totals,
    )

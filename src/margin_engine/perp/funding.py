"""Funding rates as the venues publish them: pure functions of premiums and TWAPs.

Every rate here is the fraction of notional (at the index) that longs pay shorts for one funding
payment (negative: shorts pay longs). Each venue's rule, with its source:

- **dYdX v4** (`x/perpetuals`, `FundingRateClampFactorPpm` = 600%, `DefaultFundingPpm` = 100 ppm
  per 8 h in `x/listing/types/constants.go`): premium samples of
  (max(0, impact bid - index) - max(0, index - impact ask)) / index, their mean over the funding
  tick plus the default rate as an 8-hour rate, clamped to +/- 600% x (IMF - MMF); paid every hour
  as 1/8 of the 8-hour rate.
- **Hyperliquid** (docs, "Funding"): the same premium sampled every 5 s and averaged over the hour
  (P); the 8-hour rate F = P + clamp(I - P, -0.05%, +0.05%) with I = 0.01% per 8 h; paid every
  hour as F / 8, the hourly rate capped at 4%.
- **Drift v2** (`math/amm.rs`, `state/perp_market.rs` `get_max_price_divergence_for_funding_rate`):
  (mark TWAP - oracle TWAP) clamped to the oracle TWAP / 33 (contract tiers A and B, about 3%),
  / 20 (C, 5%) or / 10 (lower tiers, 10%), divided by the oracle TWAP and by 24: an hourly rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from margin_engine.perp.errors import PerpInputError

HOURS_PER_8H = 8
DYDX_DEFAULT_RATE_8H = 100e-6  # DefaultFundingPpm = 100: 1 bp per 8 h
DYDX_CLAMP_FACTOR = 6.0  # FundingRateClampFactorPpm = 6,000,000: 600% of (IMF - MMF)
HYPERLIQUID_INTEREST_8H = 0.0001  # 0.01% per 8 h (0.00125% an hour)
HYPERLIQUID_INTEREST_CLAMP = 0.0005  # +/- 0.05%
HYPERLIQUID_HOURLY_CAP = 0.04  # 4% an hour
DRIFT_DIVERGENCE_DIVISOR = {"A": 33, "B": 33, "C": 20, "speculative": 10, "highly_speculative": 10, "isolated": 10}
DRIFT_PERIODS_PER_DAY = 24


def _finite(value: float, field: str, positive: bool = False) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise PerpInputError(field, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise PerpInputError(field, f"must be > 0, got {value!r}")
    return float(value)


def premium(impact_bid: float, impact_ask: float, index: float) -> float:
    """dYdX's and Hyperliquid's premium of one sample: how far the book's impact prices stand
    outside the index, as a fraction of it (0 while the index lies between them)."""
    bid, ask = _finite(impact_bid, "impact_bid", True), _finite(impact_ask, "impact_ask", True)
    idx = _finite(index, "index", True)
    if bid > ask:
        raise PerpInputError("impact_bid", f"the impact bid {bid} is above the impact ask {ask}")
    return (max(0.0, bid - idx) - max(0.0, idx - ask)) / idx


def _mean(samples: Sequence[float], field: str) -> float:
    if len(samples) == 0:
        raise PerpInputError(field, "no premium samples in the funding period")
    return math.fsum(_finite(s, field) for s in samples) / len(samples)


def dydx_rate_8h(premiums: Sequence[float], imf: float, mmf: float) -> float:
    """dYdX v4's 8-hour funding rate: mean premium plus 1 bp, within +/- 600% x (IMF - MMF)."""
    initial, maintenance = _finite(imf, "imf", True), _finite(mmf, "mmf", True)
    if maintenance > initial:
        raise PerpInputError("mmf", f"the maintenance fraction {mmf} exceeds the initial {imf}")
    bound = DYDX_CLAMP_FACTOR * (initial - maintenance)
    return min(max(_mean(premiums, "premiums") + DYDX_DEFAULT_RATE_8H, -bound), bound)


def dydx_rate_hourly(premiums: Sequence[float], imf: float, mmf: float) -> float:
    """What one hourly payment on dYdX v4 charges: 1/8 of the 8-hour rate."""
    return dydx_rate_8h(premiums, imf, mmf) / HOURS_PER_8H


def hyperliquid_rate_8h(premiums: Sequence[float]) -> float:
    """Hyperliquid's 8-hour rate: P + clamp(I - P, -0.05%, +0.05%)."""
    p = _mean(premiums, "premiums")
    gap = min(max(HYPERLIQUID_INTEREST_8H - p, -HYPERLIQUID_INTEREST_CLAMP), HYPERLIQUID_INTEREST_CLAMP)
    return p + gap


def hyperliquid_rate_hourly(premiums: Sequence[float]) -> float:
    """One hourly payment on Hyperliquid: the 8-hour rate / 8, within +/- 4% an hour."""
    rate = hyperliquid_rate_8h(premiums) / HOURS_PER_8H
    return min(max(rate, -HYPERLIQUID_HOURLY_CAP), HYPERLIQUID_HOURLY_CAP)


def drift_rate_hourly(mark_twap: float, oracle_twap: float, contract_tier: str = "A") -> float:
    """Drift's hourly rate: the TWAP spread clamped by the contract tier, / oracle TWAP / 24."""
    mark, oracle = _finite(mark_twap, "mark_twap", True), _finite(oracle_twap, "oracle_twap", True)
    divisor = DRIFT_DIVERGENCE_DIVISOR.get(contract_tier)
    if divisor is None:
        raise PerpInputError(
            "contract_tier",
            f"unknown Drift contract tier {contract_tier!r}; one of {', '.join(DRIFT_DIVERGENCE_DIVISOR)}",
        )
    bound = oracle / divisor
    spread = min(max(mark - oracle, -bound), bound)
    return spread / oracle / DRIFT_PERIODS_PER_DAY

"""Margin that grows with size: tiers with a maintenance deduction, open-interest-scaled initial
margin and a size premium. Pure functions of a position's notional (USD at the mark).

- **Hyperliquid** (docs, "Margin tiers"; the BTC table lists 40x from 0 and 20x from 150M USD of
  notional): a tier's maintenance rate is half its initial rate, 1 / (2 x max leverage);
  maintenance = notional x mmr_n - deduction_n, with deduction_n = deduction_{n-1} +
  lower_bound_n x (mmr_n - mmr_{n-1}), so the requirement is continuous across tiers.
- **dYdX v4** (`x/perpetuals/types/liquidity_tier.go`): IMF_eff = min(IMF + scale x (1 - IMF), 1)
  with scale = (OI - lower cap) / (upper cap - lower cap) clamped to [0, 1]; the maintenance
  requirement is the base initial requirement (unscaled) x maintenance_fraction.
- **Drift v2** (`math/margin.rs` `calculate_size_premium_liability_weight`): ratio' =
  max(ratio, 0.8 x ratio + imf_factor x sqrt(|size|)), the size in base units and imf_factor as a
  ratio per square root of a base unit (Drift's fixed-point precisions converted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from margin_engine.perp.errors import PerpInputError


@dataclass(frozen=True)
class Tier:
    lower_bound_usd: float  # notional from which this tier applies
    max_leverage: float

    @property
    def initial_ratio(self) -> float:
        return 1.0 / self.max_leverage

    @property
    def maintenance_ratio(self) -> float:
        return 0.5 / self.max_leverage  # Hyperliquid: half the initial margin at max leverage


def check_tiers(tiers: Sequence[Tier]) -> tuple[Tier, ...]:
    """Bounds rising from 0, leverage falling: the shape every venue's table has."""
    if not tiers:
        raise PerpInputError("tiers", "at least one tier, from a lower bound of 0")
    if tiers[0].lower_bound_usd != 0:
        raise PerpInputError("tiers", f"the first tier starts at 0, not {tiers[0].lower_bound_usd}")
    for i, t in enumerate(tiers):
        if not (math.isfinite(t.lower_bound_usd) and math.isfinite(t.max_leverage) and t.max_leverage >= 1):
            raise PerpInputError(f"tiers[{i}]", f"expected a finite bound and a leverage >= 1, got {t}")
        if i and not (t.lower_bound_usd > tiers[i - 1].lower_bound_usd and t.max_leverage < tiers[i - 1].max_leverage):
            raise PerpInputError(f"tiers[{i}]", "lower bounds must rise and max leverage fall from tier to tier")
    return tuple(tiers)


def _tier_index(tiers: Sequence[Tier], notional_usd: float) -> int:
    size = abs(notional_usd)
    if not math.isfinite(size):
        raise PerpInputError("notional_usd", f"expected a finite number, got {notional_usd!r}")
    return max(i for i, t in enumerate(tiers) if size >= t.lower_bound_usd)


def _deductions(tiers: Sequence[Tier], rate) -> tuple[float, ...]:
    """The recursion above on one rate of each tier: 0 for the first tier, then
    deduction_{n-1} + lower_bound_n x (rate_n - rate_{n-1}), which keeps the requirement continuous."""
    out = [0.0]
    for prev, t in zip(tiers, tiers[1:], strict=False):
        out.append(out[-1] + t.lower_bound_usd * (rate(t) - rate(prev)))
    return tuple(out)


def deductions(tiers: Sequence[Tier]) -> tuple[float, ...]:
    """Each tier's maintenance deduction (USD)."""
    return _deductions(tiers, lambda t: t.maintenance_ratio)


def initial_deductions(tiers: Sequence[Tier]) -> tuple[float, ...]:
    """The same on the initial rates (1 / max leverage): continuous initial margin."""
    return _deductions(tiers, lambda t: t.initial_ratio)


def tiered_maintenance_usd(tiers: Sequence[Tier], notional_usd: float) -> float:
    """Hyperliquid's maintenance margin of a position of this notional (a short counts its size)."""
    i = _tier_index(tiers, notional_usd)
    return abs(notional_usd) * tiers[i].maintenance_ratio - deductions(tiers)[i]


def tiered_initial_usd(tiers: Sequence[Tier], notional_usd: float) -> float:
    """The initial margin at the tier's max leverage, deducted the same way (continuous too)."""
    i = _tier_index(tiers, notional_usd)
    return abs(notional_usd) * tiers[i].initial_ratio - initial_deductions(tiers)[i]


def tiered_requirements(tiers: Sequence[Tier], notional_usd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(initial, maintenance) of many positions' notionals at once (USD, |notional|), the formulas above."""
    n = np.abs(np.asarray(notional_usd, dtype=float))
    i = np.searchsorted([t.lower_bound_usd for t in tiers], n, side="right") - 1
    imr = np.array([t.initial_ratio for t in tiers])[i]
    mmr = np.array([t.maintenance_ratio for t in tiers])[i]
    return n * imr - np.asarray(initial_deductions(tiers))[i], n * mmr - np.asarray(deductions(tiers))[i]


def dydx_initial_fraction(imf: float, open_interest_usd: float, lower_cap_usd: float, upper_cap_usd: float) -> float:
    """dYdX v4's open-interest-scaled initial margin fraction."""
    for name, v in (("imf", imf), ("open_interest_usd", open_interest_usd)):
        if not math.isfinite(v) or v < 0:
            raise PerpInputError(name, f"expected a finite number >= 0, got {v!r}")
    if not (0 <= lower_cap_usd < upper_cap_usd):
        raise PerpInputError(
            "upper_cap_usd", f"caps must satisfy 0 <= lower < upper, got {lower_cap_usd}, {upper_cap_usd}"
        )
    scale = min(max((open_interest_usd - lower_cap_usd) / (upper_cap_usd - lower_cap_usd), 0.0), 1.0)
    return min(imf + scale * (1.0 - imf), 1.0)


def drift_size_premium_ratio(ratio: float, size_base: float, imf_factor: float) -> float:
    """Drift's margin ratio with its size premium: max(r, 0.8 r + imf_factor x sqrt(|size|))."""
    if not (
        math.isfinite(ratio)
        and ratio > 0
        and math.isfinite(size_base)
        and math.isfinite(imf_factor)
        and imf_factor >= 0
    ):
        raise PerpInputError(
            "ratio", f"expected a ratio > 0, a finite size and imf_factor >= 0, got {ratio}, {size_base}, {imf_factor}"
        )
    return max(ratio, 0.8 * ratio + imf_factor * math.sqrt(abs(size_base)))

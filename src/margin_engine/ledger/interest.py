"""Interest on borrowed settlement cash, as Derive's CashAsset charges it, in integer units.

Rate model (Derive v2-core `src/assets/InterestRateModel.sol`; mainnet parameters in
`scripts/config-mainnet.sol` `getDefaultInterestRateModel`: minRate 0.02, rateMultiplier 0.08,
highRateMultiplier 0.9, optimalUtil 0.85): utilization u = borrows / supply; the yearly borrow
rate is minRate + u x rateMultiplier up to optimalUtil, and beyond it adds (u - optimalUtil) x
highRateMultiplier; interest over t seconds compounds continuously, e^(rate x t / 365 days) - 1.
Derive sends a share of it (`CASH_SM_FEE` = 0.2) to its security module; the rest goes to lenders.

`accrue` turns that into transfers that conserve every unit: each borrower pays its interest
rounded up; the fund's share of the total is rounded down; lenders get the rest pro rata to their
balances, each rounded down; what the rounding leaves goes to the fee pool.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from margin_engine.errors import InputError

SECONDS_PER_YEAR = 365 * 86_400  # Derive: 365 days


@dataclass(frozen=True)
class RateModel:
    min_rate: float = 0.02
    rate_multiplier: float = 0.08
    high_rate_multiplier: float = 0.9
    optimal_util: float = 0.85

    def __post_init__(self) -> None:
        for name in ("min_rate", "rate_multiplier", "high_rate_multiplier", "optimal_util"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):  # Derive: each parameter <= 1e18
                raise InputError(name, f"must be in [0, 1] (Derive's IRM_ParameterMustBeLessThanOne), got {value!r}")

    def borrow_rate(self, utilization: float) -> float:
        """Yearly borrow rate at this utilization (a fraction; above 1 when borrows exceed supply)."""
        if not (math.isfinite(utilization) and utilization >= 0):
            raise InputError("utilization", f"expected a finite fraction >= 0, got {utilization!r}")
        if utilization <= self.optimal_util:
            return self.min_rate + utilization * self.rate_multiplier
        normal = self.min_rate + self.optimal_util * self.rate_multiplier
        return normal + (utilization - self.optimal_util) * self.high_rate_multiplier


def utilization(borrows: int, supply: int) -> float:
    """Derive's `getUtilRate`, borrows / supply (0 without borrows), at most 1: a venue's ledger
    lets accounts owe more than others lend (the venue's own cash backs the rest), and the rate
    stays that of a pool lent out in full (22.3% a year with Derive's parameters)."""
    if borrows < 0 or supply < 0:
        raise InputError("borrows", f"borrows and supply are amounts >= 0, got {borrows}, {supply}")
    if borrows == 0:
        return 0.0
    return min(borrows / supply, 1.0) if supply > 0 else 1.0


def interest_factor(rate: float, elapsed_s: int) -> float:
    """e^(rate x t) - 1 over `elapsed_s` seconds (Derive's `getBorrowInterestFactor`)."""
    if elapsed_s < 0:
        raise InputError("elapsed_s", f"expected seconds >= 0, got {elapsed_s}")
    return math.expm1(rate * elapsed_s / SECONDS_PER_YEAR)


@dataclass(frozen=True)
class Accrual:
    """Who pays and who gets what, in settlement units; sums to zero by construction."""

    rate: float  # yearly, at the utilization before the accrual
    utilization: float
    paid: dict[str, int]  # borrower -> units it pays
    to_lenders: dict[str, int]  # lender -> units it gets
    to_fund: int
    to_fees: int  # what the rounding leaves

    @property
    def total(self) -> int:
        return sum(self.paid.values())


def accrue(balances: Mapping[str, int], model: RateModel, fund_share: float, elapsed_s: int) -> Accrual:
    """Interest over `elapsed_s` on these settlement balances (negative: a loan), at the rate of
    the utilization before it. Borrowers round up (the venue never under-charges), the fund and
    lenders round down, the fee pool takes the remainder: paid = lenders + fund + fees, exactly."""
    if not (math.isfinite(fund_share) and 0 <= fund_share <= 1):
        raise InputError("fund_share", f"expected a fraction in [0, 1], got {fund_share!r}")
    borrows = -sum(b for b in balances.values() if b < 0)
    supply = sum(b for b in balances.values() if b > 0)
    u = utilization(borrows, supply)
    rate = model.borrow_rate(u)
    factor = interest_factor(rate, elapsed_s)
    paid = {a: math.ceil(-b * factor) for a, b in balances.items() if b < 0}
    paid = {a: units for a, units in paid.items() if units > 0}
    total = sum(paid.values())
    to_fund = math.floor(total * fund_share)
    pool = total - to_fund
    lenders = {a: b for a, b in balances.items() if b > 0}
    to_lenders = {a: pool * b // supply for a, b in lenders.items()} if supply else {}
    to_lenders = {a: units for a, units in to_lenders.items() if units > 0}
    to_fees = pool - sum(to_lenders.values())
    return Accrual(rate, u, paid, to_lenders, to_fund, to_fees)

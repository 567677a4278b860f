"""The loss waterfall: who pays an account's deficit once its own collateral is gone.

1. The insurance fund, up to min(its balance, the cap per event) (Drift's per-tier cap).
2. The rest, by `WaterfallParams.mode`:
   - "adl": auto-deleveraging (dYdX, Hyperliquid). Opposite-side accounts, ranked by unrealized
     PnL ratio times leverage (Hyperliquid's ranking), are closed against the bankrupt position
     until it is matched. All of them trade at one price, the one at which the remaining deficit
     is exactly covered: each pays remaining * closed_lots / bankrupt_lots (the bankruptcy price,
     moved toward mark by what the insurance fund paid).
   - "socialized": the rest is spread over depositors' balances pro rata (Lyra's cash
     socialization, Drift's).
3. Whatever nobody can pay (an account charged beyond its equity or balance, unmatched lots) is
   reported as `uncovered_units`, never looped on: the engine decides (pause withdrawals, as Lyra).

Integer settlement smallest units throughout. Pro-rata splits use the largest-remainder method, so
the parts add up exactly: insurance + ADL + socialized + uncovered == deficit, always.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from margin_engine.errors import InvariantViolation
from margin_engine.liquidation._checks import non_negative_units, units
from margin_engine.liquidation.errors import LiquidationInputError, WaterfallInputError
from margin_engine.liquidation.params import WaterfallParams


def largest_remainder(total_units: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split `total_units` in proportion to integer weights, exactly: everyone gets the floor of
    their share, then the units left go one each to the largest remainders (ties: account id)."""
    non_negative_units(total_units, "total_units")
    for key, weight in weights.items():
        non_negative_units(weight, f"weights[{key!r}]")
    weight_total = sum(weights.values())
    if weight_total == 0:
        raise LiquidationInputError("weights", "must have a positive total")
    floors = {key: total_units * w // weight_total for key, w in weights.items()}
    left = total_units - sum(floors.values())
    by_remainder = sorted(weights, key=lambda key: (-(total_units * weights[key] % weight_total), key))
    for key in by_remainder[:left]:
        floors[key] += 1
    return floors


@dataclass(frozen=True)
class AdlCandidate:
    """An account holding the side opposite the bankrupt position, with its numbers for ranking."""

    account: str
    lots: int  # |size| in size steps (to_units(size, size_decimals)), > 0
    unrealized_pnl_units: int
    entry_notional_units: int  # |size| * entry price, > 0
    notional_units: int  # |size| * mark, > 0
    equity_units: int

    def __post_init__(self) -> None:
        for name in ("lots", "entry_notional_units", "notional_units"):
            if units(getattr(self, name), name) <= 0:
                raise LiquidationInputError(name, f"must be > 0, got {getattr(self, name)}")
        units(self.unrealized_pnl_units, "unrealized_pnl_units")
        units(self.equity_units, "equity_units")

    @property
    def score(self) -> Fraction:
        """PnL ratio times leverage: (uPnL / entry notional) * (notional / equity), exact. Equity must be > 0."""
        return Fraction(self.unrealized_pnl_units * self.notional_units, self.entry_notional_units * self.equity_units)


def adl_ranking(candidates: Sequence[AdlCandidate]) -> tuple[AdlCandidate, ...]:
    """Candidates in the order they are deleveraged: highest score first, ties by account id.
    Accounts with equity <= 0 are left out: they are being liquidated themselves."""
    solvent = (c for c in candidates if c.equity_units > 0)
    return tuple(sorted(solvent, key=lambda c: (-c.score, c.account)))


@dataclass(frozen=True)
class AdlBook:
    """The bankrupt position (in size steps) and the opposite side's accounts."""

    bankrupt_lots: int
    candidates: tuple[AdlCandidate, ...]

    def __post_init__(self) -> None:
        if units(self.bankrupt_lots, "bankrupt_lots") <= 0:
            raise LiquidationInputError("bankrupt_lots", f"must be > 0, got {self.bankrupt_lots}")
        if len({c.account for c in self.candidates}) != len(self.candidates):
            raise LiquidationInputError("candidates", "each account may appear once")


@dataclass(frozen=True)
class AdlFill:
    account: str
    closed_lots: int  # of its position, closed against the bankrupt one
    loss_units: int  # what it gives up against mark (owed: the pro-rata split rounds up in total)


@dataclass(frozen=True)
class Charge:
    account: str
    units: int  # taken from the depositor's balance


@dataclass(frozen=True)
class WaterfallResult:
    deficit_units: int
    insurance_units: int  # paid by the insurance fund
    adl: tuple[AdlFill, ...]  # in ranking order
    socialized: tuple[Charge, ...]  # sorted by account, charges > 0 only
    uncovered_units: int  # what nobody could pay

    @property
    def covered(self) -> bool:
        return self.uncovered_units == 0


def insurance_draw_units(deficit_units: int, insurance_balance_units: int, params: WaterfallParams) -> int:
    """The insurance fund pays min(deficit, balance, cap per event)."""
    return min(
        non_negative_units(deficit_units, "deficit_units"),
        non_negative_units(insurance_balance_units, "insurance_balance_units"),
        params.insurance_cap_per_event_units,
    )


def deleverage(remaining_units: int, book: AdlBook) -> tuple[tuple[AdlFill, ...], int]:
    """ADL fills covering `remaining_units`, and what stays uncovered.

    Matched lots m <= bankrupt lots q are charged ceil(remaining * m / q) in total (owed: rounded
    up), split by closed lots; an account's loss is capped at its equity, the excess uncovered.
    """
    non_negative_units(remaining_units, "remaining_units")
    closed: dict[str, int] = {}
    lots_left = book.bankrupt_lots
    for candidate in adl_ranking(book.candidates):
        if lots_left == 0:
            break
        closed[candidate.account] = min(candidate.lots, lots_left)
        lots_left -= closed[candidate.account]
    if not closed:
        return (), remaining_units
    matched = book.bankrupt_lots - lots_left
    charged = largest_remainder(-(-remaining_units * matched // book.bankrupt_lots), closed)
    equity = {c.account: c.equity_units for c in book.candidates}
    fills = tuple(AdlFill(a, lots, min(charged[a], equity[a])) for a, lots in closed.items())
    return fills, remaining_units - sum(f.loss_units for f in fills)


def socialize(remaining_units: int, balances: Mapping[str, int]) -> tuple[tuple[Charge, ...], int]:
    """Charges pro rata to depositors' balances covering `remaining_units`, and what stays uncovered:
    nobody is charged beyond their balance, so when balances fall short everyone loses it all."""
    non_negative_units(remaining_units, "remaining_units")
    for account, balance in balances.items():
        non_negative_units(balance, f"balances[{account!r}]")
    total = sum(balances.values())
    if total == 0:
        return (), remaining_units
    amounts = dict(balances) if remaining_units >= total else largest_remainder(remaining_units, balances)
    charges = tuple(Charge(a, amounts[a]) for a in sorted(amounts) if amounts[a] > 0)
    return charges, remaining_units - sum(c.units for c in charges)


def run_waterfall(
    deficit_units: int,
    insurance_balance_units: int,
    params: WaterfallParams,
    *,
    adl_book: AdlBook | None = None,
    balances: Mapping[str, int] | None = None,
) -> WaterfallResult:
    """Settle a deficit (minus the account's equity, >= 0) through the waterfall. The mode's input
    (`adl_book` for "adl", `balances` for "socialized") is needed only when the fund falls short."""
    insurance = insurance_draw_units(deficit_units, insurance_balance_units, params)
    adl: tuple[AdlFill, ...] = ()
    if deficit_units > insurance and params.mode == "adl":
        if adl_book is None:
            raise WaterfallInputError("adl_book", "ADL needs the bankrupt position and the opposite side's accounts")
        adl, _ = deleverage(deficit_units - insurance, adl_book)
    return cover_deficit(deficit_units - sum(f.loss_units for f in adl), insurance_balance_units, params, adl, balances)


def cover_deficit(
    owed_units: int,
    insurance_balance_units: int,
    params: WaterfallParams,
    adl: tuple[AdlFill, ...] = (),
    balances: Mapping[str, int] | None = None,
) -> WaterfallResult:
    """The waterfall once ADL has paid its part (`adl`, fills the engine has traded): of the
    `owed_units` left the insurance fund pays what it can, depositors (mode "socialized") the rest
    they can; what is left is uncovered. The parts are checked to add up before anyone books them."""
    insurance = insurance_draw_units(owed_units, insurance_balance_units, params)
    remaining = owed_units - insurance
    socialized: tuple[Charge, ...] = ()
    if remaining > 0 and params.mode == "socialized":
        if balances is None:
            raise WaterfallInputError("balances", "a socialized loss needs the depositors' balances")
        socialized, remaining = socialize(remaining, balances)
    adl_units = sum(f.loss_units for f in adl)
    result = WaterfallResult(owed_units + adl_units, insurance, adl, socialized, remaining)
    paid = insurance + adl_units + sum(c.units for c in socialized) + remaining
    if paid != result.deficit_units or remaining < 0 or insurance > insurance_balance_units:
        raise InvariantViolation(f"waterfall parts {paid} do not add up to the deficit {result.deficit_units}")
    return result

"""Sealed-bid batch auction: bids collected over a window and cleared together at one uniform price.

A lot is a share of a liquidated account (every position and its cash, as in the Dutch auction).
Prices are integer settlement smallest units **for the whole lot**: a bidder allocated a fraction f
of the lot pays f * price, rounded up (what a bidder owes rounds up; a negative price, for an
insolvent lot, is a payment to the bidder, rounded toward zero by the same ceiling). Fractions are
exact `fractions.Fraction`s, so allocations add up to the lot exactly.

Clearing ranks bids by price, highest first, fills whole price levels while they fit, and shares
the marginal level pro rata to the fractions bid. Everyone pays the marginal level's price. The
ranking never looks at arrival order, and a level is shared, not queued, so neither speed nor gas
bidding buys a better fill.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from itertools import groupby

from margin_engine.liquidation._checks import exact, units
from margin_engine.liquidation.errors import DuplicateBidderError, LiquidationInputError, TooManyBidsError
from margin_engine.liquidation.params import BatchParams


def _exact_fraction(value: Fraction | int | str | Decimal, field: str) -> Fraction:
    """A share of the lot, exactly: floats are refused (0.1 is not a tenth in binary)."""
    if isinstance(value, bool) or not isinstance(value, (Fraction, int, str, Decimal)):
        raise LiquidationInputError(field, f"must be a Fraction, int or decimal string, got {value!r}")
    try:
        share = Fraction(value)
    except (ValueError, ArithmeticError):
        raise LiquidationInputError(field, f"must be an exact number, got {value!r}") from None
    if not 0 < share <= 1:
        raise LiquidationInputError(field, f"must be in (0, 1], got {value}")
    return share


@dataclass(frozen=True)
class Bid:
    """A sealed bid: up to `fraction` of the lot at a price of at most `max_price_units` for the whole lot."""

    bidder: str
    fraction: Fraction
    max_price_units: int

    def __post_init__(self) -> None:
        if not isinstance(self.bidder, str) or not self.bidder:
            raise LiquidationInputError("bidder", f"must be a non-empty account id, got {self.bidder!r}")
        object.__setattr__(self, "fraction", _exact_fraction(self.fraction, "fraction"))
        units(self.max_price_units, "max_price_units")


@dataclass(frozen=True)
class Allocation:
    bidder: str
    fraction: Fraction  # of the lot
    pays_units: int  # fraction * clearing price, rounded up; negative when the bidder is paid


@dataclass(frozen=True)
class BatchClearing:
    """The outcome of one window: one price for everyone, allocations sorted by bidder."""

    clearing_price_units: int | None  # None when no bid met the reserve: nothing is sold
    allocations: tuple[Allocation, ...]
    sold_fraction: Fraction
    offered_fraction: Fraction

    @property
    def unsold_fraction(self) -> Fraction:
        return self.offered_fraction - self.sold_fraction


def window_closes_at_s(opened_at_s: int, params: BatchParams) -> int:
    """Bids received at times t with opened_at_s <= t < this count; the batch clears at this time."""
    return units(opened_at_s, "opened_at_s") + params.window_s


def lot_reserve_price_units(mtm_units: int, params: BatchParams) -> int:
    """The lowest acceptable price for the whole lot: MtM - reserve_discount * |MtM|, rounded up
    (it is what a bidder owes at least). A solvent lot sells for at least (1 - discount) MtM; an
    insolvent one is handed over for a payment of at most (1 + discount) |MtM|."""
    return -math.floor(exact(params.reserve_discount) * abs(units(mtm_units, "mtm_units")) - mtm_units)


def clear_batch(
    bids: Sequence[Bid],
    offered_fraction: Fraction | int | str | Decimal,
    reserve_price_units: int,
    params: BatchParams,
) -> BatchClearing:
    """Clear one window's sealed bids for `offered_fraction` of the lot at one uniform price."""
    offered = _exact_fraction(offered_fraction, "offered_fraction")
    units(reserve_price_units, "reserve_price_units")
    if len(bids) > params.max_bids:
        raise TooManyBidsError("bids", f"{len(bids)} bids exceed max_bids {params.max_bids}")
    seen: set[str] = set()
    for bid in bids:
        if bid.bidder in seen:
            raise DuplicateBidderError("bidder", f"{bid.bidder!r} bid twice in one window")
        seen.add(bid.bidder)

    eligible = (b for b in bids if b.max_price_units >= reserve_price_units)
    ranked = sorted(eligible, key=lambda b: (-b.max_price_units, b.bidder))  # never arrival order
    filled: dict[str, Fraction] = {}
    sold = Fraction(0)
    price: int | None = None
    for level_price, level in groupby(ranked, key=lambda b: b.max_price_units):
        level_bids = list(level)
        wanted = sum((b.fraction for b in level_bids), Fraction(0))
        price = level_price
        scale = min(Fraction(1), (offered - sold) / wanted)  # 1 while the level fits; pro rata at the margin
        filled.update({b.bidder: b.fraction * scale for b in level_bids})
        sold += wanted * scale
        if sold == offered:
            break

    allocations = tuple(
        Allocation(bidder, fraction, math.ceil(fraction * price))
        for bidder, fraction in sorted(filled.items())
        if price is not None  # always, once anyone filled
    )
    return BatchClearing(price, allocations, sold, offered)

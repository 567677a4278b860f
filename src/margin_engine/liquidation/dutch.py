"""Lyra v2 Dutch auction: the price curve, the buffer margin and what one bid moves.

Source: Lyra v2-core `src/liquidation/DutchAuction.sol` (REFERENCE.md, "Liquidation"); the formulas
are restated here. Lyra's signed-margin convention: MtM is the account's mark-to-market (the
engine's equity) and MM its maintenance *margin*, a signed surplus (equity - maintenance
requirement), negative when the account is liquidatable. An auction starts when MM < 0: solvent
when MtM > 0 (bidders pay d * MtM for the account, d falling over time), insolvent otherwise (the
insurance fund pays bidders to take the account, the payment growing over time).

The curve functions take floats in any one unit; `dutch_bid` takes integer smallest units and
returns the exact integer transfers of one bid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from margin_engine.ledger.units import ceil_units, floor_units
from margin_engine.liquidation._checks import finite, non_negative, non_negative_units, share, units
from margin_engine.liquidation.errors import AuctionEndedError, LiquidationInputError, NotLiquidatableError
from margin_engine.liquidation.params import DutchParams

Phase = Literal["solvent", "insolvent"]


def buffer_margin(mm: float, mtm: float, buffer_ratio: float) -> float:
    """The margin a solvent auction liquidates back to, below MM so that the account is not flagged
    again at the next tick: BM = MM + (MM - MtM) * bufferMarginPercentage (`_getBufferMargin`).
    MM - MtM is minus the requirement, so BM >= 0 means equity >= (1 + buffer_ratio) * requirement."""
    return finite(mm, "mm") + (mm - finite(mtm, "mtm")) * non_negative(buffer_ratio, "buffer_ratio")


def discount_at(elapsed_s: float, params: DutchParams) -> float:
    """Share of MtM a bidder pays, `elapsed_s` after the solvent auction started (`_getDiscountPercentage`):
    linear from start_discount to fast_end_discount over the fast phase, then to 0 over the slow phase."""
    t = non_negative(elapsed_s, "elapsed_s")
    if t < params.fast_duration_s:
        return params.start_discount - (params.start_discount - params.fast_end_discount) * t / params.fast_duration_s
    if t >= params.fast_duration_s + params.slow_duration_s:
        return 0.0
    return params.fast_end_discount * (1.0 - (t - params.fast_duration_s) / params.slow_duration_s)


def max_fraction(bm: float, mtm: float, discount: float, reserved: float = 0.0) -> float:
    """The largest share of the account one bid may take: just enough to bring BM back to 0, so a
    falling price never hands bidders more of the account than needed (`_getMaxProportion`).

    Taking f of the account's non-reserved part leaves BM' = BM - f (BM - R) + f (MtM - R) d, where R
    is cash earlier bidders paid in during this auction (Lyra's reservedCash, not auctioned again);
    BM' = 0 gives f = BM / (BM - MtM d - R (1 - d)), clamped to [0, 1].
    """
    if not 0 <= finite(discount, "discount") <= 1:
        raise LiquidationInputError("discount", f"must be in [0, 1], got {discount!r}")
    if finite(bm, "bm") >= 0:
        return 0.0
    denominator = bm - finite(mtm, "mtm") * discount - non_negative(reserved, "reserved") * (1.0 - discount)
    if denominator >= 0:  # taking the account does not lift BM: nothing short of all of it helps
        return 1.0
    return min(max(bm / denominator, 0.0), 1.0)


def solvent_bid_price(mtm: float, discount: float, reserved: float = 0.0) -> float:
    """What a bidder pays for the whole non-reserved account: (MtM - R) * d (`_getSolventAuctionBidPrice`)."""
    return (finite(mtm, "mtm") - non_negative(reserved, "reserved")) * finite(discount, "discount")


def insolvent_payment(mtm: float, mm: float, elapsed_s: float, params: DutchParams) -> float:
    """What the insurance fund pays a bidder to take the whole insolvent account: from |MtM| (MtM
    capped at 0) growing linearly to |MM| over the insolvent phase (`_getInsolventAuctionBidPrice`,
    whose negative bid price is minus this payment). Starting at |MtM| pays only the account's
    deficit; ending at |MM| pays the bidder the requirement too, so an insolvent auction still clears."""
    mtm_capped = min(finite(mtm, "mtm"), 0.0)
    if finite(mm, "mm") >= 0:
        return 0.0
    progress = min(non_negative(elapsed_s, "elapsed_s") / params.insolvent_duration_s, 1.0)
    return -mtm_capped + (mtm_capped - mm) * progress


@dataclass(frozen=True)
class AuctionAccount:
    """An account under auction, in Lyra's signed convention and settlement smallest units."""

    mm_units: int  # maintenance margin: equity - maintenance requirement (< 0 when liquidatable)
    mtm_units: int  # mark-to-market: the engine's equity
    reserved_units: int = 0  # cash bidders paid in during this auction: part of MtM, never sold again

    def __post_init__(self) -> None:
        units(self.mm_units, "mm_units")
        units(self.mtm_units, "mtm_units")
        non_negative_units(self.reserved_units, "reserved_units")
        if self.mm_units > self.mtm_units:
            raise LiquidationInputError("mm_units", "must be <= mtm_units (a requirement is never negative)")

    @classmethod
    def from_engine(cls, equity_units: int, maintenance_units: int, reserved_units: int = 0) -> AuctionAccount:
        """From the engine's convention (docs/model.md): MtM = equity, MM = equity - requirement."""
        non_negative_units(maintenance_units, "maintenance_units")
        return cls(units(equity_units, "equity_units") - maintenance_units, equity_units, reserved_units)


def start_phase(account: AuctionAccount) -> Phase:
    """The phase an auction starts in (`_startAuction`): solvent while the account is worth something."""
    if account.mm_units >= 0:
        raise NotLiquidatableError("mm_units", f"maintenance margin {account.mm_units} >= 0: no auction")
    return "solvent" if account.mtm_units > 0 else "insolvent"


def can_terminate(account: AuctionAccount, phase: Phase, elapsed_s: float, params: DutchParams) -> bool:
    """Whether the auction ends now (`getAuctionStatus`): an insolvent one, or a solvent one past its
    slow phase, once MM >= 0; a solvent one once BM >= 0, or when MtM no longer covers the reserved
    cash (the engine then restarts it, insolvent if MM is still < 0)."""
    over = non_negative(elapsed_s, "elapsed_s") >= params.fast_duration_s + params.slow_duration_s
    if phase == "insolvent" or over:
        return account.mm_units >= 0
    if account.mtm_units < 0 or account.reserved_units >= account.mtm_units:
        return True
    return buffer_margin(account.mm_units, account.mtm_units, params.buffer_margin_ratio) >= 0


@dataclass(frozen=True)
class DutchFill:
    """What one bid moves, in settlement smallest units. The bidder receives `fraction` of every
    position and of the account's non-reserved cash; the engine books these transfers."""

    fraction: float  # of the account's non-reserved part: the bid's, capped at the maximum when solvent
    bidder_pays_units: int  # bidder -> liquidated account (solvent; bidder owes: rounded up)
    insurance_fee_units: int  # bidder -> insurance fund: insurance_share of the bidder's discount (rounded up)
    insurance_pays_units: int  # insurance fund -> bidder (insolvent; received: rounded down)
    bidder_cash_required_units: int  # cash the bidder must hold for the bid (`_ensureBidderCashBalance`)
    terminates: bool  # the bid restores the buffer margin (solvent) or takes the whole account (insolvent)


def dutch_bid(
    account: AuctionAccount, fraction: float, elapsed_s: float, phase: Phase, params: DutchParams
) -> DutchFill:
    """One bid for `fraction` of the account, `elapsed_s` after the phase started (Lyra's `bid`)."""
    share(fraction, "fraction")
    if phase not in ("solvent", "insolvent"):
        raise LiquidationInputError("phase", f"expected 'solvent' or 'insolvent', got {phase!r}")
    if can_terminate(account, phase, elapsed_s, params):
        raise AuctionEndedError("elapsed_s", "the auction can terminate: end it (and restart it if MM < 0)")
    if phase == "insolvent":
        return _insolvent_bid(account, fraction, elapsed_s, params)
    return _solvent_bid(account, fraction, elapsed_s, params)


def _solvent_bid(account: AuctionAccount, fraction: float, elapsed_s: float, params: DutchParams) -> DutchFill:
    d = discount_at(elapsed_s, params)
    if d == 0:
        raise AuctionEndedError("elapsed_s", "the solvent auction's price has reached 0: restart it as insolvent")
    mtm, reserved = float(account.mtm_units), float(account.reserved_units)
    bm = buffer_margin(account.mm_units, mtm, params.buffer_margin_ratio)
    # Lyra's mtmCutoff: a small account may be taken whole, a partial step would leave dust
    f_max = 1.0 if account.mtm_units < params.small_account_cutoff_units else max_fraction(bm, mtm, d, reserved)
    taken = min(fraction, f_max)
    pays = ceil_units(taken * solvent_bid_price(mtm, d, reserved), 0)
    # the bidder's discount is the value taken less the price: f (MtM - R) (1 - d)
    fee = ceil_units(params.insurance_share * taken * (mtm - reserved) * (1.0 - d), 0)
    buffer_cover = ceil_units(taken * abs(bm - reserved), 0)
    return DutchFill(taken, pays, fee, 0, pays + fee + buffer_cover, fraction >= f_max)


def _insolvent_bid(account: AuctionAccount, fraction: float, elapsed_s: float, params: DutchParams) -> DutchFill:
    payment = insolvent_payment(account.mtm_units, account.mm_units, elapsed_s, params)
    received = floor_units(fraction * payment, 0)
    required = max(ceil_units(fraction * abs(account.mm_units), 0) - received, 0)
    return DutchFill(fraction, 0, 0, received, required, fraction == 1.0)

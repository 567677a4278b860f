"""Liquidation maths: pure functions the engine calls from its liquidation commands.

One module per mechanism: `fixed` (Deribit's fixed penalty), `dutch` (Lyra v2's Dutch auction),
`batch` (sealed bids cleared at one uniform price); `partial` (how much to close), `waterfall` (who
pays a deficit), `ranking` (which account first), `params` (their parameters with venue defaults).
"""

from .batch import Allocation, BatchClearing, Bid, clear_batch, lot_reserve_price_units, window_closes_at_s
from .dutch import (
    AuctionAccount,
    DutchFill,
    Phase,
    buffer_margin,
    can_terminate,
    discount_at,
    dutch_bid,
    insolvent_payment,
    max_fraction,
    solvent_bid_price,
    start_phase,
)
from .errors import (
    AuctionEndedError,
    DuplicateBidderError,
    LiquidationInputError,
    NotLiquidatableError,
    TooManyBidsError,
    WaterfallInputError,
)
from .fixed import FixedTransfers, liquidation_price, penalty_transfers
from .params import (
    BatchParams,
    DutchParams,
    FixedParams,
    LiquidationParams,
    PartialParams,
    WaterfallParams,
    parse_liquidation_params,
)
from .partial import (
    apply_small_account_cutoff,
    close_fraction,
    close_order,
    close_size,
    perp_close_fraction,
)
from .ranking import health_ratio, liquidation_order
from .waterfall import (
    AdlBook,
    AdlCandidate,
    AdlFill,
    Charge,
    WaterfallResult,
    adl_ranking,
    deleverage,
    insurance_draw_units,
    largest_remainder,
    run_waterfall,
    socialize,
)

__all__ = [
    "AdlBook",
    "AdlCandidate",
    "AdlFill",
    "Allocation",
    "AuctionAccount",
    "AuctionEndedError",
    "BatchClearing",
    "BatchParams",
    "Bid",
    "Charge",
    "DuplicateBidderError",
    "DutchFill",
    "DutchParams",
    "FixedParams",
    "FixedTransfers",
    "LiquidationInputError",
    "LiquidationParams",
    "NotLiquidatableError",
    "PartialParams",
    "Phase",
    "TooManyBidsError",
    "WaterfallInputError",
    "WaterfallParams",
    "WaterfallResult",
    "adl_ranking",
    "apply_small_account_cutoff",
    "buffer_margin",
    "can_terminate",
    "clear_batch",
    "close_order",
    "close_size",
    "deleverage",
    "discount_at",
    "dutch_bid",
    "health_ratio",
    "insolvent_payment",
    "insurance_draw_units",
    "largest_remainder",
    "close_fraction",
    "liquidation_order",
    "liquidation_price",
    "lot_reserve_price_units",
    "max_fraction",
    "parse_liquidation_params",
    "penalty_transfers",
    "perp_close_fraction",
    "run_waterfall",
    "socialize",
    "solvent_bid_price",
    "start_phase",
    "window_closes_at_s",
]

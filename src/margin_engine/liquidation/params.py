"""Liquidation parameters: one frozen model per mechanism, with the venues' published defaults.

Like the margin profiles, these are plain data read from TOML or JSON (`parse_liquidation_params`),
validated once at the boundary so the maths below can trust them. Amounts booked on the ledger are
integers in the settlement asset's smallest units (`_units`); the defaults assume USDC (6 decimals),
the settlement asset of every packaged profile. Ratios are fractions (0.0075 = 0.75%).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from margin_engine.liquidation.errors import LiquidationInputError

USDC_UNITS = 10**6  # one USDC in smallest units, for the defaults below


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)  # no "1" for 1, no true for 1


class FixedParams(_Frozen):
    """A liquidator takes the position at mark -/+ a fixed penalty of notional (Deribit: BTC 0.75%,
    ETH 0.9%); `insurance_share` of the penalty goes to the insurance fund, the rest to the liquidator."""

    penalty_ratio: float = Field(default=0.0075, gt=0, le=0.5)
    insurance_share: float = Field(default=0.5, ge=0, le=1)


class DutchParams(_Frozen):
    """Lyra v2 Dutch auction (v2-core `src/liquidation/DutchAuction.sol`, mainnet `AuctionParams`).

    The "discount" d is Lyra's name for the share of mark-to-market a bidder pays: it falls from
    `start_discount` to `fast_end_discount` over the fast phase, then to 0 over the slow phase.
    """

    start_discount: float = Field(default=0.95, gt=0, le=1)  # startingMtMPercentage
    fast_end_discount: float = Field(default=0.70, ge=0, le=1)  # fastAuctionCutoffPercentage
    fast_duration_s: int = Field(default=15 * 60, gt=0, le=7 * 86_400)
    slow_duration_s: int = Field(default=12 * 3_600, gt=0, le=30 * 86_400)
    insolvent_duration_s: int = Field(default=60 * 60, gt=0, le=7 * 86_400)
    buffer_margin_ratio: float = Field(default=0.15, ge=0, le=4)  # bufferMarginPercentage, capped at 400% by Lyra
    insurance_share: float = Field(default=0.10, ge=0, le=1)  # of the bidder's discount (REFERENCE: 10%)
    # Below this mark-to-market a bidder may take the whole account (Lyra's mtmCutoff, which it caps at 1,000 USD).
    small_account_cutoff_units: int = Field(default=100 * USDC_UNITS, ge=0)

    @model_validator(mode="after")
    def _falling(self) -> DutchParams:
        if self.fast_end_discount > self.start_discount:
            raise ValueError("fast_end_discount must be <= start_discount (the price only falls)")
        return self


class BatchParams(_Frozen):
    """Sealed bids collected over `window_s` and cleared together at one uniform price.

    The reserve price of a lot is its mark-to-market less `reserve_discount` of |MtM|: the protocol
    sells a solvent lot for at least (1 - reserve_discount) MtM and pays at most (1 + reserve_discount)
    |MtM| to hand over an insolvent one. The default matches the floor of Lyra's fast phase (0.70).
    """

    window_s: int = Field(default=10, gt=0, le=3_600)
    reserve_discount: float = Field(default=0.30, ge=0, le=1)
    max_bids: int = Field(default=100, gt=0, le=10_000)


class PartialParams(_Frozen):
    """How much to close: enough that equity >= (1 + buffer_ratio) * maintenance afterwards (Drift's
    2% liquidation buffer of the requirement); accounts smaller than the cutoff are closed whole."""

    buffer_ratio: float = Field(default=0.02, ge=0, le=4)
    small_account_cutoff_units: int = Field(default=100 * USDC_UNITS, ge=0)  # of gross notional


class WaterfallParams(_Frozen):
    """Who pays a deficit: the insurance fund up to a cap per event (Drift's per-tier cap), then
    either auto-deleveraging of the opposite side (dYdX, Hyperliquid) or a loss socialized over
    depositors' balances (Lyra, Drift)."""

    insurance_cap_per_event_units: int = Field(default=1_000_000 * USDC_UNITS, ge=0)
    mode: Literal["adl", "socialized"] = "socialized"


class LiquidationParams(_Frozen):
    """The mechanism in use and every mechanism's parameters."""

    mechanism: Literal["fixed", "dutch", "batch"] = "dutch"
    max_accounts_per_tick: int = Field(default=1_000, gt=0, le=1_000_000)  # liquidations started per tick
    fixed: FixedParams = FixedParams()
    dutch: DutchParams = DutchParams()
    batch: BatchParams = BatchParams()
    partial: PartialParams = PartialParams()
    waterfall: WaterfallParams = WaterfallParams()


def parse_liquidation_params(data: Mapping[str, Any]) -> LiquidationParams:
    """Validated parameters from a TOML/JSON mapping; the first problem is reported with its field."""
    try:
        return LiquidationParams.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LiquidationInputError(f"liquidation.{where}" if where else "liquidation", first["msg"]) from None

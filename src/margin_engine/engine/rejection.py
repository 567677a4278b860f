"""Rejections: an expected outcome of a command, with a reason code and the numbers behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from margin_engine.ledger.units import format_units
from margin_engine.oracle.aggregator import OracleStatus, RejectReason

# Every code a command may be rejected with (docs/formats.md explains each; a test keeps the
# three in step with the handlers' source).
REASON_CODES = (
    "unknown_account",
    "account_exists",
    "wrong_mode",
    "mode_unavailable",
    "no_market",
    "time_unset",
    "time_backwards",
    "clock_step_too_large",
    "instrument_expired",
    "not_expired",
    "already_settled",
    "no_position",
    "too_many_positions",
    "insufficient_balance",
    "insufficient_margin",
    "withdrawals_gated",
    "balance_limit",
    "duplicate_reference",
    "unknown_withdrawal",
    "price_out_of_band",
    "notional_limit",
    "not_liquidatable",
    "auction_active",
    "unknown_auction",
    "auction_ended",
    "auction_closed",
    "price_above_limit",
    "liquidator_required",
    "self_liquidation",
    "duplicate_bid",
    "too_many_bids",
    "max_price_required",
    "insurance_insufficient",
    "unknown_source",
    "unsigned",
    "bad_signature",
    "underlying_not_allowed",
    "source_exists",
    "duplicate_key",
    "sources_limit",
    "source_in_profile",
    "open_interest_cap",
    "position_limit",
    "borrow_cap",
    "isolated_market",
    "reduce_only",
    *(f"oracle_{r}" for r in RejectReason),  # the guards refused the update
    *(f"oracle_{s}" for s in (OracleStatus.stale, OracleStatus.halted)),  # the mark is blocked (fail closed)
)


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    account: str | None = None
    needed: int | None = None  # smallest units of `asset`
    available: int | None = None
    asset: str | None = None
    decimals: int | None = None
    # a size limit (open interest, position): the cap, what is there now and what the command asks
    # for, as decimals of `unit` (base units of an underlying)
    cap: str | None = None
    current: str | None = None
    requested: str | None = None
    unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "rejected", "code": self.code, "message": self.message}
        if self.account is not None:
            out["account"] = self.account
        if self.needed is not None and self.decimals is not None:
            out["needed"] = format_units(self.needed, self.decimals)
            out["available"] = format_units(self.available or 0, self.decimals)
            out["asset"] = self.asset
            out["needed_units"] = self.needed
            out["available_units"] = self.available or 0
        if self.cap is not None:
            out.update(cap=self.cap, current=self.current, requested=self.requested, unit=self.unit)
        return out

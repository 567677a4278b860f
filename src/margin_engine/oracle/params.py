"""Oracle guard parameters: how old, how uncertain, how far and how fast a price may be.

Defaults follow Drift v2 (`state/state.rs` `OracleGuardRails::default`: stale for margin after 120
slots ~ 60 s, confidence <= 2% of price, mark vs oracle divergence 10%, a 5-minute TWAP) and Lyra v2
(`src/feeds/BaseLyraFeed.sol`: signed pushes, a heartbeat, no timestamp in the future). The circuit
breaker is tighter than Drift's "too volatile" 5x: see docs/oracle.md for why each value.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from margin_engine.errors import InputError


class OracleParams(BaseModel):
    """One underlying's oracle guards. Ratios are fractions of price (0.02 = 2%), times whole seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)  # no "1" for 1, no true for 1

    staleness_s_max: int = Field(default=60, gt=0)  # a source older than this is not fresh (Drift ~60 s)
    future_skew_s_max: int = Field(default=5, ge=0)  # a timestamp this far past the receiver's clock is allowed
    sources_min: int = Field(default=2, gt=0)  # fewer agreeing fresh sources: degraded
    sources_max: int = Field(default=16, gt=0)  # bound on distinct sources per underlying
    confidence_ratio_max: float = Field(default=0.02, gt=0, lt=1)  # wider band: update rejected (Drift 2%)
    degraded_confidence_ratio: float = Field(default=0.005, gt=0, lt=1)  # wider median band: degraded
    deviation_ratio_max: float = Field(default=0.10, gt=0, lt=1)  # a source this far from the TWAP is ignored
    jump_ratio_max: float = Field(default=0.05, gt=0, lt=1)  # the mark moves at most this per update interval
    update_interval_s: int = Field(default=10, gt=0)  # the interval jump_ratio_max is per
    twap_window_s: int = Field(default=300, gt=0)  # TWAP and VWAP window (Drift's 5-minute TWAP)
    ema_halflife_s: int = Field(default=60, gt=0)
    halt_move_ratio: float = Field(default=0.5, gt=0)  # sources' median max/min beyond 1 + this: halted
    halt_window_s: int = Field(default=300, gt=0)  # ... within this window

    @model_validator(mode="after")
    def _consistent(self) -> OracleParams:
        if self.degraded_confidence_ratio > self.confidence_ratio_max:
            raise ValueError(
                "degraded_confidence_ratio must be <= confidence_ratio_max (degraded comes before rejected)"
            )
        if self.sources_min > self.sources_max:
            raise ValueError("sources_min must be <= sources_max")
        if self.staleness_s_max < self.update_interval_s:
            raise ValueError("staleness_s_max must be >= update_interval_s, or sources go stale between updates")
        if self.twap_window_s < self.update_interval_s:
            raise ValueError("twap_window_s must be >= update_interval_s, or the TWAP is just the last mark")
        return self


def parse_oracle_params(data: dict[str, Any], field: str = "oracle") -> OracleParams:
    """Parameters from a mapping (a profile's TOML table), with errors naming the parameter."""
    try:
        return OracleParams.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in (field, *error["loc"]))
        raise InputError(where, error["msg"]) from None

"""What the margin maths reads of an account: balances and positions, no engine state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from margin_engine.instruments.names import Instrument

MarginMode = Literal["isolated", "cross", "portfolio"]
MARGIN_MODES: tuple[MarginMode, ...] = ("isolated", "cross", "portfolio")


@dataclass(frozen=True)
class PositionView:
    """A position; `quote_units` is a perp's virtual cash (minus its entry notional), in
    settlement units; `allocation_units` the collateral an isolated position holds."""

    instrument: Instrument
    size: Decimal
    quote_units: int = 0
    allocation_units: int = 0


@dataclass(frozen=True)
class AccountView:
    id: str
    mode: MarginMode
    balances: Mapping[str, int]  # free balances by asset, in smallest units
    positions: tuple[PositionView, ...] = field(default=())

"""Oracle guards: a mark price that a flash spike, a stale feed or one bad source cannot move.

Pure maths, no I/O but the feed file reader: `apply_update` on each source's update, `mark_at` as
time passes. See docs/oracle.md.
"""

from margin_engine.oracle.aggregator import (
    Mark,
    OracleState,
    OracleStatus,
    Outcome,
    PriceUpdate,
    RejectReason,
    TimeWentBack,
    UnderlyingMismatch,
    apply_update,
    mark_at,
)
from margin_engine.oracle.params import OracleParams, parse_oracle_params

__all__ = [
    "Mark",
    "OracleParams",
    "OracleState",
    "OracleStatus",
    "Outcome",
    "PriceUpdate",
    "RejectReason",
    "TimeWentBack",
    "UnderlyingMismatch",
    "apply_update",
    "mark_at",
    "parse_oracle_params",
]

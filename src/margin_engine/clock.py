"""Times as the engine takes them: whole Unix seconds, UTC, within a range that catches unit errors.

A leaf module (it imports nothing of the engine), so that files, the oracle, calibration and the
simulator read times by the same rule as commands do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from margin_engine.errors import InputError

# 2009-01-03T00:00:00Z (Bitcoin's first block) to 2200-01-01T00:00:00Z: nothing this engine margins
# happened before, and a time beyond is a unit error, such as milliseconds (1795593600000).
TIME_MIN_S = 1_230_940_800
TIME_MAX_S = 7_258_118_400


def parse_time(value: object, field: str) -> int:
    """ISO 8601 with a zone (`2026-11-25T08:00:00Z`) or Unix seconds, to Unix seconds in range."""
    if isinstance(value, int) and not isinstance(value, bool):
        return check_time(value, field)
    if not isinstance(value, str) or len(value) > 40:
        raise InputError(field, f"expected an ISO 8601 time like 2026-11-25T08:00:00Z, got {value!r}"[:160])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(field, f"expected an ISO 8601 time like 2026-11-25T08:00:00Z, got {value!r}") from None
    if moment.tzinfo is None:
        raise InputError(field, f"time {value!r} needs a zone, e.g. a trailing Z for UTC")
    return check_time(int(moment.astimezone(UTC).timestamp()), field)


def check_time(seconds: int, field: str) -> int:
    """Unix seconds within [TIME_MIN_S, TIME_MAX_S]; a millisecond or microsecond epoch says so."""
    if TIME_MIN_S <= seconds <= TIME_MAX_S:
        return seconds
    for unit, scale in (("milliseconds", 10**3), ("microseconds", 10**6), ("nanoseconds", 10**9)):
        if TIME_MIN_S <= seconds // scale <= TIME_MAX_S:
            raise InputError(
                field, f"{seconds} looks like Unix {unit}; send seconds ({seconds // scale}) or an ISO 8601 time"
            )
    raise InputError(
        field, f"Unix seconds must lie between {format_time(TIME_MIN_S)} and {format_time(TIME_MAX_S)}, got {seconds}"
    )


def format_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

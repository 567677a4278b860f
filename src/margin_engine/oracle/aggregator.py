"""The guarded mark of one underlying: a price that a flash spike, a stale feed or one bad source cannot move.

Pure functions over an immutable `OracleState`. Time comes in as `now_s`, the receiver's clock (the
engine's), never from the updates alone: a feed's own timestamps cannot tell it is in the future.

- `apply_update(state, update, params, now_s)` checks one source's update (`invalid`, `future`,
  `replayed`, `low_confidence`, `too_many_sources`), keeps it as that source's latest, and
  re-evaluates the mark at `now_s`. A rejected update changes nothing.
- `mark_at(state, now_s, params)` re-evaluates the mark later without an update: sources go stale.

The mark at `now_s`: the median of the fresh sources (age <= staleness_s_max), leaving out those
farther than deviation_ratio_max from the TWAP unless they are the majority (then the TWAP is what
lags a real move, and the median of all is followed); then the jump limit, a rate limit of
jump_ratio_max per update_interval_s from the mark at the previous second. Stale or halted, the
mark holds its last value. Drift v2 `math/oracle.rs` and Lyra v2 `src/feeds/` are the models.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import StrEnum

from margin_engine.errors import InputError
from margin_engine.oracle.averages import Point, VolumeReport, ema, median, twap, vwap, with_point
from margin_engine.oracle.params import OracleParams

UNDERLYING_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")  # as instruments/names.py
SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}$")  # no space, '=' or newline: see signing.py


class OracleStatus(StrEnum):
    ok = "ok"  # enough fresh sources agree, the mark is where they are
    degraded = "degraded"  # usable with care: few sources, wide confidence, or the mark lags (jump limit)
    stale = "stale"  # no fresh source: the mark holds its last value
    halted = "halted"  # circuit breaker: the sources' median moved absurdly, the mark holds its last value


class RejectReason(StrEnum):
    invalid = "invalid"  # price <= 0 or not finite; confidence or volume negative or not finite
    future = "future"  # timestamp beyond the receiver's clock + future_skew_s_max
    replayed = "replayed"  # timestamp not after this source's last accepted one (Lyra ignores these too)
    low_confidence = "low_confidence"  # confidence band wider than confidence_ratio_max of price (Drift)
    too_many_sources = "too_many_sources"  # a new source beyond sources_max


class UnderlyingMismatch(InputError):
    """An update for another underlying than the state's: a routing bug of the caller."""


class TimeWentBack(InputError):
    """`now_s` earlier than a time the state has already seen."""


@dataclass(frozen=True)
class PriceUpdate:
    """One source's price of an underlying: USD per unit, +/- confidence in USD (as Pyth), optional volume."""

    underlying: str
    source: str
    price: float
    confidence: float | None
    timestamp_s: int
    volume: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.underlying, str) or not UNDERLYING_RE.match(self.underlying):
            raise InputError("underlying", f"expected 2-10 characters [A-Z0-9] such as BTC, got {self.underlying!r}")
        if not isinstance(self.source, str) or not SOURCE_RE.match(self.source):
            raise InputError("source", f"expected 1-64 characters [A-Za-z0-9_.:/-], got {self.source!r}")
        if not isinstance(self.timestamp_s, int) or isinstance(self.timestamp_s, bool) or self.timestamp_s < 0:
            raise InputError("timestamp_s", f"expected Unix seconds >= 0, got {self.timestamp_s!r}")
        for name in ("price", "confidence", "volume"):
            value = getattr(self, name)
            if value is None and name != "price":
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InputError(name, f"expected a number, got {value!r}")
            object.__setattr__(self, name, float(value))  # values are checked for sense by apply_update


@dataclass(frozen=True)
class Mark:
    """The guarded mark at `time_s` with its averages, and why it has its status.

    `price` (and the averages) are None only while no source has ever been fresh. `jump_limited`
    says the jump limit held the mark short of the sources' median.
    """

    price: float | None
    twap: float | None
    ema: float | None
    vwap: float | None
    status: OracleStatus
    reason: str
    sources_used: tuple[str, ...]
    time_s: int
    jump_limited: bool = False


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    reason: RejectReason | None  # None when accepted
    message: str  # why it was rejected; empty when accepted
    mark: Mark  # the mark at the receiver's clock after this update (unchanged state when rejected)


@dataclass(frozen=True)
class OracleState:
    """One underlying's oracle: bounded histories, only what the windows need."""

    underlying: str
    clock_s: int | None = None  # the latest now_s an accepted update was applied at
    quotes: tuple[PriceUpdate, ...] = ()  # latest accepted update per source, by source name
    mark: Mark | None = None
    marks: tuple[Point, ...] = ()  # mark history (a step function) covering twap_window_s
    base: Point | None = None  # the mark before the current mark's second: what a same-second revision is limited from
    ema: float | None = None  # EMA of the marks up to the last point of `marks`
    medians: tuple[Point, ...] = ()  # raw median of the fresh sources, covering halt_window_s
    reports: tuple[VolumeReport, ...] = ()  # reports with volume within twap_window_s

    def quote(self, source: str) -> PriceUpdate | None:
        return next((q for q in self.quotes if q.source == source), None)


def apply_update(
    state: OracleState, update: PriceUpdate, params: OracleParams, now_s: int
) -> tuple[OracleState, Outcome]:
    """Check one update received at `now_s` (the engine's clock) and re-evaluate the mark at `now_s`."""
    if update.underlying != state.underlying:
        raise UnderlyingMismatch(
            "underlying", f"update for {update.underlying} applied to the {state.underlying} oracle"
        )
    _check_clock(state, now_s)
    rejection = _rejection(state, update, params, now_s)
    if rejection is not None:
        reason, message = rejection
        return state, Outcome(False, reason, message, _evaluate(state, now_s, params)[0])
    quotes = tuple(sorted([q for q in state.quotes if q.source != update.source] + [update], key=lambda q: q.source))
    reports = state.reports
    if update.volume:
        reports = (*reports, VolumeReport(update.timestamp_s, update.price, update.volume))
    state = replace(state, quotes=quotes, reports=reports)
    mark, raw_median = _evaluate(state, now_s, params)
    return _record(state, mark, raw_median, now_s, params), Outcome(True, None, "", mark)


def mark_at(state: OracleState, now_s: int, params: OracleParams) -> Mark:
    """The mark re-evaluated at `now_s` without a new update (sources age, the circuit breaker's window slides)."""
    _check_clock(state, now_s)
    return _evaluate(state, now_s, params)[0]


def _check_clock(state: OracleState, now_s: int) -> None:
    if not isinstance(now_s, int) or isinstance(now_s, bool):
        raise TimeWentBack("now_s", f"expected Unix seconds, got {now_s!r}")
    if state.clock_s is not None and now_s < state.clock_s:
        raise TimeWentBack("now_s", f"{now_s} is before {state.clock_s}, already seen by the {state.underlying} oracle")


def _rejection(
    state: OracleState, update: PriceUpdate, params: OracleParams, now_s: int
) -> tuple[RejectReason, str] | None:
    if not (math.isfinite(update.price) and update.price > 0):
        return RejectReason.invalid, f"price must be finite and > 0, got {update.price!r}"
    for name, value in (("confidence", update.confidence), ("volume", update.volume)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            return RejectReason.invalid, f"{name} must be finite and >= 0, got {value!r}"
    if update.timestamp_s > now_s + params.future_skew_s_max:
        return RejectReason.future, (
            f"timestamp {update.timestamp_s} is {update.timestamp_s - now_s} s after the clock {now_s} "
            f"(future_skew_s_max {params.future_skew_s_max} s)"
        )
    last = state.quote(update.source)
    if last is not None and update.timestamp_s <= last.timestamp_s:
        return RejectReason.replayed, (
            f"timestamp {update.timestamp_s} is not after {update.source}'s last accepted {last.timestamp_s}"
        )
    if update.confidence is not None and update.confidence > params.confidence_ratio_max * update.price:
        return RejectReason.low_confidence, (
            f"confidence +/-{update.confidence:.8g} is {update.confidence / update.price:.2%} of price, "
            f"max {params.confidence_ratio_max:.2%}"
        )
    if last is None and len(state.quotes) >= params.sources_max:
        return (
            RejectReason.too_many_sources,
            f"{state.underlying} already has {params.sources_max} sources (sources_max)",
        )
    return None


def _evaluate(state: OracleState, now_s: int, params: OracleParams) -> tuple[Mark, float | None]:
    """The mark at `now_s` and the raw median of the fresh sources (None when none is fresh)."""
    last = state.marks[-1] if state.marks else None

    def held(status: OracleStatus, reason: str) -> Mark:
        return _mark(state, now_s, params, None if last is None else last.price, status, reason)

    if not state.quotes:
        return held(OracleStatus.stale, "no accepted update yet"), None
    fresh = [q for q in state.quotes if now_s - q.timestamp_s <= params.staleness_s_max]
    if not fresh:
        newest = max(state.quotes, key=lambda q: q.timestamp_s)
        age_s = now_s - newest.timestamp_s
        reason = f"no fresh source: the newest ({newest.source}) is {age_s} s old, max {params.staleness_s_max} s"
        return held(OracleStatus.stale, reason), None
    raw_median = median([q.price for q in fresh])
    halt = _halt_reason(state.medians, Point(now_s, raw_median), params)
    if halt is not None:
        return held(OracleStatus.halted, halt), raw_median
    before = tuple(p for p in state.marks if p.time_s < now_s)  # a mark of this second is being revised
    used, deviation_note, following = _select(fresh, twap(before, now_s, params.twap_window_s), params)
    target = median([q.price for q in used])
    base = last if last is not None and last.time_s < now_s else state.base
    price, jump_note = _jump_limit(target, base, now_s, params)
    problems = [note for note in (deviation_note if following else None, jump_note) if note is not None]
    if len(used) < params.sources_min:
        problems.append(f"{len(used)} used, sources_min {params.sources_min}")
    ratios = [q.confidence / q.price for q in used if q.confidence is not None]
    if ratios and median(ratios) > params.degraded_confidence_ratio:
        problems.append(f"wide confidence: median +/-{median(ratios):.2%} > {params.degraded_confidence_ratio:.2%}")
    notes = [f"median of {len(used)}/{len(fresh)} fresh sources"]
    if deviation_note is not None and not following:
        notes.append(deviation_note)  # a minority left out: worth saying, not a problem
    status = OracleStatus.degraded if problems else OracleStatus.ok
    used_sources = tuple(q.source for q in used)
    mark = _mark(state, now_s, params, price, status, "; ".join(notes + problems), used_sources, jump_note is not None)
    return mark, raw_median


def _mark(
    state: OracleState,
    now_s: int,
    params: OracleParams,
    price: float | None,
    status: OracleStatus,
    reason: str,
    sources_used: tuple[str, ...] = (),
    jump_limited: bool = False,
) -> Mark:
    """A mark with its averages. The new price is the TWAP's point at `now_s`, weighing nothing
    unless no time has passed, so that `mark_at` of the recorded state gives the same mark."""
    vwap_now = vwap(state.reports, now_s, params.twap_window_s)
    if price is None:
        return Mark(None, None, None, vwap_now, status, reason, sources_used, now_s, jump_limited)
    history = with_point(state.marks, Point(now_s, price), now_s - params.twap_window_s)
    last = state.marks[-1] if state.marks else None
    ema_now = (
        price
        if last is None
        else ema(last.price if state.ema is None else state.ema, last.price, now_s - last.time_s, params.ema_halflife_s)
    )
    twap_now = twap(history, now_s, params.twap_window_s)
    return Mark(price, twap_now, ema_now, vwap_now, status, reason, sources_used, now_s, jump_limited)


def _halt_reason(medians: tuple[Point, ...], current: Point, params: OracleParams) -> str | None:
    """Circuit breaker: the raw median's max / min within halt_window_s beyond 1 + halt_move_ratio.

    A median of the current second is superseded by `current`, as it is in the history.
    """
    window = [p for p in medians if current.time_s - params.halt_window_s <= p.time_s < current.time_s] + [current]
    low = min(window, key=lambda p: p.price)
    high = max(window, key=lambda p: p.price)
    if high.price <= low.price * (1 + params.halt_move_ratio):
        return None
    first, then = sorted((low, high), key=lambda p: p.time_s)
    return (
        f"circuit breaker: the sources' median moved from {first.price:.8g} to {then.price:.8g} "
        f"({then.price / first.price - 1:+.1%}) within {params.halt_window_s} s, "
        f"beyond halt_move_ratio {params.halt_move_ratio:g}"
    )


def _select(
    fresh: list[PriceUpdate], twap_now: float | None, params: OracleParams
) -> tuple[list[PriceUpdate], str | None, bool]:
    """Sources to take the median of, a note, and whether a deviating majority is being followed.

    Sources farther than deviation_ratio_max from the TWAP are left out while at least as many
    stay; when they are the majority the TWAP is what lags (a real crash), so all are used and the
    jump limit paces the mark.
    """
    if twap_now is None:
        return fresh, None, False
    far = [q for q in fresh if abs(q.price / twap_now - 1) > params.deviation_ratio_max]
    if not far:
        return fresh, None, False
    if 2 * len(far) <= len(fresh):
        ignored = ", ".join(f"{q.source} ({q.price / twap_now - 1:+.1%})" for q in far)
        far_sources = {q.source for q in far}
        return [q for q in fresh if q.source not in far_sources], f"ignored {ignored} from TWAP {twap_now:.8g}", False
    return (
        fresh,
        (
            f"{len(far)} of {len(fresh)} fresh sources are more than {params.deviation_ratio_max:.0%} from "
            f"TWAP {twap_now:.8g}: following their median"
        ),
        True,
    )


def _jump_limit(target: float, base: Point | None, now_s: int, params: OracleParams) -> tuple[float, str | None]:
    """Move from `base` at most jump_ratio_max per update_interval_s elapsed (a rate, no floor: frequent
    updates cannot compound a full jump each)."""
    if base is None:
        return target, None
    allowed = params.jump_ratio_max * (now_s - base.time_s) / params.update_interval_s
    low, high = base.price * (1 - allowed), base.price * (1 + allowed)
    if low <= target <= high:
        return target, None
    price = min(max(target, low), high)
    return price, (
        f"jump limit: mark {price:.8g} is {allowed:.1%} from {base.price:.8g} "
        f"{now_s - base.time_s} s before, short of the sources' median {target:.8g}"
    )


def _record(state: OracleState, mark: Mark, raw_median: float | None, now_s: int, params: OracleParams) -> OracleState:
    """The state after an accepted update: the new mark becomes a point of the histories."""
    last = state.marks[-1] if state.marks else None
    changes: dict = {
        "clock_s": now_s,
        "mark": mark,
        "reports": tuple(t for t in state.reports if t.time_s >= now_s - params.twap_window_s),
    }
    if raw_median is not None:
        changes["medians"] = with_point(state.medians, Point(now_s, raw_median), now_s - params.halt_window_s)
    if mark.price is not None:
        changes["marks"] = with_point(state.marks, Point(now_s, mark.price), now_s - params.twap_window_s)
        changes["ema"] = mark.ema  # the EMA of the marks before this one (this one at its first point)
        if last is not None and last.time_s < now_s:
            changes["base"] = last
    return replace(state, **changes)

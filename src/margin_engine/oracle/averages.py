"""Averages of a price over time: median, time-weighted (TWAP), exponential (EMA), volume-weighted (VWAP).

Histories are tuples of points in time order, at most one point per second, pruned to what the
window needs, so that the state stays bounded however many updates arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Point:
    """A price at a time: a mark held from `time_s` until the next point (a step function)."""

    time_s: int
    price: float


@dataclass(frozen=True)
class VolumeReport:
    """A source's price with the volume it reported, for the VWAP."""

    time_s: int
    price: float
    volume: float


def median(prices: Sequence[float]) -> float:
    """Middle price, or the mean of the two middle ones: always within [min, max]."""
    ordered = sorted(prices)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def with_point(history: tuple[Point, ...], point: Point, keep_from_s: int) -> tuple[Point, ...]:
    """Append a point (replacing one at the same second) and drop what no window from `keep_from_s` needs.

    The last point at or before `keep_from_s` is kept: it is the step the window starts on.
    """
    kept = [p for p in history if p.time_s < point.time_s] + [point]
    first = next((i for i, p in enumerate(kept) if p.time_s > keep_from_s), len(kept))
    return tuple(kept[max(first - 1, 0) :])


def twap(history: tuple[Point, ...], now_s: int, window_s: int) -> float | None:
    """Time-weighted average of the step function over [now - window, now] (over what history covers).

    A point at `now_s` itself has held for no time and weighs nothing; with no elapsed time at all
    the TWAP is the last price.
    """
    if not history:
        return None
    start_s = max(now_s - window_s, history[0].time_s)
    total = 0.0
    for point, until_s in zip(history, [p.time_s for p in history[1:]] + [now_s], strict=True):
        held_s = min(until_s, now_s) - max(point.time_s, start_s)
        if held_s > 0:
            total += point.price * held_s
    span_s = now_s - start_s
    return total / span_s if span_s > 0 else history[-1].price


def ema(previous: float, price: float, elapsed_s: int, halflife_s: int) -> float:
    """Continuous-time EMA: after `price` held for `elapsed_s`, the old average's weight halves every half-life."""
    return price + (previous - price) * 0.5 ** (elapsed_s / halflife_s)


def vwap(reports: tuple[VolumeReport, ...], now_s: int, window_s: int) -> float | None:
    """Volume-weighted average price of the reports within the window, None without volume."""
    recent = [t for t in reports if t.time_s >= now_s - window_s]
    volume = sum(t.volume for t in recent)
    return sum(t.price * t.volume for t in recent) / volume if volume > 0 else None

"""Timing shared by the benchmarks (run as scripts: `python benchmarks/NAME.py`)."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` runs: the one least disturbed by the rest of the machine."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

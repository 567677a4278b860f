"""Throughput of black76 (price + 4 Greeks) against per-option QuantLib and vollib loops.

The margin engine revalues every position on each tick, so what matters is options
per second for a whole book.  QuantLib and vollib price one option per call, so they
run on a sample of the same inputs and their rate is extrapolated.

    python benchmarks/greeks.py [--n 1000000] [--sample 20000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from margin_engine.pricing import black76

FIELDS = ("price", "delta", "gamma", "vega", "theta")


def random_book(n: int, seed: int = 12345):
    rng = np.random.default_rng(seed)
    forward = rng.uniform(1_000.0, 100_000.0, n)
    strike = forward / rng.uniform(0.5, 2.0, n)
    time_years = rng.uniform(1.0 / 365.0, 3.0, n)
    vol = rng.uniform(0.05, 2.0, n)
    rate = rng.uniform(0.0, 0.1, n)
    is_call = rng.random(n) < 0.5
    return forward, strike, time_years, vol, rate, is_call


def best_of(repeats: int, fn):
    """Best wall time of ``repeats`` runs (least disturbed by the rest of the machine) and the last result."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def quantlib_loop(forward, strike, time_years, vol, rate, is_call):
    import QuantLib as ql

    call, put = ql.Option.Call, ql.Option.Put
    out = np.empty((5, len(forward)))
    for i, (f, k, t, v, r, c) in enumerate(zip(forward, strike, time_years, vol, rate, is_call, strict=True)):
        discount = math.exp(-r * t)
        spot = f * discount
        calc = ql.BlackCalculator(ql.PlainVanillaPayoff(call if c else put, k), f, v * math.sqrt(t), discount)
        out[:, i] = calc.value(), calc.delta(spot), calc.gamma(spot), calc.vega(t) * 0.01, calc.thetaPerDay(spot, t)
    return out


def vollib_loop(forward, strike, time_years, vol, rate, is_call):
    # vollib's argument order is (flag, F, K, t, r, sigma).  Its delta and theta follow
    # Black's futures conventions (dV/dF, F held fixed), so only its price is comparable.
    from vollib.black import black
    from vollib.black.greeks.analytical import delta, gamma, theta, vega

    out = np.empty((5, len(forward)))
    for i, (f, k, t, v, r, c) in enumerate(zip(forward, strike, time_years, vol, rate, is_call, strict=True)):
        flag = "c" if c else "p"
        out[:, i] = (
            black(flag, f, k, t, r, v),
            delta(flag, f, k, t, r, v),
            gamma(flag, f, k, t, r, v),
            vega(flag, f, k, t, r, v),
            theta(flag, f, k, t, r, v),
        )
    return out


def agreement(ours, reference, spot):
    """Per field: max relative diff where |reference| >= 1e-5 of its scale, max abs diff / scale elsewhere.

    QuantLib's lower-tail normal CDF is only accurate in absolute terms, so values tiny
    next to their scale (S, or 1 for delta, 1/S for gamma) are compared absolutely.
    """
    rows = []
    for field, ref in zip(FIELDS, reference, strict=True):
        mine = getattr(ours, field)
        scale = {"delta": np.ones_like(spot), "gamma": 1.0 / spot}.get(field, spot)
        large = np.abs(ref) >= 1e-5 * scale
        diff = np.abs(mine - ref)
        rel = (diff[large] / np.abs(ref[large])).max(initial=0.0)
        tiny = (diff[~large] / scale[~large]).max(initial=0.0)
        rows.append((field, rel, tiny))
    return rows


def print_table(title, header, rows):
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(f"{h:>22}" for h in header))
        for row in rows:
            print("  ".join(f"{cell:>22}" for cell in row))
        return
    table = Table(title=title)
    for h in header:
        table.add_column(h, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="options priced by black76")
    parser.add_argument("--sample", type=int, default=20_000, help="options priced by the per-option loops")
    args = parser.parse_args(argv)

    book = random_book(args.n)
    sample = tuple(a[: args.sample] for a in book)
    sample_lists = tuple(a.tolist() for a in sample)  # plain floats: fair to per-option Python loops

    ours_s, _ = best_of(3, lambda: black76(*book))
    rates = [("margin_engine black76", args.n / ours_s, args.n)]
    ql_s, ql_out = best_of(3, lambda: quantlib_loop(*sample_lists))
    rates.append(("QuantLib loop", len(sample_lists[0]) / ql_s, len(sample_lists[0])))
    vl_s, vl_out = best_of(3, lambda: vollib_loop(*sample_lists))
    rates.append(("vollib loop", len(sample_lists[0]) / vl_s, len(sample_lists[0])))

    ours_rate = rates[0][1]
    print_table(
        f"Price + delta, gamma, vega, theta (best of 3; N = {args.n:,}, sample = {args.sample:,})",
        ("library", "options timed", "options/second", "ours / theirs"),
        [(name, f"{count:,}", f"{rate:,.0f}", f"{ours_rate / rate:,.1f}x") for name, rate, count in rates],
    )

    ours_sample = black76(*sample)
    spot = sample[0] * np.exp(-sample[4] * sample[2])
    rows = [(f, f"{rel:.2e}", f"{tiny:.2e}") for f, rel, tiny in agreement(ours_sample, ql_out, spot)]
    print_table(
        "Agreement with QuantLib on the sample",
        ("field", "max rel diff (|ql| >= 1e-5 scale)", "max abs diff / scale (rest)"),
        rows,
    )
    price_rel = np.max(np.abs(ours_sample.price - vl_out[0]) / np.maximum(np.abs(vl_out[0]), 1e-5 * spot))
    print(f"vollib price max rel diff (floor 1e-5 * S): {price_rel:.2e}")


if __name__ == "__main__":
    main()

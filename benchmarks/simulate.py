"""Simulator speed: steps per second and accounts x steps per second of one path, and the speed-up
from 1 to 2 worker processes on the same paths (results identical either way).

    python benchmarks/simulate.py [--accounts 1000] [--steps 1440] [--paths 8] [--eth-share 0.4]

The issue's target is 1,000 accounts over two underlyings (BTC and ETH, 40% of the traders on
ETH by default) through a 1,440-step day (one step a minute) in under 10 s per path; the defaults
run that size, with the crash scenarios' push oracle (a 0.1% move or 30 s).
"""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

from margin_engine.simulation.scenario import parse_scenario
from margin_engine.simulation.sweep import run_sweep


def scenario(accounts: int, steps: int, paths: int, eth_share: float):
    eth = round(accounts * eth_share)
    return parse_scenario(
        {
            "name": "benchmark",
            "profile": "deribit",
            "seed": 7,
            "paths": paths,
            "dt_s": 60,
            "steps": steps,
            "price": {
                "kind": "merton",
                "spot0_usd": 60_000,
                "vol_annual": 0.8,
                "jump_intensity_annual": 40,
                "jump_mean_log": -0.03,
                "jump_vol_log": 0.04,
            },
            "population": {"traders": accounts - eth, "option_sellers": 0},
            "underlyings": [{"name": "ETH", "spot0_usd": 3_000, "vol_annual": 0.9, "traders": eth}] if eth else [],
            "keepers": {"count": 3, "latency_s": 5, "round_s": 10, "rounds_max": 3},
            "oracle": {"heartbeat_s": 30, "deviation_ratio": 0.001},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=1440)
    parser.add_argument("--paths", type=int, default=8)
    parser.add_argument("--eth-share", type=float, default=0.4)
    args = parser.parse_args()
    s = scenario(args.accounts, args.steps, args.paths, args.eth_share)
    timings, runs = {}, {}
    for workers in (1, 2):
        started = time.perf_counter()
        runs[workers] = run_sweep(s, workers=workers)
        timings[workers] = time.perf_counter() - started
        assert len(runs[workers]) == args.paths
    assert [r.metrics for r in runs[1]] == [r.metrics for r in runs[2]], "results differ with the number of workers"
    results = runs[1]
    per_path = timings[1] / args.paths
    slowest = max(r.wall_s for r in results)
    title = f"Simulator: {args.accounts:,} traders (BTC and ETH) x {args.steps:,} steps, {args.paths} paths"
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("seconds per path (1 worker)", f"{per_path:.1f}", "< 10 for 1,000 x 1,440")
    table.add_row("slowest path (seconds)", f"{slowest:.1f}", "")
    table.add_row("steps / second", f"{args.steps / per_path:,.0f}", "")
    table.add_row("accounts x steps / second", f"{args.accounts * args.steps / per_path:,.0f}", "144,000")
    table.add_row("speed-up 1 -> 2 workers", f"{timings[1] / timings[2]:.2f}x", "near 2x")
    Console().print(table)


if __name__ == "__main__":
    main()

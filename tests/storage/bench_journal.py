"""Durable commands per second into the journal: one command per transaction against group commits of
100, SQLite with synchronous FULL and NORMAL (WAL both), and PostgreSQL when MARGIN_ENGINE_PG_URL is set.

    .venv/bin/python tests/storage/bench_journal.py [--commands 2000] [--repeat 5] [--dir /path/on/the/disk]

A measurement to read, not a test: nothing here asserts a speed. Each command is a deposit (one event);
each figure is the median of --repeat runs, since a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from importlib import resources

from margin_engine.engine import Engine
from margin_engine.margin.profile import parse_profile
from margin_engine.storage import Journal

PROFILE = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
ACCOUNTS = [f"acct{i}" for i in range(10)]


def deposit(i: int) -> dict:
    return {"type": "deposit", "account": ACCOUNTS[i % len(ACCOUNTS)], "amount": f"{i % 1000 + 1}.25"}


def setup(journal: Journal) -> Engine:
    engine = journal.load()
    journal.submit_batch(engine, [({"type": "open_account", "account": a}, None) for a in ACCOUNTS])
    return engine


def rate(url: str, commands: int, group: int, synchronous: str) -> float:
    with Journal.create(url, PROFILE, synchronous=synchronous) as journal:
        engine = setup(journal)
        start = time.perf_counter()
        for first in range(0, commands, group):
            items = [(deposit(i), f"c{i}") for i in range(first, min(first + group, commands))]
            journal.submit_batch(engine, items)
        return commands / (time.perf_counter() - start)


def engine_only(commands: int) -> float:
    engine = Engine(parse_profile(PROFILE))
    for a in ACCOUNTS:
        engine.submit({"type": "open_account", "account": a})
    start = time.perf_counter()
    for i in range(commands):
        engine.submit(deposit(i))
    return commands / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the SQLite files go (default: a temporary folder)")
    args = parser.parse_args()
    n = args.commands

    def median(measure) -> float:
        return statistics.median(measure(run) for run in range(args.repeat))

    print(f"{'store':<34} {'one per transaction':>20} {'group commit of 100':>20}   (durable commands/s)")
    print(f"{'engine alone, no journal':<34} {median(lambda run: engine_only(n)):>20,.0f}")
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for sync in ("FULL", "NORMAL"):
            single = median(lambda run, sync=sync: rate(f"sqlite:///{folder}/1-{sync}-{run}.db", n, 1, sync))
            grouped = median(lambda run, sync=sync: rate(f"sqlite:///{folder}/100-{sync}-{run}.db", 10 * n, 100, sync))
            print(f"{'SQLite WAL, synchronous=' + sync:<34} {single:>20,.0f} {grouped:>20,.0f}")
    pg = os.environ.get("MARGIN_ENGINE_PG_URL")
    if pg:
        from conftest import drop_journal_tables

        def on_pg(commands: int, group: int) -> float:
            drop_journal_tables(pg)
            return rate(pg, commands, group, "FULL")

        results = [median(lambda run: on_pg(n, 1)), median(lambda run: on_pg(10 * n, 100))]
        drop_journal_tables(pg)
        print(f"{'PostgreSQL (synchronous_commit on)':<34} {results[0]:>20,.0f} {results[1]:>20,.0f}")


if __name__ == "__main__":
    main()

"""The service under load on loopback: durable commands per second (group commit) and margin-query
latency at a steady request rate, from concurrent clients in a separate process.

    python benchmarks/service.py [--seconds 5] [--clients 64] [--rate 500]

Also measures the journal alone (no HTTP): one command per transaction against group commits of
100, to show what group commit buys on this disk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from margin_engine.storage.journal import Journal, database_url

PORT = 8799


def start_server(db: str) -> subprocess.Popen:
    # one admin key drives all the load: lift its rate limit for the measurement
    env = {**os.environ, "MARGIN_ENGINE_RATE_LIMIT_PER_S": "1000000", "MARGIN_ENGINE_RATE_LIMIT_BURST": "1000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", db, "--port", str(PORT), "--init"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/openapi.json", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


class Connections:
    """Keep-alive HTTP/1.1 connections with pre-built requests: a load generator light enough that
    the server, not the client, is what is measured (httpx costs more than the server per request)."""

    def __init__(self, host: str, port: int, size: int):
        self.host, self.port, self.size = host, port, size
        self.pool: asyncio.Queue = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            self.pool.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def close(self) -> None:
        while not self.pool.empty():
            _, writer = self.pool.get_nowait()
            writer.close()

    async def send(self, raw: bytes) -> int:
        reader, writer = await self.pool.get()
        try:
            writer.write(raw)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            return status
        finally:
            self.pool.put_nowait((reader, writer))


def raw_request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def commands_per_second(key: str, seconds: float, clients: int, accounts: int) -> float:
    """Closed loop: `clients` connections each posting deposits back to back; group commit takes
    whatever arrived while the previous transaction was being written."""
    conns = Connections("127.0.0.1", PORT, clients)
    await conns.open()
    done = sent = 0
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal done, sent
        while time.perf_counter() < stop:
            sent += 1  # every custody deposit carries a transfer reference of its own
            body = f'{{"amount": "1", "reference": "0xbench:{sent}"}}'.encode()
            if await conns.send(raw_request("POST", f"/v1/accounts/a{i % accounts}/deposits", key, body)) == 200:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    await conns.close()
    return done / elapsed


async def send_deposits(key: str, n: int, clients: int, accounts: int, first: int) -> None:
    """`n` durable deposits from `clients` connections, each with its own custody reference."""
    conns = Connections("127.0.0.1", PORT, clients)
    await conns.open()
    left = iter(range(first, first + n))

    async def client(i: int) -> None:
        for k in left:
            body = f'{{"amount": "1", "reference": "0xmem:{k}"}}'.encode()
            await conns.send(raw_request("POST", f"/v1/accounts/a{k % accounts}/deposits", key, body))

    await asyncio.gather(*(client(i) for i in range(clients)))
    await conns.close()


def rss_mib(pid: int) -> float:
    """The process's resident memory (Linux /proc), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def query_latency(key: str, seconds: float, rate: float, accounts: int) -> list[float]:
    """Open loop: requests leave on a fixed schedule whatever the answers do, and latency counts
    from the scheduled time, so a slow answer delays no later measurement (no coordinated omission)."""
    conns = Connections("127.0.0.1", PORT, 64)
    await conns.open()
    requests = [raw_request("GET", f"/v1/accounts/a{i}/margin", key) for i in range(accounts)]
    latencies: list[float] = []

    async def one(i: int, due: float) -> None:
        status = await conns.send(requests[i % accounts])
        if status != 200:
            raise RuntimeError(f"margin query answered {status}")
        latencies.append(time.perf_counter() - due)

    tasks = []
    start = time.perf_counter()
    for i in range(int(seconds * rate)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    await conns.close()
    return latencies


def journal_rates(tmp: str, n: int = 2000) -> tuple[float, float]:
    from importlib import resources

    profile = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
    rates = []
    for batch in (1, 100):
        journal = Journal.create(database_url(f"{tmp}/j{batch}.db"), profile)
        engine = journal.load()
        journal.submit(engine, {"type": "open_account", "account": "a"})
        items = [({"type": "deposit", "account": "a", "amount": "1", "reference": f"0xj:{k}"}, None) for k in range(n)]
        started = time.perf_counter()
        for k in range(0, n, batch):
            journal.submit_batch(engine, items[k : k + batch])
        rates.append(n / (time.perf_counter() - started))
        journal.close()
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--memory-commands", type=int, default=100_000, help="commands before the second RSS reading")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        single, grouped = journal_rates(tmp)
        db = str(Path(tmp) / "bench.db")
        proc = start_server(db)
        try:
            key = subprocess.run(
                [sys.executable, "-m", "margin_engine.cli.app", "create-key", "admin", "--db", db],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            headers = {"X-API-Key": key}
            base = f"http://127.0.0.1:{PORT}"
            with httpx.Client(base_url=base, headers=headers) as http:
                http.post("/v1/time", json={"time": "2026-11-25T08:00:00Z"}).raise_for_status()
                http.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}).raise_for_status()
                http.post("/v1/accounts", json={"account": "mm"}).raise_for_status()
                mm = {"amount": "100000000", "reference": "0xmm:0"}
                http.post("/v1/accounts/mm/deposits", json=mm).raise_for_status()
                for i in range(args.accounts):
                    http.post("/v1/accounts", json={"account": f"a{i}"}).raise_for_status()
                    funds = {"amount": "100000", "reference": f"0xa:{i}"}
                    http.post(f"/v1/accounts/a{i}/deposits", json=funds).raise_for_status()
                    http.post(
                        "/v1/fills",
                        json={
                            "buyer": f"a{i}",
                            "seller": "mm",
                            "instrument": "BTC-PERP",
                            "size": "1",
                            "price": "60000",
                        },
                    ).raise_for_status()
            cps = asyncio.run(commands_per_second(key, args.seconds, args.clients, args.accounts))
            lat = sorted(asyncio.run(query_latency(key, args.seconds, args.rate, args.accounts)))
            # memory: the server after 1,000 deposits past the set-up, then after --memory-commands in all
            asyncio.run(send_deposits(key, 1_000, args.clients, args.accounts, 0))
            rss_small = rss_mib(proc.pid)
            asyncio.run(send_deposits(key, args.memory_commands - 1_000, args.clients, args.accounts, 1_000))
            rss_large = rss_mib(proc.pid)
        finally:
            proc.kill()
    table = Table(title="Service on loopback (2-core machine; server and clients share it)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("journal alone, 1 command per transaction", f"{single:,.0f} commands/s", "")
    table.add_row("journal alone, group commit of 100", f"{grouped:,.0f} commands/s", ">= 5,000")
    table.add_row(
        f"HTTP deposits, {args.clients} concurrent clients (durable, group commit)", f"{cps:,.0f} commands/s", ""
    )
    p50, p99 = statistics.quantiles(lat, n=100)[49], statistics.quantiles(lat, n=100)[98]
    table.add_row(f"margin query at {args.rate:.0f} req/s, p50", f"{p50 * 1000:.1f} ms", "")
    table.add_row(f"margin query at {args.rate:.0f} req/s, p99", f"{p99 * 1000:.1f} ms", "< 20 ms")
    table.add_row("server memory (RSS) after 1,000 commands", f"{rss_small:,.0f} MiB", "")
    table.add_row(f"server memory (RSS) after {args.memory_commands:,} commands", f"{rss_large:,.0f} MiB", "bounded")
    console.print(table)


if __name__ == "__main__":
    main()

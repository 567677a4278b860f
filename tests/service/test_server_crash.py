"""Crash test: the real server under a stream of custody deposits, killed with SIGKILL at random
points (20 times, seeded), restarted each time; every acknowledged deposit must be in the journal
(its custody reference spent, its amount credited once), the hash chain must verify at every
restart, and conservation must hold over the whole history."""

import os
import random
import signal
import time

import httpx
from svc_helpers import create_key, free_port, start

from margin_engine.engine import audit
from margin_engine.storage.journal import Journal, database_url

KILLS = 20


def test_every_acknowledged_command_survives_sigkill(tmp_path):
    db = str(tmp_path / "crash.db")
    rng = random.Random(20261125)
    port = free_port()
    proc = start(db, port)
    headers = {"X-API-Key": create_key(db, "admin")}
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers=headers, timeout=5)
    assert client.post("/v1/accounts", json={"account": "a"}).status_code == 200
    acknowledged = {}
    n = 0
    try:
        for _ in range(KILLS):
            for _ in range(rng.randint(5, 40)):
                n += 1
                key = f"dep-{n}"
                try:
                    r = client.post(
                        "/v1/accounts/a/deposits",
                        json={"amount": str(n), "reference": key},
                        headers={"Idempotency-Key": key},
                    )
                except httpx.HTTPError:
                    break
                if r.status_code == 200:
                    acknowledged[key] = n
            time.sleep(rng.random() * 0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc = start(db, port)
    finally:
        proc.kill()
        proc.wait()
        client.close()
    journal = Journal.open(database_url(db))
    try:
        engine = journal.load()
        stored = set(engine.state.references)
        assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)[:5]
        audit(engine.state)
        balance = engine.state.ledger.balance("user:a", "USDC")
        credited = sum(int(ref.split("-")[1]) for ref in stored)  # each reference once, acknowledged or not
        assert balance == credited * 10**6 and balance >= sum(acknowledged.values()) * 10**6
    finally:
        journal.close()
    assert len(acknowledged) > KILLS

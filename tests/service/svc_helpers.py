"""Keys and helpers shared by the service tests."""

import hashlib
import socket
import subprocess
import sys
import time

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ORACLE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"desk-feed").digest())


def auth(client, who):
    return {"X-API-Key": client.keys[who]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(db: str, port: int, *extra: str, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    """The real server (`serve --init`: a new journal the first time) on a loopback port, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", db, "--port", str(port), "--init", *extra],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the server did not start")


def create_key(db: str, role: str, account: str | None = None) -> str:
    cmd = [sys.executable, "-m", "margin_engine.cli.app", "create-key", role, "--db", db]
    cmd += [] if account is None else ["--account", account]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


class References:
    """Custody transfer references, one per deposit: like chain transactions, never reused."""

    def __init__(self, prefix: str = "0xtx"):
        self.prefix, self.n = prefix, 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n:06d}:0"


def deposit(client, account: str, amount: str, headers: dict, reference: str, asset: str = "USDC"):
    """A custody-confirmed deposit (custody or admin headers)."""
    body = {"asset": asset, "amount": amount, "reference": reference}
    return client.post(f"/v1/accounts/{account}/deposits", json=body, headers=headers)

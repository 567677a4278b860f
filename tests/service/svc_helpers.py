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


def start(db: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", db, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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


def create_key(db: str, role: str) -> str:
    cmd = [sys.executable, "-m", "margin_engine.cli.app", "create-key", role, "--db", db]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

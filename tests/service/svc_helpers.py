"""Keys and helpers shared by the service tests."""

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ORACLE_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"desk-feed").digest())


def auth(client, who):
    return {"X-API-Key": client.keys[who]}

"""API keys: random tokens shown once, stored only as SHA-256 hashes, each with one role.

Roles (what a key may do):
- `trader`: its own account only (deposits, withdrawals, margin, what-if);
- `keeper`: the liquidation queue, starting liquidations and bidding (as its bound account, if any);
- `oracle`: signed price updates;
- `admin`: everything: fills from the matching engine, markets, accounts, parameters, listings.

A key looks like `me_<key id>_<secret>`; the key id finds the row, the hash of the whole key
proves it. Tokens have 256 bits of entropy, so one SHA-256 (not a slow password hash) suffices,
as for GitHub's tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from margin_engine.errors import InputError

Role = Literal["trader", "keeper", "oracle", "admin"]
ROLES: tuple[Role, ...] = ("trader", "keeper", "oracle", "admin")

metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("account", sa.String(64), nullable=True),  # traders (required) and keepers (optional)
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's id, role and (for traders) account."""

    key_id: str
    role: Role
    account: str | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


CACHE_TTL_S = 5.0  # a revoked key stops working within this long on every server
CACHE_MAX = 10_000


class KeyStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        metadata.create_all(engine)
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def create(self, role: str, account: str | None = None) -> str:
        """A new key; the token is returned once and never stored."""
        if role not in ROLES:
            raise InputError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "trader" and account is None:
            raise InputError("account", "a trader key acts for exactly one account: give it")
        if role in ("oracle", "admin") and account is not None:
            raise InputError("account", f"an {role} key acts for no account")
        key_id = secrets.token_hex(8)
        token = f"me_{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id, key_hash=_hash(token), role=role, account=account, revoked=False
                )
            )
        return token

    def revoke(self, key_id: str) -> bool:
        self._cache.clear()
        with self.engine.begin() as conn:
            return conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked=True)).rowcount > 0

    def authenticate(self, token: str | None, now_s: float | None = None) -> Principal | None:
        """The key's principal, or None for a missing, malformed, unknown, revoked or wrong key.
        Answers are cached for CACHE_TTL_S (by the token's hash), so a request costs no query."""
        if not token or not token.startswith("me_") or token.count("_") < 2:
            return None
        now_s = time.monotonic() if now_s is None else now_s
        digest = _hash(token)
        cached = self._cache.get(digest)
        if cached is not None and now_s - cached[0] < CACHE_TTL_S:
            return cached[1]
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        principal = self._lookup(token)
        self._cache[digest] = (now_s, principal)
        return principal

    def _lookup(self, token: str) -> Principal | None:
        key_id = token.split("_", 2)[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None or row.revoked or not hmac.compare_digest(row.key_hash, _hash(token)):
            return None
        return Principal(row.key_id, row.role, row.account)

"""API keys: random tokens shown once, stored only as SHA-256 hashes, each with one role.

Roles (what a key may do):
- `trader`: its own account only (open it, withdrawal requests, margin, what-if); never deposits;
- `custody`: credits deposits confirmed by custody (a chain, a bridge, a bank), each transfer reference
  once, and settles or fails requested withdrawals;
- `keeper`: the liquidation queue, starting liquidations and bidding, only as its bound account
  (an unbound keeper key may start auctions but take nothing);
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
from margin_engine.ids import ACCOUNT_ID_RE

Role = Literal["trader", "custody", "keeper", "oracle", "admin"]
ROLES: tuple[Role, ...] = ("trader", "custody", "keeper", "oracle", "admin")

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
        self._active: dict[str, tuple[float, bool]] = {}

    def create(self, role: str, account: str | None = None) -> str:
        """A new key; the token is returned once and never stored."""
        if role not in ROLES:
            raise InputError("role", f"must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "trader" and account is None:
            raise InputError("account", "a trader key acts for exactly one account: give it")
        if role in ("custody", "oracle", "admin") and account is not None:
            raise InputError("account", f"a {role} key acts for no account")
        if account is not None and not ACCOUNT_ID_RE.match(account):
            raise InputError("account", f"account id must be 1-64 characters [A-Za-z0-9_.-], got {account!r}")
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
        """Revoke by key id (the part after `me_`); every server stops taking it within CACHE_TTL_S."""
        self._cache.clear()
        self._active.clear()
        with self.engine.begin() as conn:
            return conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked=True)).rowcount > 0

    def list(self) -> list[dict]:
        """Every key's id, role, account and whether it is revoked; never a secret (none is stored)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.role, api_keys.c.key_id)).all()
        return [{"key_id": r.key_id, "role": r.role, "account": r.account, "revoked": bool(r.revoked)} for r in rows]

    def active(self, key_id: str, now_s: float | None = None) -> bool:
        """The key still exists and is not revoked (sessions made from it end with it)."""
        now_s = time.monotonic() if now_s is None else now_s
        cached = self._active.get(key_id)
        if cached is not None and now_s - cached[0] < CACHE_TTL_S:
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys.c.revoked).where(api_keys.c.key_id == key_id)).first()
        if len(self._active) >= CACHE_MAX:
            self._active.clear()
        ok = row is not None and not row.revoked
        self._active[key_id] = (now_s, ok)
        return ok

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


SESSION_TTL_S = 3600.0  # a desk session lasts an hour, then the page asks for the key again
SESSION_COOKIE = "me_session"
SESSIONS_MAX = 10_000


class Sessions:
    """Short-lived desk sessions: the page sends its key once (in a header) and gets a random cookie
    token, so the key never appears in a URL, a log or the browser's history. Held in memory: a
    restart logs everyone out. A session reads (GET) only, and ends when its key is revoked."""

    def __init__(self, ttl_s: float = SESSION_TTL_S):
        self.ttl_s = ttl_s
        self._by_token: dict[str, tuple[float, Principal]] = {}

    def open(self, principal: Principal, now_s: float) -> str:
        if len(self._by_token) >= SESSIONS_MAX:
            self._by_token = {t: v for t, v in self._by_token.items() if v[0] > now_s}
        token = secrets.token_urlsafe(32)
        self._by_token[_hash(token)] = (now_s + self.ttl_s, principal)
        return token

    def get(self, token: str | None, now_s: float) -> Principal | None:
        found = self._by_token.get(_hash(token)) if token else None
        if found is None or found[0] <= now_s:
            return None
        return found[1]

    def close(self, token: str | None) -> None:
        if token:
            self._by_token.pop(_hash(token), None)

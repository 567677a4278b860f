"""Request dependencies: who is calling (API key, or a desk session for reads), may they (role,
account), the rate limits, and idempotency keys scoped to the caller."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field

from margin_engine.ids import ACCOUNT_ID_RE
from margin_engine.service.keys import SESSION_COOKIE, Principal, Role
from margin_engine.service.openapi import API_KEY, BEARER, SESSION
from margin_engine.service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def api_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer` or `X-API-Key`; never from the URL (URLs end up in logs,
    histories and Referer headers)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def get_principal(
    request: Request,
    # declared for the OpenAPI document (the Authorize button in /docs); the request is read below
    _key: Annotated[str | None, Security(API_KEY)] = None,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
    _session: Annotated[str | None, Security(SESSION)] = None,
) -> Principal:
    now = time.monotonic()
    state = request.app.state
    token = api_key(request)
    principal = state.keys.authenticate(token) if token else None
    if principal is None and token is None and request.method == "GET":  # the desk page's reads
        session = state.sessions.get(request.cookies.get(SESSION_COOKIE), now)
        if session is not None and state.keys.active(session.key_id):
            principal = session
    if principal is None:
        address = client_address(request)
        if not state.anonymous_limiter.allow(address, now):
            raise HTTPException(
                429,
                {"code": "rate_limited", "message": "too many unauthenticated requests from this address"},
                headers={"Retry-After": str(state.anonymous_limiter.retry_after_s(address, now))},
            )
        raise HTTPException(
            401,
            {
                "code": "unauthenticated",
                "message": "a valid API key is required, in a header: Authorization: Bearer <key> or X-API-Key",
            },
        )
    if not state.limiter.allow(principal.key_id, now):
        raise HTTPException(
            429,
            {"code": "rate_limited", "message": "too many requests for this key; slow down"},
            headers={"Retry-After": str(state.limiter.retry_after_s(principal.key_id, now))},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
# the engine's account id rule (engine/commands.py ACCOUNT_ID_RE), checked at the door
AccountId = Annotated[str, Field(min_length=1, max_length=64, pattern=ACCOUNT_ID_RE.pattern)]
CurrentRuntime = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class Idempotency:
    """The caller's `Idempotency-Key`, and the client id the journal keeps for it: scoped to the API key
    and the route, so one caller's keys never collide with, or reveal, another's."""

    key: str
    client_id: str


def get_idempotency(
    request: Request,
    principal: CurrentPrincipal,
    key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=128, pattern=r"^[\x21-\x7e]+$")] = None,
) -> Idempotency | None:
    if key is None:
        return None
    route = getattr(request.scope.get("route"), "path", request.url.path)
    digest = hashlib.sha256(f"{request.method} {route}\n{key}".encode()).hexdigest()[:40]
    return Idempotency(key, f"{principal.key_id}:{digest}")


IdempotencyKey = Annotated[Idempotency | None, Depends(get_idempotency)]


def require(*roles: Role):
    """A dependency admitting the given roles (admin always)."""

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role != "admin" and principal.role not in roles:
            raise HTTPException(403, {"code": "forbidden", "message": f"this needs a {' or '.join(roles)} key"})
        return principal

    return check


def check_account(principal: Principal, account: str) -> None:
    """Traders act only for their own account; admins for any; no other role acts for accounts."""
    if principal.role == "admin":
        return
    if principal.role != "trader":
        raise HTTPException(403, {"code": "forbidden", "message": f"a {principal.role} key does not act for accounts"})
    if principal.account != account:
        raise HTTPException(403, {"code": "forbidden", "message": f"this key does not act for account {account!r}"})

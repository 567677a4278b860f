"""Request dependencies: who is calling (API key), may they (role, account), and the rate limit."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from pydantic import Field

from margin_engine.engine.commands import ACCOUNT_ID_RE
from margin_engine.service.keys import Principal, Role
from margin_engine.service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.query_params.get("key")


def get_principal(request: Request) -> Principal:
    principal = request.app.state.keys.authenticate(_token(request))
    if principal is None:
        raise HTTPException(
            401,
            {
                "code": "unauthenticated",
                "message": "a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
            },
        )
    if not request.app.state.limiter.allow(principal.key_id, time.monotonic()):
        raise HTTPException(429, {"code": "rate_limited", "message": "too many requests for this key; slow down"})
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)]
# the engine's account id rule (engine/commands.py ACCOUNT_ID_RE), checked at the door
AccountId = Annotated[str, Field(min_length=1, max_length=64, pattern=ACCOUNT_ID_RE.pattern)]
CurrentRuntime = Annotated[Runtime, Depends(get_runtime)]


def require(*roles: Role):
    """A dependency admitting the given roles (admin always)."""

    def check(principal: CurrentPrincipal) -> Principal:
        if principal.role != "admin" and principal.role not in roles:
            raise HTTPException(403, {"code": "forbidden", "message": f"this needs a {' or '.join(roles)} key"})
        return principal

    return check


def check_account(principal: Principal, account: str) -> None:
    """Traders (and bound keepers) act only for their own account; admins for any."""
    if principal.role == "admin":
        return
    if principal.account != account:
        raise HTTPException(403, {"code": "forbidden", "message": f"this key does not act for account {account!r}"})

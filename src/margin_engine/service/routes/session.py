"""Desk sessions and health: the page logs in with its key once (in a header) and reads with a cookie."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from margin_engine.service.deps import CurrentPrincipal, CurrentRuntime
from margin_engine.service.keys import SESSION_COOKIE
from margin_engine.service.openapi import Health, Session, answers, errors

router = APIRouter(tags=["session"])


@router.post(
    "/v1/session",
    summary="Trade a key (in a header) for a read-only session cookie",
    response_model=None,
    responses=answers(Session, 401, 413, 429),
)
async def login(request: Request, response: Response, principal: CurrentPrincipal) -> dict:
    sessions = request.app.state.sessions
    token = sessions.open(principal, time.monotonic())
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(sessions.ttl_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return {"role": principal.role, "account": principal.account, "expires_in_s": int(sessions.ttl_s)}


@router.delete("/v1/session", summary="End the desk session", responses=errors(413))
async def logout(request: Request, response: Response) -> dict:
    request.app.state.sessions.close(request.cookies.get(SESSION_COOKIE))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ended": True}


@router.get(
    "/health",
    summary="Whether the service takes commands (no key needed)",
    response_model=None,
    responses={**answers(Health), 503: {"model": Health, "description": "The command writer is not running"}},
)
async def health(runtime: CurrentRuntime) -> JSONResponse:
    body = {
        "status": "ok" if runtime.alive else "unavailable",
        "writer": "running" if runtime.alive else (runtime.stopped_reason or "stopped"),
        "seq": runtime.journal.last_seq,
    }
    return JSONResponse(body, status_code=200 if runtime.alive else 503)

"""The FastAPI application: the journal's engine behind API keys, with metrics and the desk page.

`create_app(settings)` opens the journal (creating it only with `settings.init`), loads the engine
from it (latest snapshot plus later events, the hash chain checked), and starts the one writer.
Every accepted command is durable before its answer is sent.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from margin_engine.errors import InputError
from margin_engine.margin.profile import load_profile
from margin_engine.service.keys import KeyStore, Sessions
from margin_engine.service.limits import BodySizeLimit, TokenBucket
from margin_engine.service.metrics import RequestTiming
from margin_engine.service.openapi import AUTHENTICATED, errors
from margin_engine.service.routes import accounts, custody, desk, liquidation, session, venue
from margin_engine.service.runtime import CommandError, Runtime, WriterStopped
from margin_engine.service.settings import Settings
from margin_engine.storage.journal import Journal, JournalMissing, database_url

# the member labels pydantic puts in an error's location for a union field (`vol.float`): not fields
_TAG = re.compile(r"^(float|int|str|bool|none|constrained-\w+|function-\w+|\w+\[.*\])$")


class ProfileMismatch(InputError):
    """A profile asked for that is not the one the journal holds (a journal keeps its own)."""


def open_journal(settings: Settings) -> Journal:
    """The journal at the settings' database; a new one only when asked (`init`), never because a path
    was mistyped or a file emptied. A profile given for an existing journal must be the one it holds:
    the journal's own is what its commands were applied with, so another one is refused, never ignored."""
    try:
        journal = Journal.open(database_url(settings.db_url))
    except JournalMissing as exc:
        if not settings.init:
            raise JournalMissing(
                "db",
                f"{exc.message}; or start the service with --init to create it with profile {settings.new_profile}",
            ) from None
        return Journal.create(database_url(settings.db_url), settings.profile_text())
    if settings.profile is not None:
        try:
            _check_profile(journal, settings.profile)
        except BaseException:
            journal.close()
            raise
    return journal


def _check_profile(journal: Journal, asked: str) -> None:
    held = journal.profile
    if load_profile(asked) == held:
        return
    other = " with other parameters" if held.name == load_profile(asked).name else ""
    raise ProfileMismatch(
        "profile",
        f"the database holds a journal with profile {held.name!r}{other}, not {asked!r}: a journal keeps the profile "
        "it was created with; leave out --profile to serve it with its own",
    )


def create_app(settings: Settings, journal: Journal | None = None, engine=None) -> FastAPI:
    """The app on the settings' journal, or on one already opened and loaded (what `serve` does, so
    that a broken journal is reported before the server starts)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal journal, engine
        if journal is None:
            journal = open_journal(settings)
            engine = journal.load()
        runtime = Runtime(journal, engine if engine is not None else journal.load())
        app.state.runtime = runtime
        app.state.keys = KeyStore(sa.create_engine(database_url(settings.db_url)))
        runtime.start()
        yield
        await runtime.stop()
        journal.close()

    app = FastAPI(
        title="margin-engine",
        version="0.1.0",
        lifespan=lifespan,
        description="A deterministic margin engine for crypto options and perpetuals. Authenticate with an API key "
        "(`margin-engine create-key ROLE --db DB`) in `X-API-Key` or `Authorization: Bearer`; the desk's session "
        "cookie reads only. Errors are `{code, message, field?}`; a rejected command is a 409 with its reason code.",
    )
    app.state.limiter = TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.anonymous_limiter = TokenBucket(settings.anonymous_rate_limit_per_s, settings.anonymous_rate_limit_burst)
    app.state.sessions = Sessions()
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTiming)
    for router in (accounts.router, custody.router, venue.router, liquidation.router, desk.router):
        app.include_router(router, responses=errors(*AUTHENTICATED))  # every route behind a key
    app.include_router(session.router)  # its routes say their own

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {"code": "error", "message": str(exc.detail)}
        return JSONResponse(detail, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(
            str(p) for p in first["loc"] if p not in ("body", "query", "path", "header") and not _TAG.match(str(p))
        )
        return JSONResponse({"code": "bad_input", "field": field or "body", "message": first["msg"]}, status_code=422)

    @app.exception_handler(WriterStopped)
    async def writer_stopped(request: Request, exc: WriterStopped) -> JSONResponse:
        return JSONResponse({"code": "unavailable", "message": str(exc)}, status_code=503)

    @app.exception_handler(CommandError)
    async def command_error(request: Request, exc: CommandError) -> JSONResponse:
        return JSONResponse({"code": "internal_error", "message": str(exc)}, status_code=500)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"code": "bad_input", "field": exc.field, "message": exc.message}, status_code=422)

    return app

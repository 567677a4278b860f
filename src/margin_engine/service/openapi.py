"""What the OpenAPI document says: how callers authenticate (so /docs has an Authorize button), every
error status a route can answer with its body, and the shapes of the answers. The models describe the
JSON the routes already send (extra fields allowed); they do not change it."""

from __future__ import annotations

from typing import Any

from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.service.keys import SESSION_COOKIE

# Declared for the document only (auto_error=False: deps.get_principal decides who is calling).
API_KEY = APIKeyHeader(
    name="X-API-Key", scheme_name="ApiKey", description="An API key (`margin-engine create-key`).", auto_error=False
)
BEARER = HTTPBearer(
    scheme_name="Bearer", description="The same API key as `Authorization: Bearer <key>`.", auto_error=False
)
SESSION = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="DeskSession",
    description="The desk's session cookie from `POST /v1/session` (reads only).",
    auto_error=False,
)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(_Open):
    """Every error answer: a code, a message, and for bad input the field; a rejection may add the
    numbers behind it (`needed`, `available`, `asset`, ...)."""

    code: str = Field(description="e.g. bad_input, unauthenticated, forbidden, unknown_account, insufficient_margin")
    message: str
    field: str | None = Field(default=None, description="for bad input: the field (dotted path) at fault")


_WHAT = {
    401: "No valid API key (or session cookie for reads)",
    403: "The key's role or account may not do this",
    404: "The account, auction or withdrawal named in the path does not exist",
    409: "The engine rejected the command: the reason code and the numbers behind it",
    413: "The request body is larger than the limit",
    422: "Bad input: the field and what is wrong with it",
    429: "Too many requests for this key or address; Retry-After says how many seconds to wait",
    500: "The command failed unexpectedly and was not applied (a bug, logged)",
    503: "The command writer is not running",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the given statuses, each with the error body (and Retry-After on 429)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _WHAT[code]}
        if code == 429:
            wait = {"description": "seconds until a request is allowed again", "schema": {"type": "integer"}}
            entry["headers"] = {"Retry-After": wait}
        out[code] = entry
    return out


def answers(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its 200 body's model (documented only: the route's JSON is sent as built)
    and its error statuses. Use with `response_model=None`."""
    return {200: {"model": model, "description": "OK"}, **errors(*codes)}


AUTHENTICATED = (401, 403, 413, 422, 429)  # any route behind a key
COMMAND = (*AUTHENTICATED, 409, 500, 503)  # a route that submits an engine command


class Receipt(_Open):
    """An accepted command: its journal sequence number, the caller's Idempotency-Key, its events."""

    accepted: bool
    seq: int
    client_id: str | None = Field(description="the Idempotency-Key sent, if any")
    events: list[dict[str, Any]] = Field(description="the events, as the journal and the event stream show them")


class Position(_Open):
    instrument: str
    size: str
    quote: str | None = None
    collateral: str | None = None


class PendingWithdrawal(_Open):
    id: str
    account: str
    asset: str
    amount: str
    requested_at: str


class Account(_Open):
    id: str
    mode: str
    balances: dict[str, str]
    positions: list[Position]
    pending_withdrawals: list[PendingWithdrawal]


class AccountRow(_Open):
    id: str
    mode: str


class Accounts(_Open):
    accounts: list[AccountRow]


class Margin(_Open):
    """The margin result (as `margin --format json`); amounts are decimal strings."""

    id: str
    mode: str
    equity: str
    initial_margin: str
    maintenance_margin: str
    free_collateral: str
    margin_ratio: str | None
    liquidatable: bool
    positions: list[dict[str, Any]]
    collateral: list[dict[str, Any]]
    # per underlying held: {underlying, index, below, above, liquidatable_now} (the account's margin only)
    liquidation_prices: list[dict[str, Any]] = []


class WhatIfAnswer(_Open):
    account: str
    trades: list[str]
    accepted: bool
    rejection: dict[str, Any] | None
    before: Margin
    after: Margin
    change: dict[str, str]


class Withdrawals(_Open):
    withdrawals: list[PendingWithdrawal]


class QueueRow(_Open):
    account: str
    equity: str
    maintenance_margin: str


class Queue(_Open):
    queue: list[QueueRow]


class AuctionRow(_Open):
    id: str
    account: str
    mechanism: str
    phase: Any
    phase_started: Any
    closes_at: Any
    bids: int


class Auctions(_Open):
    auctions: list[AuctionRow]


class Session(_Open):
    role: str
    account: str | None
    expires_in_s: int


class Health(_Open):
    status: str
    writer: str
    seq: int

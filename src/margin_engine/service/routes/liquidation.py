"""Keepers: the liquidation queue, starting liquidations, auctions and bids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.engine import liquidation_queue
from margin_engine.ledger.units import format_units
from margin_engine.service.answers import run
from margin_engine.service.deps import AccountId, CurrentPrincipal, CurrentRuntime, IdempotencyKey, require
from margin_engine.service.openapi import COMMAND, Auctions, Queue, Receipt, answers

router = APIRouter(prefix="/v1", tags=["liquidation"], dependencies=[Depends(require("keeper"))])


class Start(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: AccountId
    liquidator: AccountId | None = None


class BidBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    liquidator: AccountId | None = None  # a bound keeper key bids as its account
    fraction: Annotated[str, Field(min_length=1, max_length=32)]
    max_price: Annotated[str | None, Field(max_length=64)] = None


def _as_liquidator(principal, liquidator: str | None) -> str | None:
    """The liquidator a keeper acts as: its bound account only (named or not). An unbound keeper key
    may start auctions but names no one: taking positions needs a key bound to the liquidator."""
    if principal.role == "admin":
        return liquidator
    if principal.account is None:
        if liquidator is not None:
            raise HTTPException(
                403,
                {
                    "code": "forbidden",
                    "message": "an unbound keeper key acts as no account: create a keeper key --account LIQUIDATOR",
                },
            )
        return None
    if liquidator not in (None, principal.account):
        raise HTTPException(403, {"code": "forbidden", "message": f"this key liquidates as {principal.account!r}"})
    return principal.account


@router.get(
    "/liquidations/queue",
    summary="Liquidatable accounts, worst first (equity / maintenance)",
    response_model=None,
    responses=answers(Queue),
)
async def queue(runtime: CurrentRuntime, limit: Annotated[int, Field(ge=1, le=10_000)] = 100) -> dict:
    d = runtime.engine.state.profile.settlement_decimals
    rows = liquidation_queue(runtime.engine.margin_totals(), limit)
    return {
        "queue": [
            {
                "account": r["account"],
                "equity": format_units(r["equity"], d),
                "maintenance_margin": format_units(r["maintenance_margin"], d),
            }
            for r in rows
        ]
    }


@router.post(
    "/liquidations",
    summary="Start liquidating an account below maintenance (a bound keeper key as its own account by default)",
    response_model=None,
    responses=answers(Receipt, *COMMAND),
)
async def start(
    body: Start, principal: CurrentPrincipal, runtime: CurrentRuntime, idempotency: IdempotencyKey = None
) -> dict:
    liquidator = _as_liquidator(principal, body.liquidator)
    command = {"type": "start_liquidation", "account": body.account}
    if liquidator is not None:
        command["liquidator"] = liquidator
    return await run(runtime, command, idempotency)


@router.get("/auctions", summary="Auctions under way", response_model=None, responses=answers(Auctions))
async def auctions(runtime: CurrentRuntime) -> dict:
    return {
        "auctions": [
            {
                "id": a.id,
                "account": a.account,
                "mechanism": a.mechanism,
                "phase": a.phase,
                "phase_started": a.phase_started_s,
                "closes_at": a.closes_at or None,
                "bids": len(a.bids),
            }
            for a in runtime.engine.state.auctions.values()
        ]
    }


@router.post(
    "/auctions/{auction}/bids",
    summary="Bid in an auction (a bound keeper key as its own account by default)",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def bid(
    auction: str,
    body: BidBody,
    principal: CurrentPrincipal,
    runtime: CurrentRuntime,
    idempotency: IdempotencyKey = None,
) -> dict:
    liquidator = _as_liquidator(principal, body.liquidator)
    if liquidator is None:
        raise HTTPException(422, {"code": "bad_input", "field": "liquidator", "message": "missing: who bids"})
    command = {"type": "bid", "auction": auction, **body.model_dump(exclude_none=True), "liquidator": liquidator}
    return await run(runtime, command, idempotency, "auction")

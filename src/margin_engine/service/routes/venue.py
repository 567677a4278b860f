"""What the venue's own systems send: fills from the matching engine, markets, the clock,
funding, expiry settlement, insurance capital, price sources (admin keys) and oracle prices (oracle keys)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.engine.oracle_feed import sources_json
from margin_engine.service.answers import run
from margin_engine.service.deps import AccountId, CurrentRuntime, IdempotencyKey, require
from margin_engine.service.openapi import COMMAND, Receipt, answers

router = APIRouter(prefix="/v1", tags=["venue"])
Text = Annotated[str, Field(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fill(_Body):
    buyer: AccountId
    seller: AccountId
    instrument: Text
    size: Text
    price: Text
    aggressor: Literal["buyer", "seller"] | None = None


class Market(_Body):
    """An underlying's market (docs/formats.md, "The market model"), or the settlement
    stablecoin's price: `{"underlying": "USDC", "index": "0.985"}`."""

    underlying: Text
    index: Text
    vol: Annotated[float, Field(allow_inf_nan=False)] | Text | dict[str, Any] | None = None
    rate: Text | dict[str, Any] | None = None
    forward: dict[str, Any] | None = None
    perp: Text | None = None
    confidence: Annotated[float, Field(allow_inf_nan=False)] | Text | dict[str, Any] | None = None


class Clock(_Body):
    time: Text | Annotated[int, Field(ge=0)]


class Funding(_Body):
    instrument: Text
    rate: Text


class Expiry(_Body):
    underlying: Text
    expiry: Text
    price: Text


class Capital(_Body):
    asset: Text = "USDC"
    amount: Text


class PriceUpdateBody(_Body):
    underlying: Text
    source: Text
    price: Text
    confidence: Text | None = None
    volume: Text | None = None
    timestamp: Text | Annotated[int, Field(ge=0)]
    signature: Annotated[str, Field(min_length=128, max_length=128)]


class SourceBody(_Body):
    source: Text
    public_key: Annotated[str, Field(min_length=1, max_length=64)]
    underlyings: Annotated[list[Text], Field(min_length=1, max_length=64)] | None = None


def _command(kind: str, body: BaseModel) -> dict:
    return {"type": kind, **body.model_dump(exclude_none=True)}


ADMIN = [Depends(require("admin"))]
# what a command route answers: the receipt, or an error (documented; the JSON is sent as built)
RECEIPT: dict[str, Any] = {"response_model": None, "responses": answers(Receipt, *COMMAND)}


@router.post(
    "/fills", dependencies=ADMIN, summary="A fill from the matching engine (both sides margin-checked)", **RECEIPT
)
async def fill(body: Fill, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("trade", body), idempotency)


@router.post(
    "/markets",
    dependencies=ADMIN,
    summary="Set an underlying's market (index, vol, rates, forwards, perp mark, confidences) or a stablecoin's price",
    **RECEIPT,
)
async def market(body: Market, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("set_market", body), idempotency)


@router.post("/time", dependencies=ADMIN, summary="Advance the engine clock (sweeps auctions)", **RECEIPT)
async def clock(body: Clock, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("advance_time", body), idempotency)


@router.post("/funding", dependencies=ADMIN, summary="Apply a perp funding rate", **RECEIPT)
async def funding(body: Funding, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("apply_funding", body), idempotency)


@router.post("/expiries", dependencies=ADMIN, summary="Settle an expiry at its settlement price", **RECEIPT)
async def expiry(body: Expiry, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("settle_expiry", body), idempotency)


@router.post("/insurance", dependencies=ADMIN, summary="Pay capital into the insurance fund", **RECEIPT)
async def insurance(body: Capital, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("fund_insurance", body), idempotency)


@router.post("/oracle/updates", dependencies=[Depends(require("oracle"))], summary="A signed price update", **RECEIPT)
async def oracle_update(body: PriceUpdateBody, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("oracle_update", body), idempotency)


@router.post(
    "/oracle/sources", dependencies=ADMIN, summary="Register a price source (its Ed25519 public key)", **RECEIPT
)
async def register_source(body: SourceBody, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, _command("register_source", body), idempotency)


@router.delete(
    "/oracle/sources/{source}", dependencies=ADMIN, summary="Revoke a price source registered here", **RECEIPT
)
async def revoke_source(
    source: Annotated[str, Path(min_length=1, max_length=64)],
    runtime: CurrentRuntime,
    idempotency: IdempotencyKey = None,
) -> dict:
    return await run(runtime, {"type": "revoke_source", "source": source}, idempotency)


@router.get(
    "/oracle/sources", dependencies=[Depends(require("oracle"))], summary="Registered price sources and their keys"
)
async def list_sources(runtime: CurrentRuntime) -> dict:
    return {"sources": sources_json(runtime.engine.state)}

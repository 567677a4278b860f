"""Custody: the withdrawals waiting to be paid out, and their settlement or failure (custody or admin keys).

A trader's withdrawal is debited when requested, into the pending ledger account; custody pays it out
on the chain or at the bank and settles it with that transfer's reference, or fails it, and the
amount goes back to the account. Deposits are credited on the accounts route, by custody too.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.engine.views import pending_json
from margin_engine.service.answers import run
from margin_engine.service.deps import CurrentRuntime, IdempotencyKey, require
from margin_engine.service.openapi import COMMAND, Receipt, Withdrawals, answers
from margin_engine.service.routes.accounts import Reference

router = APIRouter(prefix="/v1/withdrawals", tags=["custody"], dependencies=[Depends(require("custody"))])


class Settle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: Reference


class Fail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, Field(min_length=1, max_length=200)]


@router.get(
    "", summary="Withdrawals waiting for custody, oldest first", response_model=None, responses=answers(Withdrawals)
)
async def pending(runtime: CurrentRuntime) -> dict:
    state = runtime.engine.state
    return {"withdrawals": [pending_json(state, w) for w in state.pending_withdrawals.values()]}


@router.post(
    "/{withdrawal}/settle",
    summary="Custody paid it out: record the transfer's reference",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def settle(withdrawal: str, body: Settle, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    command = {"type": "settle_withdrawal", "withdrawal": withdrawal, **body.model_dump()}
    return await run(runtime, command, idempotency, "withdrawal")


@router.post(
    "/{withdrawal}/fail",
    summary="Custody could not pay it: the amount goes back to the account",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def fail(withdrawal: str, body: Fail, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    command = {"type": "fail_withdrawal", "withdrawal": withdrawal, **body.model_dump()}
    return await run(runtime, command, idempotency, "withdrawal")

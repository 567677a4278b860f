"""Accounts: open, read, custody-confirmed deposits, withdrawal requests, margin (with explain) and what-if."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.errors import InputError
from margin_engine.service.answers import input_error, run
from margin_engine.service.deps import (
    AccountId,
    CurrentPrincipal,
    CurrentRuntime,
    IdempotencyKey,
    check_account,
    require,
)
from margin_engine.service.openapi import COMMAND, Account, Accounts, Margin, Receipt, WhatIfAnswer, answers
from margin_engine.service.views import account_json, margin_json, what_if_json_for

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
Amount = Annotated[str, Field(min_length=1, max_length=64, description='decimal string, e.g. "1000.5"')]
Asset = Annotated[str, Field(min_length=1, max_length=16)]
Reference = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="the custody transfer: a chain transaction id and log index (0xabc...:3) or a bank reference",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(_Body):
    account: AccountId
    mode: Literal["isolated", "cross", "portfolio"] = "cross"


class Deposit(_Body):
    asset: Asset = "USDC"
    amount: Amount
    reference: Reference


class WithdrawalRequest(_Body):
    asset: Asset = "USDC"
    amount: Amount


class Allocation(_Body):
    instrument: Annotated[str, Field(min_length=1, max_length=64, description="an isolated position, e.g. BTC-PERP")]
    amount: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            description='settlement asset, decimal string: into the position ("500"), or out of it ("-500")',
        ),
    ]


class WhatIf(_Body):
    trades: Annotated[list[Annotated[str, Field(max_length=128)]], Field(min_length=1, max_length=32)]


@router.post(
    "",
    summary="Open an account (admins, or the trader whose key it is)",
    response_model=None,
    responses=answers(Receipt, *COMMAND),
)
async def open_account(
    body: AccountCreate, principal: CurrentPrincipal, runtime: CurrentRuntime, idempotency: IdempotencyKey = None
) -> dict:
    check_account(principal, body.account)
    return await run(runtime, {"type": "open_account", **body.model_dump()}, idempotency)


@router.get(
    "",
    summary="List accounts",
    dependencies=[Depends(require("admin"))],
    response_model=None,
    responses=answers(Accounts),
)
async def list_accounts(runtime: CurrentRuntime) -> dict:
    return {"accounts": [{"id": a.id, "mode": a.mode} for a in runtime.engine.state.accounts.values()]}


def _existing(runtime, account: str) -> None:
    if account not in runtime.engine.state.accounts:
        raise HTTPException(404, {"code": "unknown_account", "message": f"no account {account!r}"})


@router.get(
    "/{account}",
    summary="Balances, positions and pending withdrawals",
    response_model=None,
    responses=answers(Account, 404),
)
async def get_account(account: str, principal: CurrentPrincipal, runtime: CurrentRuntime) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    return account_json(runtime.engine.state, account)


@router.post(
    "/{account}/deposits",
    dependencies=[Depends(require("custody"))],
    summary="Credit a deposit custody confirmed (custody or admin keys), once per transfer reference",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def deposit(account: str, body: Deposit, runtime: CurrentRuntime, idempotency: IdempotencyKey = None) -> dict:
    return await run(runtime, {"type": "deposit", "account": account, **body.model_dump()}, idempotency, "account")


@router.post(
    "/{account}/withdrawals",
    summary="Request a withdrawal: debited now (rejected if it leaves IM uncovered), paid out by custody",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def withdraw(
    account: str,
    body: WithdrawalRequest,
    principal: CurrentPrincipal,
    runtime: CurrentRuntime,
    idempotency: IdempotencyKey = None,
) -> dict:
    check_account(principal, account)
    command = {"type": "request_withdrawal", "account": account, **body.model_dump()}
    return await run(runtime, command, idempotency, "account")


@router.post(
    "/{account}/allocate",
    summary="Isolated margin: move collateral into a position (amount > 0) or back out of it (< 0)",
    response_model=None,
    responses=answers(Receipt, *COMMAND, 404),
)
async def allocate(
    account: str,
    body: Allocation,
    principal: CurrentPrincipal,
    runtime: CurrentRuntime,
    idempotency: IdempotencyKey = None,
) -> dict:
    check_account(principal, account)
    return await run(runtime, {"type": "allocate", "account": account, **body.model_dump()}, idempotency, "account")


@router.get(
    "/{account}/margin",
    summary="Margin, with the risk matrix explained on request",
    response_model=None,
    responses=answers(Margin, 404),
)
async def margin(account: str, principal: CurrentPrincipal, runtime: CurrentRuntime, explain: bool = False) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    try:
        return margin_json(runtime.engine, account, explain)
    except InputError as exc:
        raise input_error(exc) from None


@router.post(
    "/{account}/what-if",
    summary="Margin before and after hypothetical trades; changes nothing",
    response_model=None,
    responses=answers(WhatIfAnswer, 404),
)
async def what_if(account: str, body: WhatIf, principal: CurrentPrincipal, runtime: CurrentRuntime) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    try:
        return what_if_json_for(runtime.engine, account, body.trades)
    except InputError as exc:
        raise input_error(exc) from None

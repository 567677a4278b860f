"""Accounts: open, read, deposit, withdraw, margin (with explain) and what-if."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from margin_engine.errors import InputError
from margin_engine.service.answers import answer, input_error
from margin_engine.service.deps import (
    AccountId,
    CurrentPrincipal,
    CurrentRuntime,
    IdempotencyKey,
    check_account,
    require,
)
from margin_engine.service.views import account_json, margin_json, what_if_json_for

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
Amount = Annotated[str, Field(min_length=1, max_length=64, description='decimal string, e.g. "1000.5"')]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(_Body):
    account: AccountId
    mode: Literal["isolated", "cross", "portfolio"] = "cross"


class Movement(_Body):
    asset: Annotated[str, Field(min_length=1, max_length=16)] = "USDC"
    amount: Amount


class WhatIf(_Body):
    trades: Annotated[list[Annotated[str, Field(max_length=128)]], Field(min_length=1, max_length=32)]


@router.post("", summary="Open an account")
async def open_account(
    body: AccountCreate, principal: CurrentPrincipal, runtime: CurrentRuntime, idempotency_key: IdempotencyKey = None
) -> dict:
    check_account(principal, body.account)
    if principal.role not in ("admin", "trader"):
        raise HTTPException(403, {"code": "forbidden", "message": "accounts are opened by admins or their trader"})
    return answer(await runtime.submit({"type": "open_account", **body.model_dump()}, idempotency_key))


@router.get("", summary="List accounts", dependencies=[Depends(require("admin"))])
async def list_accounts(runtime: CurrentRuntime) -> dict:
    return {"accounts": [{"id": a.id, "mode": a.mode} for a in runtime.engine.state.accounts.values()]}


def _existing(runtime, account: str) -> None:
    if account not in runtime.engine.state.accounts:
        raise HTTPException(404, {"code": "unknown_account", "message": f"no account {account!r}"})


@router.get("/{account}", summary="Balances and positions")
async def get_account(account: str, principal: CurrentPrincipal, runtime: CurrentRuntime) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    return account_json(runtime.engine.state, account)


@router.post("/{account}/deposits", summary="Deposit collateral")
async def deposit(
    account: str,
    body: Movement,
    principal: CurrentPrincipal,
    runtime: CurrentRuntime,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    check_account(principal, account)
    return answer(await runtime.submit({"type": "deposit", "account": account, **body.model_dump()}, idempotency_key))


@router.post("/{account}/withdrawals", summary="Withdraw collateral (rejected if it leaves IM uncovered)")
async def withdraw(
    account: str,
    body: Movement,
    principal: CurrentPrincipal,
    runtime: CurrentRuntime,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    check_account(principal, account)
    return answer(await runtime.submit({"type": "withdraw", "account": account, **body.model_dump()}, idempotency_key))


@router.get("/{account}/margin", summary="Margin, with the risk matrix explained on request")
async def margin(account: str, principal: CurrentPrincipal, runtime: CurrentRuntime, explain: bool = False) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    try:
        return margin_json(runtime.engine, account, explain)
    except InputError as exc:
        raise input_error(exc) from None


@router.post("/{account}/what-if", summary="Margin before and after hypothetical trades; changes nothing")
async def what_if(account: str, body: WhatIf, principal: CurrentPrincipal, runtime: CurrentRuntime) -> dict:
    check_account(principal, account)
    _existing(runtime, account)
    try:
        return what_if_json_for(runtime.engine, account, body.trades)
    except InputError as exc:
        raise input_error(exc) from None

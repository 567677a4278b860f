"""Domain outcomes as HTTP answers: the domain never raises HTTP errors; this maps them.

bad input -> 422 with the field; a rejection -> 409 with its reason code and numbers (404 for an
unknown account, auction or withdrawal); a bug in handling the command -> 500 for that request;
the writer stopped -> 503; an accepted command -> 200 with its events.
"""

from __future__ import annotations

from fastapi import HTTPException

from margin_engine.errors import InputError

NOT_FOUND = {"unknown_account", "unknown_auction", "unknown_withdrawal"}


def input_error(exc: InputError) -> HTTPException:
    return HTTPException(422, {"code": "bad_input", "field": exc.field, "message": exc.message})


def answer(outcome: dict, idempotency=None) -> dict:
    """The runtime's outcome, or the HTTPException for a rejection, bad input or a failure; the
    journal's scoped client id is shown as the caller's own Idempotency-Key."""
    if "internal_error" in outcome:
        raise HTTPException(
            500,
            {"code": "internal_error", "message": "the command failed unexpectedly and was not applied; it is logged"},
        )
    if "input_error" in outcome:
        error = outcome["input_error"]
        if error["field"] == "client_id":
            raise HTTPException(
                422,
                {
                    "code": "idempotency_key_reused",
                    "field": "Idempotency-Key",
                    "message": "you already used this Idempotency-Key on this route for another request; use a new one",
                },
            )
        raise HTTPException(422, {"code": "bad_input", **error})
    if idempotency is not None and "client_id" in outcome:
        outcome = {**outcome, "client_id": idempotency.key}
    if "rejection" in outcome:
        rejection = outcome["rejection"]
        raise HTTPException(404 if rejection["code"] in NOT_FOUND else 409, rejection)
    return outcome


async def run(runtime, command: dict, idempotency=None) -> dict:
    """Submit one command and map its outcome: what every command route does."""
    return answer(await runtime.submit(command, None if idempotency is None else idempotency.client_id), idempotency)

"""Domain outcomes as HTTP answers: the domain never raises HTTP errors; this maps them.

bad input -> 422 with the field; a rejection -> 409 with its reason code and numbers, except that an
unknown account, auction or withdrawal named in the URL path is a 404 (one named in the body, such as
a fill's buyer, is the command's rejection: 409); a bug in handling the command -> 500 for that
request; the writer stopped -> 503; an accepted command -> 200 with its events.
"""

from __future__ import annotations

from fastapi import HTTPException

from margin_engine.errors import InputError

IN_PATH = {"account": "unknown_account", "auction": "unknown_auction", "withdrawal": "unknown_withdrawal"}


def input_error(exc: InputError) -> HTTPException:
    return HTTPException(422, {"code": "bad_input", "field": exc.field, "message": exc.message})


def answer(outcome: dict, idempotency=None, path: str | None = None) -> dict:
    """The runtime's outcome, or the HTTPException for a rejection, bad input or a failure; the
    journal's scoped client id is shown as the caller's own Idempotency-Key. `path`: what the URL path
    names (`account`, `auction`, `withdrawal`), whose absence is a 404."""
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
        missing = path is not None and rejection["code"] == IN_PATH[path]
        raise HTTPException(404 if missing else 409, rejection)
    return outcome


async def run(runtime, command: dict, idempotency=None, path: str | None = None) -> dict:
    """Submit one command and map its outcome: what every command route does. `path`: what the route's
    URL path names (`account`, `auction`, `withdrawal`), so that its absence is a 404, not a 409."""
    outcome = await runtime.submit(command, None if idempotency is None else idempotency.client_id)
    return answer(outcome, idempotency, path)

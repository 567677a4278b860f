"""Domain outcomes as HTTP answers: the domain never raises HTTP errors; this maps them.

bad input -> 422 with the field; a rejection -> 409 with its reason code and numbers (404 for an
unknown account or auction); an accepted command -> 200 with its events.
"""

from __future__ import annotations

from fastapi import HTTPException

from margin_engine.errors import InputError

NOT_FOUND = {"unknown_account", "unknown_auction"}


def input_error(exc: InputError) -> HTTPException:
    return HTTPException(422, {"code": "bad_input", "field": exc.field, "message": exc.message})


def answer(outcome: dict) -> dict:
    """The runtime's outcome, or the HTTPException for a rejection or bad input."""
    if "input_error" in outcome:
        raise HTTPException(422, {"code": "bad_input", **outcome["input_error"]})
    if "rejection" in outcome:
        rejection = outcome["rejection"]
        raise HTTPException(404 if rejection["code"] in NOT_FOUND else 409, rejection)
    return outcome

"""The account id rule, in one leaf module: the engine, files, API keys and HTTP routes check ids alike."""

from __future__ import annotations

import re

from margin_engine.errors import InputError

ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_account_id(value: object, field: str = "account") -> str:
    if not isinstance(value, str) or not ACCOUNT_ID_RE.match(value):
        raise InputError(field, f"account id must be 1-64 characters [A-Za-z0-9_.-], got {value!r}"[:160])
    return value

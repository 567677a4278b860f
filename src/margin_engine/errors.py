"""The two kinds of error, kept apart (TigerBeetle style).

`InputError` and its subclasses are operating errors: bad input that the caller can fix. They
name the field and say what is expected. `InvariantViolation` is a bug: a broken invariant such as
money created or destroyed; it stops the engine loudly and must never be caught and ignored.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: names the field at fault and what would be accepted."""

    MESSAGE_MAX = 300  # a line people read: a 5,000-character value quoted back helps nobody

    def __init__(self, field: str, message: str):
        self.field = field if len(field) <= 100 else f"{field[:97]}..."
        self.message = message if len(message) <= self.MESSAGE_MAX else f"{message[: self.MESSAGE_MAX - 3]}..."
        super().__init__(f"{self.field}: {self.message}")


class MarketMissing(InputError):
    """The margin maths needs a market (index, vol) that no `set_market` has given yet: the one input
    error a command handler answers as a rejection (`no_market`)."""


class InvariantViolation(AssertionError):
    """A broken invariant of the engine (a bug, never bad input)."""

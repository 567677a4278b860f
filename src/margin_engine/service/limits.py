"""Bounds at the door: requests per second per key (token bucket) and request body size."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Receive, Scope, Send

BUCKETS_MAX = 100_000  # keys or client addresses tracked before the full (idle) buckets are dropped


@dataclass
class TokenBucket:
    """`rate_per_s` tokens a second, up to `burst`; the clock comes in (tests pass their own).
    Memory stays bounded: a bucket idle long enough to be full again is forgotten when too many are held."""

    rate_per_s: float
    burst: float
    tokens: dict[str, float] = field(default_factory=dict)
    stamps: dict[str, float] = field(default_factory=dict)

    def allow(self, key: str, now_s: float) -> bool:
        if key not in self.stamps and len(self.stamps) >= BUCKETS_MAX:
            refill_s = self.burst / self.rate_per_s
            for k in [k for k, t in self.stamps.items() if now_s - t >= refill_s]:
                del self.stamps[k], self.tokens[k]
        last = self.stamps.get(key, now_s)
        tokens = min(self.burst, self.tokens.get(key, self.burst) + (now_s - last) * self.rate_per_s)
        self.stamps[key] = now_s
        if tokens < 1:
            self.tokens[key] = tokens
            return False
        self.tokens[key] = tokens - 1
        return True

    def retry_after_s(self, key: str, now_s: float) -> int:
        """Whole seconds (at least 1) until `key` has a token again: the Retry-After of a 429."""
        last = self.stamps.get(key, now_s)
        tokens = min(self.burst, self.tokens.get(key, self.burst) + (now_s - last) * self.rate_per_s)
        return max(1, math.ceil((1 - tokens) / self.rate_per_s))


class BodySizeLimit:
    """ASGI middleware: 413 for a body larger than `max_bytes`, by Content-Length or as it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _too_large(send, self.max_bytes)
            return
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.max_bytes)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, max_bytes: int) -> None:
    body = f'{{"code": "too_large", "message": "request bodies are limited to {max_bytes} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Prometheus metrics: commands and their latency, accounts at risk, the insurance fund."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from margin_engine.ledger.ledger import INSURANCE

REGISTRY = CollectorRegistry()
COMMANDS = Counter("margin_engine_commands", "Commands journaled", registry=REGISTRY)
BATCH_SECONDS = Histogram(
    "margin_engine_batch_seconds",
    "Seconds to apply and journal one batch",
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
REQUEST_SECONDS = Histogram(
    "margin_engine_request_seconds",
    "HTTP request latency",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
ACCOUNTS_AT_RISK = Gauge("margin_engine_accounts_liquidatable", "Accounts below maintenance", registry=REGISTRY)
INSURANCE_FUND = Gauge("margin_engine_insurance_fund", "Insurance fund balance, settlement asset", registry=REGISTRY)


def observe_batch(size: int, seconds: float) -> None:
    COMMANDS.inc(size)
    BATCH_SECONDS.observe(seconds)


def observe_state(engine) -> float:
    """Cheap gauges only (accounts at risk are counted when margins are read); returns the fund in USD."""
    s = engine.state
    usd = s.ledger.balance(INSURANCE, s.profile.settlement_asset) / 10**s.profile.settlement_decimals
    INSURANCE_FUND.set(usd)
    return usd


class RequestTiming:
    """ASGI middleware observing each request's latency by route template (cheap: no extra task)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            REQUEST_SECONDS.labels(getattr(route, "path", "unmatched")).observe(time.perf_counter() - started)

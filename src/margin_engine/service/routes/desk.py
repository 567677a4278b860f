"""The risk desk: parameters, oracle status, the event stream, Prometheus metrics and the dashboard."""

from __future__ import annotations

import asyncio
import json
from importlib import resources

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from prometheus_client import generate_latest

from margin_engine.clock import format_time
from margin_engine.engine.describe import FORMAT_VERSION
from margin_engine.ledger.ledger import INSURANCE
from margin_engine.ledger.units import format_units
from margin_engine.service import metrics
from margin_engine.service.deps import CurrentRuntime, get_principal, require

router = APIRouter(tags=["desk"])
ADMIN = [Depends(require("admin"))]
HEARTBEAT_S = 15.0


@router.get("/v1/parameters", dependencies=ADMIN, summary="The profile in force")
async def parameters(runtime: CurrentRuntime) -> dict:
    return runtime.engine.state.profile.model_dump(mode="json")


@router.get(
    "/v1/oracle/status", dependencies=[Depends(get_principal)], summary="Guarded mark and status per underlying"
)
async def oracle_status(runtime: CurrentRuntime) -> dict:
    return {"underlyings": _oracle_rows(runtime.engine.state)}


def _oracle_rows(state) -> list[dict]:
    rows = []
    for u in sorted(state.markets):
        mark = state.oracle_mark(u)
        rows.append(
            {
                "underlying": u,
                "index": state.markets[u].index,
                "status": "ok" if mark is None else str(mark.status),
                "reason": "set by admin" if mark is None else mark.reason,
                "twap": None if mark is None else mark.twap,
            }
        )
    return rows


@router.get("/v1/events/stream", dependencies=ADMIN, summary="Server-Sent Events: every event as it is journaled")
async def stream(request: Request, runtime: CurrentRuntime) -> StreamingResponse:
    queue = runtime.subscribe()

    async def events():
        try:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
        finally:
            runtime.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.get("/metrics", dependencies=ADMIN, summary="Prometheus metrics")
async def prometheus(runtime: CurrentRuntime) -> Response:
    metrics.ACCOUNTS_AT_RISK.set(int(runtime.engine.margin_totals().liquidatable.sum()))
    return Response(generate_latest(metrics.REGISTRY), media_type="text/plain; version=0.0.4")


@router.get("/v1/dashboard", dependencies=ADMIN, summary="What the risk desk page shows")
async def dashboard_data(runtime: CurrentRuntime) -> dict:
    state = runtime.engine.state
    d = state.profile.settlement_decimals
    margins = runtime.engine.margins()
    metrics.ACCOUNTS_AT_RISK.set(sum(m.liquidatable for m in margins))
    ratios = [(m.margin_ratio if m.margin_ratio is not None else float("inf"), m) for m in margins]
    nearest = sorted((r for r in ratios if r[1].maintenance_margin > 0), key=lambda r: -r[0])[:10]
    usage = [m.initial_margin / m.equity for m in margins if m.equity > 0 and m.initial_margin > 0]
    counts, edges = np.histogram(np.clip(usage, 0, 1.5), bins=15, range=(0, 1.5)) if usage else ([0] * 15, None)
    exposure: dict[str, dict] = {}
    for m in margins:
        for p in m.positions:
            u = p.instrument.split("-")[0]
            row = exposure.setdefault(
                u,
                {"open_interest": 0.0, "open_interest_usd": 0.0, "delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0},
            )
            row["open_interest"] += max(float(p.size), 0.0)  # contracts of one coin each, long side
            row["open_interest_usd"] += max(float(p.size), 0.0) * state.markets[u].index
            for name, g in zip(("delta", "gamma", "vega", "theta"), p.greeks, strict=True):
                row[name] += abs(g)
    return {
        "format_version": FORMAT_VERSION,
        "time": None if state.now_s is None else format_time(state.now_s),
        "time_s": state.now_s,
        "settlement_asset": state.profile.settlement_asset,
        "profile": state.profile.name,
        "nearest_liquidation": [
            {
                "account": m.id,
                "margin_ratio": None if r == float("inf") else r,
                "equity": format_units(m.equity, d),
                "maintenance_margin": format_units(m.maintenance_margin, d),
                # the index levels that bring it to maintenance, per underlying held
                "liquidation_prices": [p.to_json() for p in state.liquidation_prices(m.id)],
            }
            for r, m in nearest
        ],
        "margin_usage": {"bucket_edges": [i / 10 for i in range(16)], "counts": [int(c) for c in counts]},
        "exposure": exposure,
        "insurance_fund": format_units(state.ledger.balance(INSURANCE, state.profile.settlement_asset), d),
        "insurance_history": list(runtime.insurance_history),  # [engine time in Unix seconds, USD]
        "recent": [e for e in runtime.recent if e["type"] in _DESK_EVENTS][-20:],
        "oracle": _oracle_rows(state),
    }


_DESK_EVENTS = {
    "margin_call",
    "liquidation_started",
    "liquidation_fill",
    "auction_ended",
    "bankruptcy",
    "deleveraged",
    "market_set",
    "oracle_updated",
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(resources.files("margin_engine.service").joinpath("static/dashboard.html").read_text())


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    files = {
        "uPlot.iife.min.js": "application/javascript",
        "uPlot.min.css": "text/css",
        "dashboard.js": "application/javascript",
    }
    if name not in files:
        return Response(status_code=404)
    return Response(
        resources.files("margin_engine.service").joinpath(f"static/{name}").read_bytes(), media_type=files[name]
    )

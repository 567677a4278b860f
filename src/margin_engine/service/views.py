"""What the service answers with for reads: the engine's own JSON views."""

from __future__ import annotations

from margin_engine.engine import Engine
from margin_engine.engine.views import account_json
from margin_engine.engine.what_if import what_if

__all__ = ["account_json", "margin_json", "what_if_json_for"]


def margin_json(engine: Engine, account: str, explain: bool) -> dict:
    prices = [p.to_json() for p in engine.state.liquidation_prices(account)]
    return {**engine.state.margin(account, explain).to_json(), "liquidation_prices": prices}


def what_if_json_for(engine: Engine, account: str, trades: list[str]) -> dict:
    return what_if(engine.state, account, trades).to_json()

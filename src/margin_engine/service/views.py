"""What the service answers with for reads: the engine's own JSON views."""

from __future__ import annotations

from margin_engine.engine import Engine
from margin_engine.engine.views import account_json
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.what_if import what_if, what_if_json

__all__ = ["account_json", "margin_json", "what_if_json_for"]


def margin_json(engine: Engine, account: str, explain: bool) -> dict:
    s = engine.state
    (m,) = compute_margins([s.view(account)], s.markets, s.profile, s.now_s or 0, explain=explain)
    return m.to_json()


def what_if_json_for(engine: Engine, account: str, trades: list[str]) -> dict:
    s = engine.state
    before, after = what_if(s.view(account), trades, s.markets, s.profile, s.now_s or 0)
    return what_if_json(before, after, trades)

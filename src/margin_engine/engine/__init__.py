"""The engine state machine: commands in, events (or a Rejection) out."""

from margin_engine.engine.commands import Command, parse_command
from margin_engine.engine.engine import apply, decide
from margin_engine.engine.events import Event, event_from_json
from margin_engine.engine.rejection import Rejection
from margin_engine.engine.scan import BookCache
from margin_engine.engine.state import State, audit, audit_events, evolve, replay

__all__ = [
    "Command",
    "Event",
    "Rejection",
    "State",
    "apply",
    "audit",
    "audit_events",
    "decide",
    "event_from_json",
    "evolve",
    "parse_command",
    "replay",
    "Engine",
]


def liquidation_queue(totals, limit: int | None = None) -> list[dict]:
    """Rank accounts (MarginTotals) by shortfall; amounts in the settlement asset's units."""
    import numpy as np

    from margin_engine.liquidation.ranking import health_ratio, liquidation_order

    equity_units, mm_units = totals.equity.tolist(), totals.maintenance_margin.tolist()
    equity = np.array(equity_units, dtype=float)
    maintenance = np.array(mm_units, dtype=float)
    order = liquidation_order(equity, maintenance, limit)
    ratio = health_ratio(equity, maintenance)
    return [
        {
            "account": totals.ids[i],
            "equity": equity_units[i],
            "maintenance_margin": mm_units[i],
            "health": float(ratio[i]),
        }
        for i in order
    ]


class Engine:
    """A state with its journal of events: what the CLI, the service and the simulator drive."""

    def __init__(self, profile):
        self.state = State(profile)
        self.journal: list[Event] = []
        self._books = BookCache()

    def submit(self, obj: dict):
        """Parse (raises InputError on bad input, state untouched) and apply one JSON command."""
        return self.apply(parse_command(obj, self.state.profile))

    def apply(self, command: Command):
        outcome = apply(self.state, command)
        if not isinstance(outcome, Rejection):
            self.journal.extend(outcome)
        return outcome

    def liquidation_queue(self, limit: int | None = None) -> list[dict]:
        """Liquidatable accounts, worst first (equity / maintenance ascending, as dYdX ranks them):
        what a keeper reads before it calls start_liquidation."""
        return liquidation_queue(self.margin_totals(), limit)

    def margins(self, explain: bool = False):
        """Margin of every account, in opening order."""
        from margin_engine.margin.calculator import compute_margins

        s = self.state
        book = self._books.book(s)
        return compute_margins(book.views, s.markets, s.profile, s.now_s or 0, explain=explain, book=book)

    def margin_totals(self, at_s: int | None = None):
        """Equity, requirements and liquidatable flags of every account (MarginTotals, opening
        order): the same numbers as `margins()`, without the per-position detail; `at_s` values
        the same state at another time (options' time to expiry)."""
        from margin_engine.margin.calculator import margin_totals

        s = self.state
        return margin_totals(self._books.book(s), s.markets, s.profile, s.now_s or 0 if at_s is None else at_s)

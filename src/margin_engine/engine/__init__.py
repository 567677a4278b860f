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
    from margin_engine.liquidation.ranking import health_ratio, liquidation_order

    equity = totals.equity.astype(float)  # int64 or Python ints: each correctly rounded
    maintenance = totals.maintenance_margin.astype(float)
    order = liquidation_order(equity, maintenance, limit)
    ratio = health_ratio(equity[order], maintenance[order]).tolist()
    return [
        {
            "account": totals.ids[i],
            "equity": int(totals.equity[i]),
            "maintenance_margin": int(totals.maintenance_margin[i]),
            "health": ratio[k],
        }
        for k, i in enumerate(order.tolist())
    ]


def _same(a: tuple, b: tuple) -> bool:
    """Element-wise identity (numbers by value), markets' (name, snapshot) pairs by identity."""
    return (
        a[0] is b[0]
        and a[1] == b[1]
        and a[2] is b[2]
        and a[3] == b[3]
        and len(a[4]) == len(b[4])
        and all(x[0] == y[0] and x[1] is y[1] for x, y in zip(a[4], b[4], strict=True))
    )


class Engine:
    """A state with its journal of events: what the CLI, the service and the simulator drive."""

    def __init__(self, profile):
        self.state = State(profile)
        self.journal: list[Event] = []
        self._books = BookCache()
        self._totals: tuple | None = None  # (what it was computed from, MarginTotals)

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

    def book(self):
        """Every account's positions and balances as arrays (FlatBook, opening order): what the
        margin scans price, kept between them and re-read only where something changed."""
        return self._books.book(self.state)

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
        now = s.now_s or 0 if at_s is None else at_s
        # A keeper's scan, the simulator's sample and its liquidation accounting often ask twice of
        # the same state: the last answer is kept while nothing it reads changed (the accounts'
        # revision, the profile, the time, each market snapshot, by identity: snapshots are frozen).
        key = (s, s.revision, s.profile, now, tuple(s.markets.items()))
        last = self._totals
        if last is not None and _same(last[0], key):
            return last[1]
        totals = margin_totals(self._books.book(s), s.markets, s.profile, now)
        for array in (totals.equity, totals.initial_margin, totals.maintenance_margin, totals.free_collateral):
            array.setflags(write=False)  # shared with later callers: read-only
        totals.liquidatable.setflags(write=False)
        totals.notional_usd.setflags(write=False)
        self._totals = (key, totals)
        return totals

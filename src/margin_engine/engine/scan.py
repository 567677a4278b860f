"""The venue's accounts as one `FlatBook`, kept between margin scans.

A keeper scans every account each round and a stress run every step, while positions and balances
change only for the few accounts a command touched. `evolve` stamps each account it changes with
the state's revision; the cache rebuilds those accounts' views and re-flattens only when the
revision moved (or the state or profile was replaced).
"""

from __future__ import annotations

from margin_engine.engine.state import State
from margin_engine.margin.book import AccountView
from margin_engine.margin.flat import FlatBook, flatten


class BookCache:
    def __init__(self) -> None:
        self._state: State | None = None
        self._assets: object = None
        self._revision = -1
        self._views: dict[str, AccountView] = {}
        self._book: FlatBook | None = None

    def book(self, state: State) -> FlatBook:
        profile = state.profile
        if state is not self._state or profile.assets is not self._assets:
            self._state, self._assets, self._views, self._book = state, profile.assets, {}, None
        stale = self._book is None or state.revision != self._revision
        if stale:
            views = self._views
            for a in state.accounts:
                if a not in views or state.touched.get(a, 0) > self._revision:
                    views[a] = state.view(a)
            self._revision = state.revision
        if stale or self._book.profile is not profile:
            self._book = flatten([self._views[a] for a in state.accounts], profile)
        return self._book

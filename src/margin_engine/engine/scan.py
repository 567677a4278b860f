"""The venue's accounts as one `FlatBook`, kept between margin scans.

A keeper scans every account each round and a stress run every step, while positions and balances
change only for the few accounts a command touched. `evolve` stamps each account it changes with
the state's revision; when it moved, the cache reads those accounts again and merges their rows
into the book (`flat.refresh`); a replaced state or profile starts over.
"""

from __future__ import annotations

from margin_engine.engine.state import State
from margin_engine.margin.book import AccountView
from margin_engine.margin.flat import FlatBook, flatten, refresh


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
        if self._book is not None and state.revision == self._revision and self._book.profile is profile:
            return self._book
        views, changed = self._views, []
        for i, a in enumerate(state.accounts):
            if a not in views or state.touched.get(a, 0) > self._revision:
                views[a] = state.view(a)
                changed.append(i)
        self._revision = state.revision
        ordered = [views[a] for a in state.accounts]
        self._book = flatten(ordered, profile) if self._book is None else refresh(self._book, ordered, changed, profile)
        return self._book

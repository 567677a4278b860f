"""The venue's accounts as one `FlatBook`, kept between margin scans.

A keeper scans every account each round and a stress run every step, while positions and balances
change only for the few accounts a command touched. `evolve` stamps each account it changes with
the state's revision (`State.touched`, ordered by revision); when it moved, the cache reads the
accounts stamped since its last look, newest first until an older stamp, and merges their rows
into the book (`flat.refresh`): time proportional to what changed, not to the venue. A replaced
state or profile starts over.
"""

from __future__ import annotations

from itertools import islice

from margin_engine.engine.state import State
from margin_engine.margin.book import AccountView
from margin_engine.margin.flat import FlatBook, flatten, refresh


class BookCache:
    def __init__(self) -> None:
        self._state: State | None = None
        self._assets: object = None
        self._revision = -1
        self._views: list[AccountView] = []  # in opening order
        self._index: dict[str, int] = {}  # account -> its place in _views
        self._book: FlatBook | None = None

    def book(self, state: State) -> FlatBook:
        profile = state.profile
        if state is not self._state or profile.assets is not self._assets:
            self._state, self._assets, self._book = state, profile.assets, None
        if self._book is not None and state.revision == self._revision and self._book.profile is profile:
            return self._book
        if self._book is None:
            self._views = [state.view(a) for a in state.accounts]
            self._index = {a: i for i, a in enumerate(state.accounts)}
            self._revision = state.revision
            self._book = flatten(self._views, profile)
            return self._book
        changed: list[int] = []
        for a in islice(state.accounts, len(self._index), None):  # opened since (accounts are never removed)
            self._index[a] = len(self._views)
            self._views.append(state.view(a))
            changed.append(self._index[a])
        for a, stamp in reversed(state.touched.items()):
            if stamp <= self._revision:
                break
            i = self._index[a]
            self._views[i] = state.view(a)
            changed.append(i)
        self._revision = state.revision
        self._book = refresh(self._book, self._views, changed, profile)
        return self._book

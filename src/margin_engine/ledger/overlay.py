"""A copy-on-write view of a dict: what-if changes stay in the view, the base is never written."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

_DELETED = object()


class Overlay(MutableMapping):
    """Reads fall through to `base`; writes and deletes land in a layer of their own (O(1) to make).
    Iteration keeps the base's order, then new keys in the order they were added."""

    def __init__(self, base: Mapping):
        self._base = base
        self._layer: dict[Any, Any] = {}

    def __getitem__(self, key):
        value = self._layer[key] if key in self._layer else self._base[key]
        if value is _DELETED:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value) -> None:
        self._layer[key] = value

    def __delitem__(self, key) -> None:
        self[key]  # KeyError when absent, as a dict
        self._layer[key] = _DELETED

    def __iter__(self) -> Iterator:
        for key in self._base:
            if self._layer.get(key, None) is not _DELETED:
                yield key
        for key, value in self._layer.items():
            if key not in self._base and value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key) -> bool:
        if key in self._layer:
            return self._layer[key] is not _DELETED
        return key in self._base

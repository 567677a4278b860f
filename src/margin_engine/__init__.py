"""margin-engine: a deterministic margin engine for crypto options and perpetuals.

The Python API (docs/python.md): `import margin_engine as me`, then `me.margin(portfolio)`,
`me.price_options(...)`, `me.what_if(...)`, `me.run_engine(...)`, `me.load_journal(...)`,
`me.simulate(...)`, `me.load_profile(...)`. Names load on first use (PEP 562): importing the
package imports neither numpy, scipy nor pandas.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from margin_engine import api as _api

__version__ = "0.1.0"
__all__ = ["__version__", *_api.__all__]


def __getattr__(name: str) -> Any:
    if name not in _api.EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = _api.export(name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_api.EXPORTS})


class _Margin:
    """`me.margin`: called, the API's `margin()`; otherwise the `margin_engine.margin` package.

    `margin_engine.margin` is also the package of margin rules, and the import system binds a
    package to its parent's attribute on first import: a plain attribute would be the function or
    the package depending on what was imported first. So the attribute is this object, which calls
    the function and passes attribute access (`margin_engine.margin.calculator`) to the package.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _api.export("margin")(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("margin_engine.margin"), name)

    @property
    def __wrapped__(self) -> Any:  # inspect.signature and help() show margin()'s
        return _api.export("margin")

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return _api.export("margin").__doc__

    def __repr__(self) -> str:
        return "<function margin_engine.margin (and the margin_engine.margin package)>"


class _Package(types.ModuleType):
    @property
    def margin(self) -> _Margin:
        return _MARGIN

    @margin.setter
    def margin(self, package: Any) -> None:
        """The import system binds margin_engine.margin here; it stays reachable through _MARGIN."""


_MARGIN = _Margin()
sys.modules[__name__].__class__ = _Package

"""The Python API: `import margin_engine as me`, then `me.margin(...)`, `me.price_options(...)`,
`me.what_if(...)`, `me.run_engine(...)`, `me.load_journal(...)`, `me.simulate(...)`.

One module per concern (`margins`, `pricing`, `hypothetical` (what-if), `engine`, `simulation`; `inputs` turns
dicts, files and DataFrames into portfolios). Results hold the engine's exact objects and show
themselves as DataFrames (`to_pandas()`), text (`summary()`) and HTML in notebooks. See docs/python.md.

Names load on first use (PEP 562), so that pricing does not wait for the simulator, nor
`import margin_engine` for numpy, scipy or pandas.
"""

from __future__ import annotations

import importlib
from typing import Any

EXPORTS = {
    "margin": "margin_engine.api.margins",
    "MarginReport": "margin_engine.api.margins",
    "price_options": "margin_engine.api.pricing",
    "price_black76": "margin_engine.api.pricing",
    "what_if": "margin_engine.api.hypothetical",
    "WhatIfReport": "margin_engine.api.hypothetical",
    "run_engine": "margin_engine.api.engine",
    "load_journal": "margin_engine.api.engine",
    "RunReport": "margin_engine.api.engine",
    "simulate": "margin_engine.api.simulation",
    "SimulationReport": "margin_engine.api.simulation",
    "Engine": "margin_engine.engine",
    "InputError": "margin_engine.errors",
    "Profile": "margin_engine.margin.profile",
    "load_profile": "margin_engine.margin.profile",
    "AccountMargin": "margin_engine.margin.result",
    "PositionMargin": "margin_engine.margin.result",
    "Greeks": "margin_engine.margin.result",
}

__all__ = sorted(EXPORTS)


def export(name: str) -> Any:
    """The API object called `name`, its module imported now."""
    try:
        module = EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'margin_engine' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = export(name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})

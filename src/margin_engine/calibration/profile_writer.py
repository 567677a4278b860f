"""Write a profile whose portfolio price range for one underlying is the calibrated one."""

from __future__ import annotations

import math
from pathlib import Path

import tomli_w

from margin_engine.errors import InputError
from margin_engine.margin.profile import Profile, parse_profile

BUCKETS_PER_SIDE = 4  # Deribit's 9 buckets: the step is a quarter of the range


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list | tuple):
        return [_drop_none(v) for v in obj]
    return obj


def with_price_range(profile: Profile, underlying: str, price_range: float, note: str) -> str:
    """TOML text of `profile` with the range (rounded up to 0.0001) of `underlying`; it parses back."""
    if profile.portfolio is None:
        raise InputError("profile", f"{profile.name} has no portfolio section; use deribit-pm or derive-pmrm")
    params = profile.portfolio.underlyings.get(underlying)
    if params is None or params.price_range is None:
        raise InputError("underlying", f"{profile.name} has no price-range grid for {underlying!r}")
    rounded = math.ceil(price_range * 10_000) / 10_000
    data = _drop_none(profile.model_dump(mode="json"))
    data["name"] = f"{profile.name}-calibrated"
    data["description"] = f"{profile.description} | {note}"
    grid = data["portfolio"]["underlyings"][underlying]
    grid["price_range"] = rounded
    grid["price_step"] = rounded / BUCKETS_PER_SIDE
    text = f"# Written by `margin-engine calibrate`: {note}\n" + tomli_w.dumps(data)
    parse_profile(text, source="calibrated profile")  # paired check: what we write must load
    return text


def write_profile(text: str, path: Path) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise InputError("--out", f"cannot write {path}: {exc.strerror}") from None

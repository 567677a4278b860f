"""What a variant runs with: its profile (mechanism, buffer, oracle guards and sources) and the
loop's settings, resolved against the scenario; the simulation keys that sign for each source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from margin_engine.errors import InputError
from margin_engine.margin.profile import OracleConfig, Profile, load_profile
from margin_engine.oracle.params import parse_oracle_params
from margin_engine.oracle.signing import dump_public_key
from margin_engine.simulation.impact import DepthBook
from margin_engine.simulation.liquidity import LiquidityParams
from margin_engine.simulation.scenario import Scenario, Variant


@dataclass(frozen=True)
class Design:
    """A variant resolved against its scenario: what the engine and the loop use."""

    name: str
    profile: Profile
    margin_mode: str
    guards: bool
    book: DepthBook  # at the start; with depth_oi_ratio set, its depth is scaled to the open interest
    price_range: str
    depth_oi_ratio: float | None = None
    liquidity: LiquidityParams = LiquidityParams()
    insurance_fund_oi_ratio: float | None = None  # None: the scenario's insurance_fund_usd


def resolve_variant(scenario: Scenario, variant: Variant) -> Design:
    """The profile (mechanism, buffer, oracle sources) and the loop settings of one variant."""
    name = variant.profile or scenario.profile
    path = Path(name)
    if path.suffix == ".toml" and not path.is_absolute():
        name = str(Path(scenario.base_dir) / path)
    profile = load_profile(name)
    mode = variant.margin_mode or scenario.population.margin_mode
    price_range = variant.price_range or scenario.price_range
    grids = [] if profile.portfolio is None else [u for u, p in profile.portfolio.underlyings.items() if p.price_range]
    if price_range == "vol" and not grids:
        raise InputError(
            f"variants.{variant.name}.price_range",
            f"'vol' scales a portfolio price_range grid; {name} has none (its scenarios are a fixed list or absent)",
        )
    if mode == "portfolio" and profile.portfolio is None:
        raise InputError(
            f"variants.{variant.name}.margin_mode", f"portfolio mode needs a profile with [portfolio]; {name} has none"
        )
    liq = profile.liquidation
    if variant.mechanism is not None:
        liq = liq.model_copy(update={"mechanism": variant.mechanism})
    if variant.buffer_ratio is not None:
        liq = liq.model_copy(update={"partial": liq.partial.model_copy(update={"buffer_ratio": variant.buffer_ratio})})
    sources = {s: dump_public_key(_key(s).public_key()) for s in _sources(scenario.oracle.sources)}
    params, unders = profile.oracle.params, profile.oracle.underlyings
    if variant.oracle_params:  # over the profile's guards, per underlying too
        where = f"variants.{variant.name}.oracle_params"
        params = parse_oracle_params({**params.model_dump(), **variant.oracle_params}, where)
        unders = {u: parse_oracle_params({**p.model_dump(), **variant.oracle_params}, where) for u, p in unders.items()}
    oracle = OracleConfig(
        sources=sources,
        params=params,
        underlyings=unders,
        confidence_im_threshold=profile.oracle.confidence_im_threshold,
        confidence_im_factor=profile.oracle.confidence_im_factor,
    )
    profile = profile.model_copy(update={"liquidation": liq, "oracle": oracle})
    d = scenario.depth
    book = DepthBook(variant.depth_usd_per_pct or d.depth_usd_per_pct, d.permanent_fraction, d.depth_exponent)
    oi_ratio = variant.depth_oi_ratio or (None if variant.depth_usd_per_pct else d.depth_oi_ratio)
    liquidity = LiquidityParams(
        d.vol_elasticity, d.drawdown_elasticity, d.refill_half_life_s, d.market_maker_inventory_usd
    )
    guards = scenario.oracle.guards if variant.oracle_guards is None else variant.oracle_guards
    fund_ratio = (
        variant.insurance_fund_oi_ratio
        if variant.insurance_fund_oi_ratio is not None
        else scenario.insurance_fund_oi_ratio
    )
    return Design(variant.name, profile, mode, guards, book, price_range, oi_ratio, liquidity, fund_ratio)


def _sources(n: int) -> tuple[str, ...]:
    return tuple(f"src{i}" for i in range(n))


@cache
def _key(source: str) -> Ed25519PrivateKey:
    """A fixed simulation key per source name (not a secret: the simulator signs for every source)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"margin-engine-sim:{source}".encode()).digest())

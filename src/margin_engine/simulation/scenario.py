"""A stress scenario: price model, population, keepers, MEV searchers, market depth, oracle and the variants to compare.

Read from TOML (`load_scenario`); every model is frozen and rejects unknown keys, and units are in
the names. A variant overrides a few design choices of the base scenario (traders' margin mode,
liquidation mechanism, price range, oracle guards, profile, depth) so designs run side by side
on the same paths. See docs/simulation.md, "The stress simulator".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from margin_engine.errors import InputError
from margin_engine.reading import parse_toml, read_text

MarginMode = Literal["isolated", "cross", "portfolio"]
Mechanism = Literal["fixed", "dutch", "batch"]
ModelKind = Literal["gbm", "merton", "garch"]


# Upper bounds below: far above any market a stress run models (1e9 USD BTC, 1e12 USD of capital,
# a day of latency), far below where the path maths overflows.
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)  # no "1", true, inf


class PriceModel(_Frozen):
    """Where the fundamental price comes from: a historical CSV window (a missing file is an error,
    never a quiet switch to generated prices) or a generator. `shock_*` adds a one-off jump at a
    step on top, for `shock_steps` steps only when set (a wick)."""

    kind: Literal["historical", "gbm", "merton", "garch"] = "gbm"
    csv: str | None = None  # historical: path, relative to the scenario file
    start: str | None = None  # historical window, ISO 8601 with zone or Unix seconds (inclusive)
    end: str | None = None
    # historical: rescale the window to start here (unset: the real prices, as is); generated: the
    # start (unset: 60,000)
    spot0_usd: float | None = Field(default=None, gt=0, le=1e9)
    # historical: "close" replays bar closes (wicks lost); "bridge" steps dt_s inside each bar
    # through its low and high (history.historical_path), a new draw per path
    intrabar: Literal["close", "bridge"] = "close"
    vol_annual: float = Field(default=0.8, ge=0, le=10)
    drift_annual: float = Field(default=0.0, ge=-10, le=10)
    jump_intensity_annual: float = Field(default=20.0, ge=0, le=10_000)
    jump_mean_log: float = Field(default=-0.03, ge=-1, le=1)
    jump_vol_log: float = Field(default=0.04, ge=0, le=1)
    garch_omega_daily: float = Field(default=2e-5, gt=0, le=0.01)
    garch_alpha: float = Field(default=0.084, ge=0, lt=1)
    garch_beta: float = Field(default=0.9, ge=0, lt=1)
    garch_nu: float = Field(default=3.3, gt=2, le=1_000)
    shock_step: int | None = Field(default=None, ge=1, le=100_000)
    shock_pct: float = Field(default=0.0, gt=-90, le=100)
    shock_steps: int | None = Field(
        default=None, ge=1, le=100_000
    )  # a wick: the shock lasts this many steps; unset: it stays

    @model_validator(mode="before")
    @classmethod
    def _no_fallback(cls, data: object) -> object:
        if isinstance(data, dict) and "fallback" in data:
            raise ValueError(
                "fallback is no more: a historical scenario whose price file is missing stops with an error;"
                " ship the file (examples/data) or use kind = 'merton' | 'gbm' | 'garch' explicitly"
            )
        return data

    @model_validator(mode="after")
    def _historical(self) -> PriceModel:
        if self.kind == "historical" and not self.csv:
            raise ValueError("a historical price model needs csv")
        if self.garch_alpha + self.garch_beta > 1:
            raise ValueError("garch_alpha + garch_beta must be <= 1")
        return self


class VolModel(_Frozen):
    """Implied vol from spot (log-linear, crash elasticity beta) pulled up by realized vol; spot is
    the traded mid (forced sales included) or the fundamental path."""

    vol0_annual: float = Field(default=0.6, gt=0, le=10)
    spot_vol_beta: float = Field(default=2.5, ge=-10, le=10)
    vol_floor_annual: float = Field(default=0.2, gt=0, le=10)
    vol_cap_annual: float = Field(default=3.0, gt=0, le=10)
    realized_weight: float = Field(default=0.5, ge=0, le=1)
    realized_half_life_s: float = Field(default=86_400.0, gt=0, le=366 * 86_400)
    follows: Literal["mid", "fundamental"] = "mid"
    # The smile the options in the book are marked at, sticky moneyness (it moves with spot, the
    # sticky-delta rule to first order): vol(K) = atm + skew x m + curvature x m^2, m = ln(K / spot),
    # within the floor and cap. 0 and 0: one flat vol, as before.
    smile_skew: float = Field(default=0.0, ge=-5, le=5)
    smile_curvature: float = Field(default=0.0, ge=0, le=20)


class Population(_Frozen):
    """The reference population (population.py): perp traders, option sellers, hedged books, a
    covered-call vault and one market maker."""

    traders: int = Field(default=120, ge=0, le=10_000)
    long_fraction: float = Field(default=0.6, ge=0, le=1)
    leverage_median: float = Field(default=8.0, ge=1, le=1_000)
    leverage_sigma_log: float = Field(default=0.6, ge=0, le=3)
    leverage_max: float = Field(default=40.0, ge=1, le=1_000)
    notional_median_usd: float = Field(default=60_000.0, gt=0, le=1e9)
    notional_sigma_log: float = Field(default=1.0, ge=0, le=3)
    option_sellers: int = Field(default=8, ge=0, le=1_000)
    option_otm_pct: float = Field(default=20.0, gt=0, lt=90)
    option_size_max: int = Field(default=5, ge=1, le=10_000)
    option_collateral_ratio: float = Field(default=1.5, ge=1, le=100)  # of initial margin
    option_expiry_days: int = Field(default=30, ge=1, le=365)  # after the run ends
    hedged_books: int = Field(default=6, ge=0, le=1_000)  # short OTM option + delta hedge in the perp
    hedged_otm_pct: float = Field(default=10.0, gt=0, lt=90)
    vault_btc: float = Field(default=50.0, ge=0, le=1e6)  # covered-call vault's BTC (0: no vault)
    vault_roll_days: int = Field(default=7, ge=1, le=365)
    vault_otm_pct: float = Field(default=10.0, gt=0, lt=90)
    margin_mode: MarginMode = "cross"
    market_maker_collateral_usd: float = Field(default=1e9, gt=0, le=1e12)

    @field_validator("vault_btc")
    @classmethod
    def _btc_size(cls, v: float) -> float:
        if abs(v * 1e4 - round(v * 1e4)) > 1e-6:
            raise ValueError("vault_btc has at most 4 decimals (it is also the size of the calls sold)")
        return v


class Keepers(_Frozen):
    """Liquidation bots: they act on the queue as it was `latency_s` ago, `round_s` apart within a step."""

    count: int = Field(default=3, ge=1, le=100)
    latency_s: int = Field(default=0, ge=0, le=86_400)
    capital_usd: float = Field(default=5e6, gt=0, le=1e12)
    cost_per_action_usd: float = Field(default=5.0, ge=0, le=1e6)
    profit_ratio: float = Field(default=0.005, ge=0, lt=1)  # auctions: margin of notional a keeper wants
    round_s: int = Field(default=10, ge=1, le=86_400)
    rounds_max: int = Field(default=8, ge=1, le=100)  # cascade rounds per step
    actions_per_round_max: int = Field(default=50, ge=1, le=100_000)
    # options a liquidator took are sold back to the market maker each round at the model price
    # (Black-76 on the published smile) less this share of it (bought back at plus it); None: held
    option_unwind_spread_ratio: float | None = Field(default=None, ge=0, lt=1)


class Mev(_Frozen):
    """MEV searchers: liquidators that see the queue `latency_s` late (sooner than keepers, as a rule)
    and act before keepers in every round, paying `priority_fee_usd` per action that lands (a bundle
    that would fail is dropped unpaid); `profit_ratio` is the margin of notional they want."""

    searchers: int = Field(default=1, ge=0, le=100)
    latency_s: int = Field(default=0, ge=0, le=86_400)
    capital_usd: float = Field(default=2e6, gt=0, le=1e12)
    priority_fee_usd: float = Field(default=20.0, ge=0, le=1e6)
    profit_ratio: float = Field(default=0.002, ge=0, lt=1)


class Backstop(_Frozen):
    """The protocol's own liquidator (Hyperliquid's liquidator vault: it takes over an account whose
    equity falls below 2/3 of maintenance; Derive's security module): it takes an account that no
    keeper took within `delay_s` once equity < `equity_maintenance_ratio` x maintenance, through the
    engine's liquidation (fixed: the venue's penalty price; auctions: it bids the account's value at
    the mark), within `position_max_usd` of gross notional, and sells what it took into the book at
    most `unwind_usd_per_round` a round and no more than walks the book `unwind_walk_max_ratio` past
    what is consumed. Its losses are the protocol's: they count as bad debt."""

    enabled: bool = False
    equity_maintenance_ratio: float = Field(default=2 / 3, ge=0, le=1)  # Hyperliquid docs: 2/3
    delay_s: int = Field(default=30, ge=0, le=86_400)
    capital_usd: float = Field(default=10e6, gt=0, le=1e12)
    position_max_usd: float = Field(default=50e6, gt=0, le=1e12)
    unwind_usd_per_round: float = Field(default=500_000.0, gt=0, le=1e12)
    unwind_walk_max_ratio: float = Field(default=0.02, gt=0, lt=1)


class Depth(_Frozen):
    """The book forced sales hit (impact.DepthBook), how it thins, refills and runs out in a crash
    (liquidity.Liquidity; unset: a book that never thins and refills at once) and how fast the mid
    heals (recover_mid)."""

    depth_usd_per_pct: float = Field(default=20e6, gt=0, le=1e12)
    # depth within 1% as a share of the population's open interest at the start (USD), instead of
    # depth_usd_per_pct: the book scaled to the venue
    depth_oi_ratio: float | None = Field(default=None, gt=0, le=100)
    permanent_fraction: float = Field(default=0.3, ge=0, le=1)
    depth_exponent: float = Field(default=1.0, gt=0, le=10)
    resilience_half_life_s: float = Field(default=600.0, gt=0, le=366 * 86_400)
    vol_elasticity: float = Field(default=0.0, ge=0, le=10)  # depth ~ (vol0 / vol)^this
    drawdown_elasticity: float = Field(default=0.0, ge=0, le=50)  # depth ~ (mid / peak mid)^this
    refill_half_life_s: float | None = Field(default=None, gt=0, le=366 * 86_400)  # consumed depth refills
    market_maker_inventory_usd: float | None = Field(default=None, gt=0, le=1e12)  # it withdraws at this


class Oracle(_Frozen):
    """Guards on: the mid goes in as signed updates from `sources` sources; off: straight to set_market.

    Push timing (guards on): a source pushes when its price has moved `deviation_ratio` from what it
    last pushed or `heartbeat_s` has passed (Chainlink's two triggers; unset heartbeat: every round),
    reporting the mid as it was `source_latency_s[i]` ago (source i; missing entries: 0)."""

    guards: bool = True
    sources: int = Field(default=3, ge=1, le=16)
    noise_ratio: float = Field(default=0.0005, ge=0, lt=0.02)
    heartbeat_s: int | None = Field(default=None, ge=1, le=86_400)
    deviation_ratio: float = Field(default=0.0, ge=0, lt=0.5)
    source_latency_s: tuple[int, ...] = Field(default=(), strict=False)

    @field_validator("source_latency_s")
    @classmethod
    def _latencies(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= x <= 3600 for x in v):
            raise ValueError("each source latency is 0 to 3600 s")
        return v


class Chain(_Frozen):
    """When transactions get in: rounds are blocks `keepers.round_s` apart (margin is checked at
    each); a keeper's or searcher's transaction is dropped with `liquidator_outage_probability` per
    round (drawn from the path's own stream); the sequencer is down (no oracle update, no
    liquidation, no unwind gets in) for `sequencer_down_s` from `sequencer_down_from_step`."""

    liquidator_outage_probability: float = Field(default=0.0, ge=0, le=1)
    sequencer_down_from_step: int | None = Field(default=None, ge=1, le=100_000)
    sequencer_down_s: int = Field(default=0, ge=0, le=86_400)


class Market(_Frozen):
    """The market model beyond the mid: the perp's mark at a basis to it, and the settlement
    stablecoin's price (None: par). Both go in through set_market; the basis then moves with the
    index (oracle updates keep it as a ratio)."""

    perp_basis_ratio: float = Field(default=0.0, ge=-0.2, le=0.2)  # perp mark = index x (1 + this)
    stablecoin_usd: float | None = Field(default=None, gt=0.5, le=1.5)
    # BTC's perp's own file (a historical replay): each bar's basis, perp close / spot close - 1,
    # held through the bar, sets the perp's mark instead of perp_basis_ratio (prices.basis_path)
    perp_csv: str | None = None


class Underlying(_Frozen):
    """Another underlying traded beside BTC (the first, in [price] and [population]): its own perp
    (`<name>-PERP`, with the profile's parameters for it), traders and book. Prices: its own file
    over [price]'s window, step and intra-bar rule (the joint path of a crash), or, when [price] is
    generated, a path whose log returns have `correlation` with BTC's,
    r = correlation * (vol_annual / BTC's vol_annual) * r_BTC + sqrt(1 - correlation^2) * r_own
    (r_own: GBM at vol_annual; exact for GBM, approximate for jumps and GARCH), and [price]'s shock."""

    name: str = Field(pattern=r"^[A-Z]{2,10}$")
    csv: str | None = None  # historical: path, relative to the scenario file
    spot0_usd: float | None = Field(default=None, gt=0, le=1e9)  # None: historical as is; generated: needed
    vol_annual: float = Field(default=0.9, ge=0, le=10)  # generated
    correlation: float = Field(default=0.8, ge=-1, le=1)  # generated
    traders: int = Field(default=60, ge=0, le=10_000)  # drawn as [population]'s traders
    vol: VolModel = VolModel()
    depth_usd_per_pct: float | None = Field(default=None, gt=0, le=1e12)  # None: [depth]'s (or its OI ratio)
    perp_csv: str | None = None  # its perp's file: the basis of its mark, as [market] perp_csv

    def csv_path(self, base_dir: str) -> Path | None:
        return _relative(self.csv, base_dir)

    def perp_csv_path(self, base_dir: str) -> Path | None:
        return _relative(self.perp_csv, base_dir)


def _relative(name: str | None, base_dir: str) -> Path | None:
    if name is None:
        return None
    path = Path(name)
    return path if path.is_absolute() else Path(base_dir) / path


class Variant(_Frozen):
    """A named design to compare; unset fields keep the base scenario's."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    profile: str | None = None
    margin_mode: MarginMode | None = None
    mechanism: Mechanism | None = None
    price_range: Literal["static", "vol"] | None = None
    oracle_guards: bool | None = None
    depth_usd_per_pct: float | None = Field(default=None, gt=0, le=1e12)
    depth_oi_ratio: float | None = Field(default=None, gt=0, le=100)
    insurance_fund_oi_ratio: float | None = Field(default=None, ge=0, le=10)
    buffer_ratio: float | None = Field(default=None, ge=0, le=4)
    oracle_params: dict[str, float] | None = None  # overrides of the profile's oracle guards (OracleParams)


class Scenario(_Frozen):
    name: str = Field(min_length=1, max_length=128)
    profile: str = "deribit"
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    paths: int = Field(default=4, ge=1, le=100_000)
    dt_s: int = Field(default=3600, ge=1, le=86_400)
    steps: int = Field(default=48, ge=1, le=100_000)  # historical: at most this many steps of the window
    start_time_s: int = Field(
        default=1_795_593_600, ge=1_230_768_000, le=7_258_118_400
    )  # engine clock at step 0 (2026-11-25T08:00Z)
    price: PriceModel = PriceModel()
    vol: VolModel = VolModel()
    population: Population = Population()
    keepers: Keepers = Keepers()
    mev: Mev = Mev()
    backstop: Backstop = Backstop()
    depth: Depth = Depth()
    oracle: Oracle = Oracle()
    chain: Chain = Chain()
    market: Market = Market()
    underlyings: tuple[Underlying, ...] = Field(default=(), strict=False)  # beside BTC: a TOML array of tables
    price_range: Literal["static", "vol"] = "static"
    insurance_fund_usd: float = Field(default=1e6, ge=0, le=1e12)
    # the fund as a share of the population's open interest at the start (USD), instead of insurance_fund_usd
    insurance_fund_oi_ratio: float | None = Field(default=None, ge=0, le=10)
    variants: tuple[Variant, ...] = Field(default=(), strict=False)  # a TOML array of tables
    base_dir: str = "."  # where relative paths resolve; set by load_scenario

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        extra = [u.name for u in self.underlyings]
        if len(set(extra)) != len(extra) or "BTC" in extra:
            raise ValueError("underlyings: each name once, and not BTC (the first underlying)")
        for u in self.underlyings:
            if self.price.kind == "historical" and not u.csv:
                raise ValueError(f"underlyings.{u.name}: a historical scenario needs its csv (the same window)")
            if self.price.kind != "historical" and u.spot0_usd is None:
                raise ValueError(f"underlyings.{u.name}: a generated path needs spot0_usd")
        if len(self.oracle.source_latency_s) > self.oracle.sources:
            raise ValueError("oracle.source_latency_s has more entries than oracle.sources")
        if self.keepers.round_s * self.keepers.rounds_max >= self.dt_s:
            raise ValueError("keepers.round_s * keepers.rounds_max must be < dt_s (rounds happen inside a step)")
        return self

    def all_variants(self) -> tuple[Variant, ...]:
        """The variants to run; one named 'base' when none is given."""
        return self.variants or (Variant(name="base"),)

    def csv_path(self) -> Path | None:
        return _relative(self.price.csv, self.base_dir)

    def perp_csv_path(self) -> Path | None:
        return _relative(self.market.perp_csv, self.base_dir)


def parse_scenario(data: dict, source: str = "<scenario>", base_dir: str = ".") -> Scenario:
    """A Scenario from a mapping; errors name the key."""
    try:
        return Scenario.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["scenario", *(str(p) for p in first["loc"])])
        raise InputError(where, f"{first['msg']} (in {source})") from None


def load_scenario(path: Path | str) -> Scenario:
    """Read a scenario TOML file; relative paths in it resolve against its folder."""
    path = Path(path)
    data = parse_toml(read_text(path, "scenario"), "scenario", f"TOML ({path})")
    if "base_dir" in data:
        raise InputError("scenario.base_dir", "is set by the loader, not in the file")
    # absolute, so that a worker started in another directory (Dask) finds the same files
    scenario = parse_scenario(data, str(path), str(path.resolve().parent))
    csv = scenario.csv_path()
    if scenario.price.kind == "historical" and csv is not None and not csv.is_file():
        raise InputError("scenario.price.csv", f"no price file at {csv} (named in {path}); a replay needs its data")
    for u in scenario.underlyings:
        other = u.csv_path(scenario.base_dir)
        if scenario.price.kind == "historical" and other is not None and not other.is_file():
            raise InputError(f"scenario.underlyings.{u.name}.csv", f"no price file at {other} (named in {path})")
    perps = [("scenario.market.perp_csv", _relative(scenario.market.perp_csv, scenario.base_dir))]
    perps += [
        (f"scenario.underlyings.{u.name}.perp_csv", u.perp_csv_path(scenario.base_dir)) for u in scenario.underlyings
    ]
    for where, perp in perps:
        if perp is not None and not perp.is_file():
            raise InputError(where, f"no perp price file at {perp} (named in {path}); the mark's basis needs its data")
    return scenario

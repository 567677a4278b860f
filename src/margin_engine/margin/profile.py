"""Margin profiles: named, versioned parameter sets read from TOML.

A profile holds everything the margin and ledger maths need: assets (decimals, collateral
weights), per-underlying perp parameters, the option model and its parameters, fees and bounds.
The packaged profiles (`deribit`, `derive`) live in `margin_engine/profiles/`; users copy one and
pass its path instead of a name. Units sit in the names (`_ratio`, `_rate`, `_weight`).
"""

from __future__ import annotations

import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from margin_engine.errors import InputError
from margin_engine.liquidation.params import LiquidationParams
from margin_engine.oracle.params import OracleParams
from margin_engine.perp.tiers import Tier, check_tiers
from margin_engine.reading import parse_toml, read_text

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)  # no "1" for 1, no true for 1


class AssetParams(_Frozen):
    """A collateral asset: its smallest unit and the share of its value that counts as margin."""

    decimals: int = Field(ge=0, le=18)
    im_weight: float = Field(ge=0, le=1)
    mm_weight: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _im_not_looser(self) -> AssetParams:
        if self.im_weight > self.mm_weight:
            raise ValueError("im_weight must be <= mm_weight (initial margin is the stricter one)")
        return self


class TierParams(_Frozen):
    """One margin tier (Hyperliquid's table): from `lower_bound_usd` of notional, at most
    `max_leverage`; initial 1 / leverage, maintenance half of it, deducted to stay continuous."""

    lower_bound_usd: float = Field(ge=0, le=1e13)
    max_leverage: float = Field(ge=1, le=200)


class PerpParams(_Frozen):
    """Requirement ratio of notional = base ratio + size_ratio_per_unit * |size| (Deribit's size add-on).

    `open_interest_max_base` caps the market's open interest (the longs, in base units; Derive's
    manager `perpCap`); `position_max_base` caps one account's position either side. A trade that
    adds risk beyond either is rejected; closing trades always pass."""

    im_ratio: float = Field(gt=0, le=1)
    mm_ratio: float = Field(gt=0, le=1)
    size_ratio_per_unit: float = Field(default=0.0, ge=0)
    open_interest_max_base: float | None = Field(default=None, gt=0, le=1e12)
    position_max_base: float | None = Field(default=None, gt=0, le=1e12)
    # The mark from the venue's own fills (Deribit: index + a 30 s EMA of the basis); None: the
    # perp given by set_market, else the index. The basis is clamped to +/- basis_max_ratio of the
    # index (this project's guard: one print in a thin book must not move every account's margin).
    basis_ema_s: int | None = Field(default=None, gt=0, le=86_400)
    basis_max_ratio: float = Field(default=0.05, ge=0, lt=1)
    # Margin that grows with size beyond the size add-on: tiers replace im_ratio and mm_ratio
    # (perp.tiers: Hyperliquid); imf_factor adds Drift's size premium to both ratios
    tiers: tuple[TierParams, ...] | None = None
    imf_factor: float = Field(default=0.0, ge=0, le=1)
    # dYdX v4's open-interest caps (USD at the index): initial margin rises from im_ratio at the
    # lower cap to 100% at the upper (perp.tiers.dydx_initial_fraction)
    open_interest_lower_cap_usd: float | None = Field(default=None, ge=0, le=1e13)
    open_interest_upper_cap_usd: float | None = Field(default=None, gt=0, le=1e13)
    # dYdX v4's isolated market type: the perp has its own insurance fund (`insurance:<perp>`) that
    # alone backs its losses before ADL or a socialized loss; an account holding it holds nothing
    # else, and withdrawals are gated per market (x/perpetuals GetInsuranceFundName, x/subaccounts
    # isolated-market constraints, withdrawal gating per collateral pool)
    isolated_market: bool = False

    @field_validator("tiers", mode="before")
    @classmethod
    def _tier_list(cls, value: object) -> object:
        """A TOML array of tables, as the tuple the strict model takes."""
        return tuple(value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _im_above_mm(self) -> PerpParams:
        if self.im_ratio < self.mm_ratio:
            raise ValueError("im_ratio must be >= mm_ratio")
        low, high = self.open_interest_lower_cap_usd, self.open_interest_upper_cap_usd
        if (low is None) != (high is None) or (low is not None and high is not None and low >= high):
            raise ValueError("open_interest_lower_cap_usd and open_interest_upper_cap_usd go together, lower < upper")
        if self.tiers is not None:
            try:
                check_tiers([Tier(t.lower_bound_usd, t.max_leverage) for t in self.tiers])
            except InputError as exc:
                raise ValueError(exc.message) from None
            first = self.tiers[0]
            if not (
                math.isclose(self.im_ratio, 1 / first.max_leverage)
                and math.isclose(self.mm_ratio, 0.5 / first.max_leverage)
            ):
                raise ValueError("with tiers, im_ratio and mm_ratio are the first tier's: 1 / and 0.5 / max_leverage")
        return self

    def tier_table(self) -> tuple[Tier, ...] | None:
        return None if self.tiers is None else tuple(Tier(t.lower_bound_usd, t.max_leverage) for t in self.tiers)


class UnderlyingParams(_Frozen):
    size_decimals: int = Field(ge=0, le=18)
    perp: PerpParams


class DeribitOptionParams(_Frozen):
    """Deribit standard margin, USD form (Deribit knowledge base; bit.com's USD statement)."""

    im_spot_ratio: float = 0.15
    im_min_spot_ratio: float = 0.10
    mm_spot_ratio: float = 0.075
    put_mm_mark_ratio: float = 0.075


class DeriveOptionParams(_Frozen):
    """Lyra v2 / Derive Standard Risk Manager (v2-core StandardManager.sol, mainnet config)."""

    max_spot_req: float = 0.15
    min_spot_req: float = 0.13
    mm_call_spot_req: float = 0.09
    mm_put_spot_req: float = 0.09
    mm_put_mtm_req: float = 0.09
    mm_offset_scale: float = 1.05
    unpaired_im_scale: float = 1.2
    unpaired_mm_scale: float = 1.1


class OptionParams(_Frozen):
    model: Literal["deribit", "derive"]
    long_value_im_weight: float = Field(ge=0, le=1)
    long_value_mm_weight: float = Field(ge=0, le=1)
    # Black-76 on the forward, discounted at the expiry's rate (e^(-rT)) or not: Derive prices with
    # discount 1 (v2-core StandardManager._getMarkToMarket, PMRMLib._getExpiryShockedMTM)
    discount_by_rate: bool = True
    deribit: DeribitOptionParams = DeribitOptionParams()
    derive: DeriveOptionParams = DeriveOptionParams()


class FeeParams(_Frozen):
    perp_maker_rate: float = Field(ge=0, le=0.01)
    perp_taker_rate: float = Field(ge=0, le=0.01)
    option_rate: float = Field(ge=0, le=0.01)
    option_fee_cap_premium_ratio: float = Field(ge=0, le=1)


VolShock = Literal["up", "none", "down"]


class PmUnderlyingParams(_Frozen):
    """Scenarios of one underlying: a grid (price_range in steps x vol up/none/down) or an
    explicit list of (spot multiplier, vol shock) pairs, as Lyra's PMRM lists them."""

    price_range: float | None = Field(default=None, gt=0, le=0.95)
    price_step: float | None = Field(default=None, gt=0, le=0.95)
    scenarios: tuple[tuple[float, VolShock], ...] | None = None
    vol_range_up: float = Field(ge=0, le=10)
    vol_range_down: float = Field(ge=0, le=1)

    @field_validator("scenarios", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        """TOML arrays of [multiplier, vol shock] pairs, as the tuples the strict model takes."""
        return tuple(tuple(p) if isinstance(p, list) else p for p in value) if isinstance(value, list) else value

    @model_validator(mode="after")
    def _one_form(self) -> PmUnderlyingParams:
        grid = self.price_range is not None and self.price_step is not None
        if grid == (self.scenarios is not None):
            raise ValueError("give either price_range and price_step, or an explicit scenarios list")
        if self.scenarios is not None and any(m <= 0 for m, _ in self.scenarios):
            raise ValueError("scenario spot multipliers must be > 0")
        return self


class DepegParams(_Frozen):
    """Derive's standard-manager depeg charge (StandardManager._getDepegMultiplier): when the
    settlement stablecoin trades below `threshold_usd`, initial margin rises by
    (threshold - price) * im_factor * spot * (|perps| + short options) per underlying."""

    threshold_usd: float = Field(gt=0, le=1)
    im_factor: float = Field(ge=0, le=3)


class AboutParams(_Frozen):
    """What a profile is: whose rules, which version, where every number comes from."""

    venue: str
    version: str
    source: str


class PortfolioParams(_Frozen):
    """Risk-matrix portfolio margin (Deribit PM, Lyra v2 PMRM, CME SPAN): requirement base =
    worst scenario loss + contingencies; IM = im_factor * base, MM = mm_factor * base."""

    im_factor: float = Field(ge=1, le=5)
    mm_factor: float = Field(gt=0, le=1)
    vol_power_short: float = 0.30  # tenor scaling (30/DTE)^power up to vol_power_switch_days
    vol_power_long: float = 0.13
    vol_power_switch_days: float = 30.0
    min_dte_days: float = Field(default=1.0, gt=0)
    extended_moves: tuple[float, ...] = Field(
        default=(), strict=False
    )  # spot moves with vol up, counted at extended_weight
    extended_weight: float = Field(default=0.0, ge=0, le=1)
    short_option_min_spot_ratio: float = Field(default=0.0, ge=0)  # per net short option per strike
    perp_static_spot_ratio: float = Field(default=0.0, ge=0)  # per |perp size|
    base_static_spot_ratio: float = Field(default=0.0, ge=0)  # per unit of crypto collateral
    delta_shock_spot_ratio: float = Field(default=0.0, ge=0)  # per unit of |net linear delta| (perps, collateral)
    basis_shock_ratio: float = Field(default=0.0, ge=0, le=0.5)  # options' forward moved +/- this, perps not
    # each expiry's basis loss counts times basis_factor + basis_factor_per_year * T (Derive's
    # basisContAddFactor and basisContMultFactor, PMRMLib._addBasisContingency)
    basis_factor: float = Field(default=1.0, ge=0, le=20)
    basis_factor_per_year: float = Field(default=0.0, ge=0, le=20)
    confidence_threshold: float = Field(default=0.0, ge=0, le=1)  # below it, IM += (1 - c) * factor * S * size
    confidence_factor: float = Field(default=0.0, ge=0)
    option_value_discount_static: float = Field(
        default=1.0, gt=0, le=1
    )  # positive shocked expiry value * d e^(-T(r+add))
    option_value_discount_rate_add: float = Field(default=0.0, ge=0)
    option_value_discount_rate_mult: float = Field(default=0.0, ge=0, le=5)  # d e^(-T(mult r + add))
    # Derive's peg loss: below this USD price of the settlement stablecoin the IM factor rises by
    # (threshold - price) * peg_loss_factor (PMRMLib.getMarginAndMarkToMarket's mFactor)
    peg_loss_threshold_usd: float = Field(default=0.0, ge=0, le=1)
    peg_loss_factor: float = Field(default=0.0, ge=0, le=20)
    collateral_haircut_share: float = Field(default=1.0, ge=0, le=1)  # of the assets' standard haircuts
    underlyings: dict[str, PmUnderlyingParams]

    @model_validator(mode="after")
    def _moves(self) -> PortfolioParams:
        if any(m <= -1 for m in self.extended_moves):
            raise ValueError("extended moves must be > -1 (a -100% move leaves no price)")
        if self.mm_factor * 1.0 > self.im_factor:
            raise ValueError("mm_factor must not exceed im_factor")
        return self


class OracleConfig(_Frozen):
    """Who may push prices (`sources`: name -> Ed25519 public key, hex), the guards' parameters
    (`params`, overridable per underlying), and the initial-margin charge on low confidence for
    standard margin (Lyra's confidence contingency; portfolio margin has its own)."""

    sources: dict[str, str] = {}
    params: OracleParams = OracleParams()
    underlyings: dict[str, OracleParams] = {}
    confidence_im_threshold: float = Field(default=0.55, ge=0, le=1)
    confidence_im_factor: float = Field(default=1.0, ge=0)

    def params_for(self, underlying: str) -> OracleParams:
        return self.underlyings.get(underlying, self.params)


class LimitParams(_Frozen):
    """Bounds on what one command may carry, checked before anything changes, so that every number
    derived from the state stays finite and exact (float64 margin maths, 28-digit Decimal). Far above
    any real venue's flows, far below where the arithmetic breaks."""

    # 1e12 whole units: a trillion USDC is over ten times the largest stablecoin's supply (about
    # 1.8e11 USDT in 2026); in USDC's 6 decimals it is 1e18 units, inside int64 and exact in Decimal.
    amount_max: float = Field(default=1e12, gt=0, le=1e15)
    # an account's balance of one asset after a deposit: 1e13 whole units (ten times amount_max)
    balance_max: float = Field(default=1e13, gt=0, le=1e16)
    # contracts (BTC, ETH) per fill: 1e9 is over fifty times the BTC that exists (about 2.1e7)
    size_max: float = Field(default=1e9, gt=0, le=1e12)
    # a fill's price, an index or a settlement price, USD per unit: BTC at 1e9 USD would be about
    # 1e16 USD of market value, a hundred times the world's GDP
    price_max_usd: float = Field(default=1e9, gt=0, le=1e12)
    # how far one advance_time may move the clock: 366 days. A venue halted longer restarts by hand;
    # a bigger step is a unit error (milliseconds) that would expire every option at once.
    clock_step_max_s: int = Field(default=366 * 86_400, gt=0, le=100 * 366 * 86_400)
    # a perp fill at most this far from the index, as a share of it: 50%. Venues band orders far
    # tighter (Deribit's price limits are a few % of mark); this only catches prices no matcher
    # would print (a unit error, a fat finger) while leaving room for a crash's slippage.
    perp_price_band_ratio: float = Field(default=0.5, gt=0, le=10)
    # an option fill at most its intrinsic value plus this many indices: 1 is the no-arbitrage bound
    # (a call is worth at most the underlying, S <= intrinsic + S; a put at most its strike,
    # K = (K - S) + S)
    option_price_index_max: float = Field(default=1.0, gt=0, le=10)
    # a fill, and a position a fill makes bigger, worth at most 1e10 USD at the index: about the
    # open interest of the largest venue's whole BTC perpetual; more is a unit error, and it keeps
    # an account's sums of requirements (at most max_positions_per_account of them) inside int64
    notional_max_usd: float = Field(default=1e10, gt=0, le=1e13)


class InterestParams(_Frozen):
    """Interest on negative settlement balances (loans), Derive's CashAsset model
    (`InterestRateModel.sol`; defaults: mainnet `getDefaultInterestRateModel`, `CASH_SM_FEE`).

    Accrued at every `accrual_interval_s` boundary of the clock that advance_time crosses, on the
    balances at that moment; borrowers pay, `fund_share` goes to the insurance fund, lenders (the
    positive balances) get the rest pro rata (ledger.interest). The borrow caps limit what a
    trade or a withdrawal may leave owed, per account and across the venue (USD of the settlement
    asset); interest and liquidations are never refused for them."""

    min_rate: float = Field(default=0.02, ge=0, le=1)
    rate_multiplier: float = Field(default=0.08, ge=0, le=1)
    high_rate_multiplier: float = Field(default=0.9, ge=0, le=1)
    optimal_util: float = Field(default=0.85, ge=0, le=1)
    fund_share: float = Field(default=0.2, ge=0, le=1)
    accrual_interval_s: int = Field(default=3600, ge=60, le=86_400)
    borrow_max_usd_per_account: float | None = Field(default=None, gt=0, le=1e12)
    borrow_max_usd_total: float | None = Field(default=None, gt=0, le=1e13)


class FundingParams(_Frozen):
    """Funding computed by the engine and paid at every funding time the clock crosses (each of
    these venues pays hourly, FUNDING_INTERVAL_S): the venue's rule on the window's time-weighted
    mean premium (mark - index) / index (perp.funding). `apply_funding` stays for admins."""

    rule: Literal["dydx", "hyperliquid", "drift"]
    drift_contract_tier: Literal["A", "B", "C", "speculative", "highly_speculative", "isolated"] = "A"


class MarginCallParams(_Frozen):
    """Margin-call levels on equity / maintenance (Binance Portfolio Margin's uniMMR table: a
    reminder at or below 150%, no new orders but reductions at or below 120%). At or below 100% the
    account is liquidatable, the engine's own rule (Binance liquidates from 105%)."""

    warn_ratio: float = Field(default=1.5, gt=1, le=100)
    reduce_only_ratio: float = Field(default=1.2, gt=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> MarginCallParams:
        if self.reduce_only_ratio > self.warn_ratio:
            raise ValueError("reduce_only_ratio must be <= warn_ratio (the warning comes first)")
        return self


class Profile(_Frozen):
    name: str
    schema_version: int
    description: str = ""
    about: AboutParams | None = None
    settlement_asset: str
    max_positions_per_account: int = Field(gt=0, le=10_000)
    assets: dict[str, AssetParams]
    underlyings: dict[str, UnderlyingParams]
    options: OptionParams
    fees: FeeParams
    portfolio: PortfolioParams | None = None
    depeg: DepegParams | None = None
    liquidation: LiquidationParams = LiquidationParams()
    oracle: OracleConfig = OracleConfig()
    limits: LimitParams = LimitParams()
    interest: InterestParams | None = None
    funding: FundingParams | None = None
    margin_calls: MarginCallParams | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})")
        if self.settlement_asset not in self.assets:
            raise ValueError(f"settlement_asset {self.settlement_asset!r} is not among the assets")
        for symbol in self.assets:
            if symbol != self.settlement_asset and symbol not in self.underlyings:
                raise ValueError(f"collateral asset {symbol!r} needs an underlying of the same name for its price")
        if self.portfolio is not None:
            missing = set(self.underlyings) - set(self.portfolio.underlyings)
            if missing:
                raise ValueError(f"portfolio section lacks scenario parameters for {sorted(missing)}")
        return self

    @property
    def settlement_decimals(self) -> int:
        return self.assets[self.settlement_asset].decimals

    def asset(self, symbol: object, field: str = "asset") -> AssetParams:
        if not isinstance(symbol, str) or symbol not in self.assets:
            raise InputError(field, f"unknown asset {symbol!r}; known: {', '.join(sorted(self.assets))}")
        return self.assets[symbol]

    def underlying(self, symbol: object, field: str = "underlying") -> UnderlyingParams:
        if not isinstance(symbol, str) or symbol not in self.underlyings:
            known = ", ".join(sorted(self.underlyings))
            raise InputError(field, f"unknown underlying {symbol!r}; known: {known}")
        return self.underlyings[symbol]

    @property
    def price_feeds(self) -> tuple[str, ...]:
        """What has a USD price in the market model: the underlyings and every collateral asset
        (the settlement stablecoin too: its depeg is priced)."""
        return tuple(sorted(set(self.underlyings) | set(self.assets)))

    def price_feed(self, symbol: object, field: str = "underlying") -> str:
        if not isinstance(symbol, str) or symbol not in self.price_feeds:
            raise InputError(field, f"no price feed for {symbol!r}; known: {', '.join(self.price_feeds)}")
        return symbol

    @property
    def portfolio_params(self) -> PortfolioParams:
        """The [portfolio] section, for the risk matrix; an error naming the profile when it has none."""
        if self.portfolio is None:
            raise InputError("profile", f"profile {self.name!r} has no [portfolio] section for portfolio margin")
        return self.portfolio


def packaged_profiles() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml")
        for p in resources.files("margin_engine.profiles").iterdir()
        if p.name.endswith(".toml")
    )


def profile_text(name_or_path: str) -> str:
    """The TOML text of a packaged profile (by name) or of a file (by path): what a journal keeps."""
    path = Path(name_or_path)
    try:
        is_path, is_file = path.suffix == ".toml" or path.exists(), path.is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise InputError("profile", f"no profile {name_or_path!r}: {exc.strerror}") from None
    if is_path:
        if not is_file:
            raise InputError("profile", f"no profile file at {name_or_path!r}")
        return read_text(path, "profile")
    resource = resources.files("margin_engine.profiles") / f"{name_or_path}.toml"
    if not resource.is_file():
        raise InputError(
            "profile",
            f"unknown profile {name_or_path!r}; packaged: {', '.join(packaged_profiles())}, or give a .toml path",
        )
    return resource.read_text()


@cache
def load_profile(name_or_path: str = "deribit") -> Profile:
    """A packaged profile by name, or a TOML file by path."""
    return parse_profile(profile_text(name_or_path), source=name_or_path)


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    data = parse_toml(text, "profile", f"TOML ({source})")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "profile"
        raise InputError(f"profile.{where}", f"{first['msg']} (in {source})") from None

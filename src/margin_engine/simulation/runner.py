"""One path of one variant, run on the real engine (`Engine`, the code the service runs).

Each step: the fundamental price moves, the mid heals towards it (`recover_mid`), the mid is
published (signed `oracle_update`s from several sources when guards are on, `set_market` when
off), the covered-call vault rolls when its series has expired, then up to `rounds_max` rounds
`round_s` apart: MEV searchers, then keepers, read the liquidation queue as it was their latency
ago, call `start_liquidation` / `bid`, and sell what they took into the depth book, which moves
the mid the next round publishes: the cascade. Conservation is audited after every command that
moves money or positions (what the audit checks changes with nothing else, so every step ends on
an audited state); a break raises `InvariantViolation` (a bug, never caught here).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from margin_engine.engine import Engine, Rejection, audit, liquidation_queue
from margin_engine.engine.events import (
    AuctionEnded,
    BankruptcyResolved,
    LiquidationFill,
    LiquidationStarted,
    PositionChanged,
    Transferred,
)
from margin_engine.errors import InputError
from margin_engine.ledger.ledger import FEES, INSURANCE
from margin_engine.margin.profile import OracleConfig, Profile, load_profile
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.params import parse_oracle_params
from margin_engine.oracle.signing import dump_public_key, sign_update
from margin_engine.pricing.black76 import SECONDS_PER_YEAR
from margin_engine.simulation.errors import BookExhaustedError
from margin_engine.simulation.history import historical_path
from margin_engine.simulation.impact import DepthBook, recover_mid
from margin_engine.simulation.liquidity import Liquidity, LiquidityParams
from margin_engine.simulation.metrics import run_metrics
from margin_engine.simulation.paths import (
    GarchParams,
    JumpParams,
    ewma_realized_vol,
    garch_t_paths,
    gbm_paths,
    implied_vol_path,
    merton_paths,
    spot_vol,
)
from margin_engine.simulation.population import (
    BACKSTOP,
    MARKET_MAKER,
    PERP,
    UNDERLYING,
    USER_ROLES,
    draw_population,
    open_population,
    open_trade,
    vault_call,
)
from margin_engine.simulation.scenario import Scenario, Variant
from margin_engine.simulation.seeds import path_rngs

USDC_UNITS = 1e6
SPLIT_PARTIES = ("user", "keepers", "mev", "backstop", "others", "insurance", "fees", "bad_debt")
ACCOUNT_PARTIES = SPLIT_PARTIES[:5]  # then the venue's ledger accounts and the negative equity closed out
LIQUIDATION_COMMANDS = ("start_liquidation", "bid", "advance_time")
UNWIND_WALK_MAX = 0.5  # a liquidator sells at most what walks the book half-way to zero per round


@dataclass
class _Liquidators:
    """Keepers or MEV searchers: who they are, how late they see the queue, what an action costs
    and what they count."""

    ids: list[str]
    latency_s: int
    cost_usd: float  # per action
    profit_ratio: float  # auctions: margin of notional they want
    pays_rejected: bool  # a keeper pays for a failed transaction; a searcher's failing bundle is dropped unpaid
    attempted: int = 0
    rejected: int = 0
    costs_usd: float = 0.0


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


@dataclass
class PathResult:
    variant: str
    path: int
    price_source: str
    series: dict[str, list[float]]  # states: n_steps + 1 samples; flows: n_steps entries
    metrics: dict[str, float]
    accounts: int
    steps: int
    start_s: int = 0  # Unix seconds of the first sample: the window's real time on a replay
    wall_s: float = field(default=0.0, compare=False)  # not in summary.json (not deterministic)


def resolve_variant(scenario: Scenario, variant: Variant) -> Design:
    """The profile (mechanism, buffer, oracle sources) and the loop settings of one variant."""
    name = variant.profile or scenario.profile
    path = Path(name)
    if path.suffix == ".toml" and not path.is_absolute():
        name = str(Path(scenario.base_dir) / path)
    profile = load_profile(name)
    mode = variant.margin_mode or scenario.population.margin_mode
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
    price_range = variant.price_range or scenario.price_range
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


def price_path(scenario: Scenario, rng: np.random.Generator) -> tuple[np.ndarray, str, int]:
    """The fundamental path (n_steps + 1 prices), where it came from and the Unix time of its first
    price (a replay's real time; a generated path starts at the scenario's clock)."""
    p = scenario.price
    source = p.kind
    if p.kind == "historical":
        csv = scenario.csv_path()
        if csv is None or not csv.is_file():
            raise InputError("scenario.price.csv", f"no price file at {csv}: a historical replay needs its data")
        hist = historical_path(csv, p.start, p.end, scenario.dt_s, p.spot0_usd, p.intrabar, rng)
        spot = hist.spot[0, : scenario.steps + 1]
        how = f", {scenario.dt_s} s steps through each bar's high and low" if p.intrabar == "bridge" else ", bar closes"
        return _shocked(spot, scenario), f"historical {csv.name} [{p.start}, {p.end}]{how}", hist.start_s
    note = f"generated ({source})"
    spot0 = p.spot0_usd or 60_000.0
    args = (scenario.steps, scenario.dt_s, 1, rng)
    if source == "gbm":
        spot = gbm_paths(spot0, p.vol_annual, p.drift_annual, *args)
    elif source == "merton":
        jumps = JumpParams(p.jump_intensity_annual, p.jump_mean_log, p.jump_vol_log)
        spot = merton_paths(spot0, p.vol_annual, p.drift_annual, jumps, *args)
    else:
        params = GarchParams(p.garch_omega_daily, p.garch_alpha, p.garch_beta, p.garch_nu)
        spot = garch_t_paths(spot0, params, *args)
    return _shocked(spot[0], scenario), note, scenario.start_time_s


def _shocked(spot: np.ndarray, scenario: Scenario) -> np.ndarray:
    p = scenario.price
    out = np.array(spot, dtype=float)
    if p.shock_step is not None and p.shock_step < len(out):
        end = None if p.shock_steps is None else p.shock_step + p.shock_steps
        out[p.shock_step : end] *= 1.0 + p.shock_pct / 100.0
    return out


def vol_path(scenario: Scenario, spot: np.ndarray) -> np.ndarray:
    v = scenario.vol
    realized = ewma_realized_vol(spot, scenario.dt_s, v.realized_half_life_s, v.vol0_annual)
    return implied_vol_path(
        spot,
        v.vol0_annual,
        vol_floor_annual=v.vol_floor_annual,
        vol_cap_annual=max(v.vol_cap_annual, v.vol_floor_annual),
        spot_vol_beta=v.spot_vol_beta,
        realized_vol_annual=realized,
        realized_weight=v.realized_weight,
    )


def run_path(scenario: Scenario, variant: Variant, path: int) -> PathResult:
    """Run path `path` of `variant`: the same prices and population for every variant of a path."""
    design = resolve_variant(scenario, variant)
    price_rng, pop_rng, noise_rng = (
        np.random.Generator(np.random.PCG64(s))
        for s in path_rngs(scenario.seed, range(path, path + 1))[0].bit_generator.seed_seq.spawn(3)
    )
    spot, source, start_s = price_path(scenario, price_rng)
    vol = vol_path(scenario, spot)
    started = time.perf_counter()
    sim = _Sim(scenario, design, spot, vol, pop_rng, noise_rng)
    sim.run()
    result = sim.result(source, path)
    result.start_s = start_s
    result.wall_s = time.perf_counter() - started
    return result


class _Sim:
    """The loop's mutable state: the engine, the mid, the keepers' view and the recorded series."""

    def __init__(self, scenario, design: Design, spot, vol, pop_rng, noise_rng):
        self.sc, self.d, self.spot, self.noise_rng = scenario, design, spot, noise_rng
        self.vol = np.array(vol, dtype=float)  # follows "mid": entry k is set at step k from the mid
        self._variance = scenario.vol.vol0_annual**2  # EWMA of the mid's squared log returns
        self.engine = Engine(design.profile)
        self.t0 = scenario.start_time_s
        self.mid = float(spot[0])
        self.vol_now = float(self.vol[0])  # of the step being run
        self.n = len(spot) - 1
        self.views: list[tuple[int, list[str]]] = []  # (time, liquidatable accounts worst first)
        self.bids: set[tuple[str, str]] = set()
        self.gross_before: dict[str, float] = {}
        self.queue0: set[str] = set()  # liquidatable at the first round of the current step
        self.auction_account: dict[str, str] = {}  # running auction -> its account
        self.relist: set[str] = set()  # accounts whose last auction ended with them still unhealthy
        self.flows = {
            k: np.zeros(self.n)
            for k in (
                "liquidations",
                "cascade_liquidations",
                "liquidation_volume_usd",
                "bad_debt_usd",
                "socialized_loss_usd",
                "adl_usd",
                "insurance_paid_usd",
                "uncovered_usd",
                "relistings",
                "keeper_fills",
                "mev_fills",
            )
        }
        self.split = dict.fromkeys(SPLIT_PARTIES, 0)  # settlement units
        self.states: dict[str, list[float]] = {
            k: [] for k in ("fundamental", "mid", "mark", "vol", "insurance_fund_usd", "open_interest_usd")
        }
        self.equity: list[np.ndarray] = []
        self.margin_req: list[float] = []
        self.notional: list[float] = []
        self._longs: tuple[int, float] = (-1, 0.0)  # (state revision, perp longs)
        self._user_rows = np.zeros(0, dtype=bool)
        self._party_codes = np.zeros(0, dtype=np.int64)
        self._rows: dict[str, int] = {}
        self._setup(pop_rng)

    # --- commands -------------------------------------------------------------------------------

    def submit(self, cmd: dict, step: int | None = None, rnd: int = 0):
        s = self.engine.state
        liquidating = cmd["type"] in LIQUIDATION_COMMANDS and (cmd["type"] != "advance_time" or bool(s.auctions))
        if liquidating:
            accounts = {a.account for a in s.auctions.values()} | ({cmd["account"]} if "account" in cmd else set())
            self.gross_before = {a: self._gross(a) for a in accounts}
            before = self._money(cmd.get("time"))  # at the command's clock: time decay is no liquidation value
        out = self.engine.submit(cmd)
        if isinstance(out, Rejection):
            return out  # a rejection changes nothing (the engine's tests hold it to that)
        moved = any(isinstance(e, (Transferred, PositionChanged)) for e in out)
        if moved:
            audit(s)  # every command that moved money or positions: a break raises InvariantViolation
        if step is not None:
            self._record_events(out, step, rnd)
        if liquidating and moved:
            self._split(before, out)
        return out

    def _gross(self, account: str) -> float:
        return sum(abs(float(p.size)) for p in self.engine.state.accounts[account].positions.values())

    def _money(self, at_s: int | None = None) -> tuple[np.ndarray, int, int]:
        """Every account's equity at the mark, the insurance fund and the fee pool (settlement units)."""
        s, settle = self.engine.state, self.d.profile.settlement_asset
        equity = self.engine.margin_totals(at_s).equity
        return equity, s.ledger.balance(INSURANCE, settle), s.ledger.balance(FEES, settle)

    def _split(self, before, events: list) -> None:
        """Who gained and who lost what in one liquidation command, at the mark: equity moves between
        the liquidated users, keepers, searchers, the fund, the fee pool and others (ADL, socialized
        loss). A liquidated user loses at most its positive equity; a negative equity closed out is
        the bad debt this command resolved (`bad_debt`), paid by whoever's share fell. Prices stand
        still within a command, so the shares sum to zero (to rounding units)."""
        equity, fund, fees = self._money()
        liquidated = {e.account for e in events if isinstance(e, (LiquidationFill, BankruptcyResolved))}
        party = self._parties()
        party[[self._rows[a] for a in liquidated]] = SPLIT_PARTIES.index("user")
        old = before[0]
        units = {name: int((equity - old)[party == i].sum()) for i, name in enumerate(ACCOUNT_PARTIES)}
        users = party == SPLIT_PARTIES.index("user")
        units["user"] = int((np.maximum(equity[users], 0) - np.maximum(old[users], 0)).sum())
        units["bad_debt"] = int((np.minimum(equity[users], 0) - np.minimum(old[users], 0)).sum())
        units["insurance"], units["fees"] = fund - before[1], fees - before[2]
        for name, amount in units.items():
            self.split[name] += amount

    def _parties(self) -> np.ndarray:
        """Each account's party in the split (liquidated users are marked per command)."""
        if len(self._party_codes) != len(self.engine.state.accounts):  # accounts are opened at setup only
            self._rows = {a: i for i, a in enumerate(self.engine.state.accounts)}
            kind = {
                **dict.fromkeys(self.keepers.ids, "keepers"),
                **dict.fromkeys(self.searchers.ids, "mev"),
                BACKSTOP: "backstop",
            }
            codes = (SPLIT_PARTIES.index(kind.get(a, "others")) for a in self._rows)
            self._party_codes = np.fromiter(codes, dtype=np.int64, count=len(self._rows))
        return self._party_codes.copy()

    def ok(self, cmd: dict, step: int | None = None, rnd: int = 0):
        out = self.submit(cmd, step, rnd)
        if isinstance(out, Rejection):
            raise AssertionError(f"simulator command rejected: {cmd['type']}: {out.code}: {out.message}")
        return out

    def _setup(self, pop_rng) -> None:
        sc, pop = self.sc, self.sc.population
        self.ok({"type": "advance_time", "time": self.t0})
        self._set_market(self.mid, float(self.vol[0]))
        if sc.market.stablecoin_usd is not None:
            self.ok({"type": "set_market", "underlying": "USDC", "index": repr(sc.market.stablecoin_usd)})
        members = draw_population(pop, sc.keepers, sc.mev, self.mid, pop_rng, sc.backstop)
        expiry_s = self.t0 + self.n * sc.dt_s + pop.option_expiry_days * 86_400
        self.roles = open_population(
            self.engine,
            members,
            self.d.margin_mode,
            self.mid,
            float(self.vol[0]),
            expiry_s,
            pop.option_collateral_ratio,
        )
        audit(self.engine.state)
        self.open_interest0_usd = self._perp_longs() * self.mid
        ratio = self.d.insurance_fund_oi_ratio
        self.fund0_usd = sc.insurance_fund_usd if ratio is None else round(ratio * self.open_interest0_usd, 2)
        if self.fund0_usd > 0:
            self.ok({"type": "fund_insurance", "asset": "USDC", "amount": f"{self.fund0_usd:.2f}"})
        kp, mev = sc.keepers, sc.mev
        self.keepers = _Liquidators(self.roles["keeper"], kp.latency_s, kp.cost_per_action_usd, kp.profit_ratio, True)
        self.searchers = _Liquidators(
            self.roles.get("searcher", []), mev.latency_s, mev.priority_fee_usd, mev.profit_ratio, False
        )
        self.users = {a for role in USER_ROLES for a in self.roles.get(role, [])}
        self.backstop = BACKSTOP if sc.backstop.enabled else None
        self.waiting: dict[str, int] = {}  # liquidatable user -> since when (backstop delay)
        self.backstop_takeovers = self.backstop_declined = 0
        self.vault = next(iter(self.roles.get("vault", [])), None)
        self.vault_expiry: int | None = None  # of the series it is short
        self.vault_series = 0
        self.vault_deposits_usd = 0.0
        self.start_equity = self._equities()  # before the vault's first sale, which its P&L counts
        book = self.d.book
        if self.d.depth_oi_ratio is not None:
            depth = max(self.d.depth_oi_ratio * self.open_interest0_usd, 1.0)
            book = DepthBook(depth, book.permanent_fraction, book.depth_exponent)
        self.liq = Liquidity(book, self.d.liquidity, float(self.vol[0]), self.mid, self.t0)
        self._roll_vault(self.t0, float(self.vol[0]))
        self.base_range = self._base_range()
        self._publish(self.mid, float(self.vol[0]), self.t0)
        self._sample(self.engine.margin_totals(), 0)

    def _set_market(self, index: float, vol: float) -> None:
        cmd = {"type": "set_market", "underlying": UNDERLYING, "index": repr(index), "vol": repr(vol)}
        basis = self.sc.market.perp_basis_ratio
        if basis:
            cmd["perp"] = repr(round(index * (1.0 + basis), 2))
        self.ok(cmd)

    def _publish(self, mid: float, vol: float, t: int, step: int | None = None, rnd: int = 0) -> None:
        """Guards on: the vol by set_market (index unchanged), the mid by signed updates; off: both by set_market."""
        if not self.d.guards:
            self._set_market(mid, vol)
            return
        self._set_market(self.engine.state.markets[UNDERLYING].index, vol)
        noise = self.noise_rng.standard_normal(self.sc.oracle.sources) * self.sc.oracle.noise_ratio
        for source, z in zip(_sources(self.sc.oracle.sources), noise, strict=True):
            price = round(mid * (1.0 + float(z)), 2)
            update = PriceUpdate(UNDERLYING, source, price, None, t)
            sig = sign_update(_key(source), update).hex()
            cmd = {
                "type": "oracle_update",
                "underlying": UNDERLYING,
                "source": source,
                "price": repr(price),
                "timestamp": t,
                "signature": sig,
            }
            self.submit(cmd, step, rnd)  # a rejected update (the guards' call) changes nothing

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        sc = self.sc
        for k in range(1, self.n + 1):
            t = self.t0 + k * sc.dt_s
            before = self.mid
            self.mid = float(
                recover_mid(self.mid, self.spot[k - 1], self.spot[k], sc.dt_s, sc.depth.resilience_half_life_s)
            )
            if sc.vol.follows == "mid":
                self.vol[k] = self._mid_vol(before)
            self._apply_price_range(k)
            for r in range(sc.keepers.rounds_max):
                now = t + r * sc.keepers.round_s
                self.vol_now = float(self.vol[k])
                self.liq.advance(now, self.mid)
                self.ok({"type": "advance_time", "time": now}, k - 1, r)
                self._publish(self.mid, float(self.vol[k]), now, k - 1, r)
                if r == 0:
                    self._roll_vault(now, float(self.vol[k]), k - 1)
                totals = self.engine.margin_totals()
                queue = [q["account"] for q in liquidation_queue(totals)]
                if r == 0:
                    self._sample(totals, k)
                    self.queue0 = set(queue)
                self.relist &= set(queue)  # seen healthy since its auction ended: a new episode
                self.views.append((now, queue))
                acted = self._act(self.searchers, now, totals, k - 1, r)  # searchers move first
                acted = self._act(self.keepers, now, totals, k - 1, r) or acted
                acted = self._backstop_act(now, queue, k - 1, r) or acted
                moved = self._unwind(k - 1, r)
                if not (acted or moved or self.engine.state.auctions):
                    break
            self.views = self.views[-64:]

    def _mid_vol(self, before: float) -> float:
        """Implied vol of the step from the traded mid, as `vol_path` makes it from the fundamental:
        the spot-vol relation on mid / mid at step 0, pulled up by the EWMA realized vol of the mid,
        so forced sales that push the price down raise the vol option books are marked at."""
        v, dt_s = self.sc.vol, self.sc.dt_s
        keep = 2.0 ** (-dt_s / v.realized_half_life_s)
        r2_annual = math.log(self.mid / before) ** 2 / (dt_s / SECONDS_PER_YEAR)
        self._variance = keep * self._variance + (1.0 - keep) * r2_annual
        cap = max(v.vol_cap_annual, v.vol_floor_annual)
        ratio = self.mid / float(self.spot[0])
        vol = spot_vol(
            ratio, v.vol0_annual, v.vol_floor_annual, cap, v.spot_vol_beta, math.sqrt(self._variance), v.realized_weight
        )
        return float(vol)

    def _view(self, now: int, latency_s: int) -> list[str]:
        seen = now - latency_s
        for t, queue in reversed(self.views):
            if t <= seen:
                return queue
        return []

    def _act(self, agents: _Liquidators, now: int, totals, step: int, rnd: int) -> bool:
        """Start liquidations on the queue as `agents` see it, round-robin over them; bid in running
        auctions. Whoever starts a fixed liquidation or wins an auction gets it."""
        if not agents.ids:
            return False
        active = {a.account for a in self.engine.state.auctions.values()}
        acted = False
        budget = self.sc.keepers.actions_per_round_max
        candidates = [a for a in self._view(now, agents.latency_s) if a not in active and a in self.users]
        for i, account in enumerate(candidates[:budget]):
            liquidator = agents.ids[i % len(agents.ids)]
            if not self._worth_it(account, agents):
                continue
            cmd = {"type": "start_liquidation", "account": account, "liquidator": liquidator}
            out = self._action(cmd, step, rnd, agents)
            acted = acted or not isinstance(out, Rejection)
        auctions = self.engine.state.auctions
        if auctions:  # bidders value the accounts as they are now, after this round's earlier fills
            now_totals = self.engine.margin_totals()
            equity = dict(zip(now_totals.ids, now_totals.equity.tolist(), strict=True))
        for j, auction in enumerate(sorted(auctions.values(), key=lambda a: int(a.id[1:]))):
            acted = self._bid(auction, j, equity, step, rnd, agents) or acted
        return acted

    def _worth_it(self, account: str, agents: _Liquidators) -> bool:
        """Fixed mechanism: the liquidator's share of the penalty on the whole notional, less what
        selling the perp it takes at the mark costs in the book (`_unwind_loss_usd`), must beat its
        cost: a liquidator stands aside while the mark lags the price the book trades at."""
        liq = self.d.profile.liquidation
        if liq.mechanism != "fixed":
            return True
        notional = self._gross(account) * self.engine.state.markets[UNDERLYING].index
        share = liq.fixed.penalty_ratio * (1 - liq.fixed.insurance_share)
        return share * notional - self._unwind_loss_usd(account) >= agents.cost_usd

    def _bid(self, auction, j: int, equity: dict[str, int], step: int, rnd: int, agents: _Liquidators) -> bool:
        """Batch: every one of `agents` seals a bid once; Dutch: one of them (rotating) bids each
        round at its reservation price, which the engine refuses while the auction's price is above it."""
        if auction.account not in equity:
            return False
        reservation = self._reservation_usd(auction.account, equity[auction.account], agents)
        ids = agents.ids[j % len(agents.ids) :] + agents.ids[: j % len(agents.ids)]
        acted = False
        for bidder in ids if auction.mechanism == "batch" else ids[:1]:
            if (auction.id, bidder) in self.bids:
                continue
            cmd = {
                "type": "bid",
                "auction": auction.id,
                "liquidator": bidder,
                "fraction": "1",
                "max_price": f"{reservation:.2f}",
            }
            out = self._action(cmd, step, rnd, agents)
            if auction.mechanism == "batch" and not isinstance(out, Rejection):
                self.bids.add((auction.id, bidder))
            acted = acted or not isinstance(out, Rejection)
        return acted

    def _reservation_usd(self, account: str, equity_units: int, agents: _Liquidators) -> float:
        """What a liquidator pays at most for the whole account: its value at the mark less what
        selling its perp into the book loses against the mark, the cost of the action and the profit
        it wants (negative: it must be paid that much)."""
        notional = self._gross(account) * self.mid
        loss = self._unwind_loss_usd(account)
        return equity_units / USDC_UNITS - loss - agents.cost_usd - agents.profit_ratio * notional

    def _unwind_loss_usd(self, account: str) -> float:
        """Taking the account's perp at the mark and selling it into the book (at most what one
        unwind sells): the loss against the mark, slippage and the mark's gap to the mid together
        (negative when the book pays more than the mark)."""
        pos = self.engine.state.accounts[account].positions.get(PERP)
        if pos is None or pos.size == 0:
            return 0.0
        size = float(pos.size)
        side = 1.0 if size > 0 else -1.0
        qty = min(abs(size), self._unwind_cap(-int(side)))
        mark = float(self.engine.state.markets[UNDERLYING].index)
        # what the book cannot take now is valued at the worst walk allowed (the book may be gone)
        stuck = (abs(size) - qty) * mark * UNWIND_WALK_MAX
        if qty <= 0:
            return stuck
        avg, _ = self.liq.quote(-side * qty, self.mid, self.vol_now)
        return side * (mark - avg) * qty + stuck

    def _action(self, cmd: dict, step: int, rnd: int, agents: _Liquidators):
        agents.attempted += 1
        out = self.submit(cmd, step, rnd)
        rejected = isinstance(out, Rejection)
        agents.rejected += rejected
        if agents.pays_rejected or not rejected:
            agents.costs_usd += agents.cost_usd
        return out

    def _backstop_act(self, now: int, queue: list[str], step: int, rnd: int) -> bool:
        """The protocol's liquidator takes the accounts liquidatable for `delay_s` or more (no keeper
        took them) whose equity is below `equity_maintenance_ratio` x maintenance, oldest first,
        within its gross notional limit: it starts the engine's liquidation (fixed: it takes the
        positions at the venue's price) and bids the account's value at the mark in auctions."""
        if self.backstop is None:
            return False
        listed = {a for a in queue if a in self.users}
        self.waiting = {a: t for a, t in self.waiting.items() if a in listed}
        for a in listed:
            self.waiting.setdefault(a, now)
        p = self.sc.backstop
        due = sorted((t, a) for a, t in self.waiting.items() if now - t >= p.delay_s)
        if not due:
            return False
        totals = self.engine.margin_totals()
        row = {a: i for i, a in enumerate(totals.ids)}
        index = float(self.engine.state.markets[UNDERLYING].index)
        acted = False
        for _, account in due:
            i = row[account]
            equity, maintenance = int(totals.equity[i]), int(totals.maintenance_margin[i])
            if not totals.liquidatable[i] or equity >= p.equity_maintenance_ratio * maintenance:
                continue
            if (self._gross(self.backstop) + self._gross(account)) * index > p.position_max_usd:
                self.backstop_declined += 1
                continue
            auction = next((x for x in self.engine.state.auctions.values() if x.account == account), None)
            if auction is None:
                out = self.submit(
                    {"type": "start_liquidation", "account": account, "liquidator": self.backstop}, step, rnd
                )
                if isinstance(out, Rejection):
                    continue
                acted = True
                if any(isinstance(e, LiquidationFill) and e.liquidator == self.backstop for e in out):
                    self.backstop_takeovers += 1
                    continue
                auction = next((x for x in self.engine.state.auctions.values() if x.account == account), None)
                if auction is None:
                    continue
                equity = int(self.engine.margin_totals().equity[i])
            bid = {
                "type": "bid",
                "auction": auction.id,
                "liquidator": self.backstop,
                "fraction": "1",
                "max_price": f"{equity / USDC_UNITS:.2f}",
            }
            out = self.submit(bid, step, rnd)
            if not isinstance(out, Rejection):
                acted = True
                self.backstop_takeovers += any(isinstance(e, LiquidationFill) for e in out)
        return acted

    def _unwind_cap(self, side: int) -> float:
        """The largest trade (BTC) of sign `side` that walks the book at most UNWIND_WALK_MAX past
        what earlier fills consumed (0 once the market maker has withdrawn)."""
        return self.liq.capacity_base(side, self.mid, self.vol_now, UNWIND_WALK_MAX)

    def _unwind(self, step: int, rnd: int) -> bool:
        """Searchers, then keepers, sell (buy back) the perps they took into the book; the market maker
        books the other side at the average fill, and the mid moves by the permanent impact."""
        moved = False
        for keeper in self.searchers.ids + self.keepers.ids + ([self.backstop] if self.backstop else []):
            pos = self.engine.state.accounts[keeper].positions.get(PERP)
            if pos is None or pos.size == 0:
                continue
            size = float(pos.size)
            signed_side = -1 if size > 0 else 1
            if keeper == BACKSTOP:  # a TWAP within its slippage limit
                bk = self.sc.backstop
                room = self.liq.capacity_base(signed_side, self.mid, self.vol_now, bk.unwind_walk_max_ratio)
                qty = round(min(abs(size), bk.unwind_usd_per_round / self.mid, room), 4)
            else:
                qty = round(min(abs(size), self._unwind_cap(signed_side)), 4)
            if qty <= 0:
                continue
            signed = signed_side * qty
            try:
                avg, new_mid = self.liq.quote(signed, self.mid, self.vol_now)
            except BookExhaustedError:
                continue
            price = max(round(avg, 2), 0.01)
            buyer, seller = (MARKET_MAKER, keeper) if size > 0 else (keeper, MARKET_MAKER)
            cmd = {"type": "trade", "buyer": buyer, "seller": seller, "instrument": PERP, "size": f"{qty:.4f}"}
            out = self.submit({**cmd, "price": f"{price:.2f}"}, step, rnd)
            if isinstance(out, Rejection):
                continue  # e.g. the oracle is halted: the liquidator holds on
            self.liq.fill(signed, self.mid, self.vol_now)
            self.mid = new_mid
            moved = True
        return moved

    def _roll_vault(self, now: int, vol: float, step: int | None = None) -> None:
        """Settle the vault's expired series at the mark, then sell the next one to the market maker;
        a sale the engine refuses (a stale or halted oracle) is tried again next step."""
        if self.vault is None or (self.vault_expiry is not None and now < self.vault_expiry):
            return
        if self.vault_expiry is not None:
            index = float(self.engine.state.markets[UNDERLYING].index)
            cmd = {"type": "settle_expiry", "underlying": UNDERLYING, "expiry": self.vault_expiry, "price": repr(index)}
            self.ok(cmd, step)
            self.vault_expiry = None
        pop = self.sc.population
        name, expiry, price = vault_call(now, self.mid, vol, pop)

        def submit(cmd: dict):
            if cmd["type"] == "deposit":  # a top-up when its BTC no longer covers the calls
                self.vault_deposits_usd += float(cmd["amount"])
            return self.submit(cmd, step)

        if open_trade(submit, self.vault, name, -pop.vault_btc, price, pop.option_collateral_ratio) is None:
            self.vault_expiry = expiry
            self.vault_series += 1

    def _base_range(self) -> dict[str, float]:
        pm = self.d.profile.portfolio
        return {} if pm is None else {u: p.price_range for u, p in pm.underlyings.items() if p.price_range}

    def _apply_price_range(self, k: int) -> None:
        """Volatility-driven range: the portfolio scenarios' price range grows with implied vol over
        its start (never below the static range, at most 0.95), quantized to 0.5%."""
        if self.d.price_range != "vol" or not self.base_range:
            return
        factor = max(1.0, float(self.vol[k]) / float(self.vol[0]))
        pm = self.d.profile.portfolio
        unders = {
            u: p.model_copy(update={"price_range": min(round(self.base_range[u] * factor / 0.005) * 0.005, 0.95)})
            if u in self.base_range
            else p
            for u, p in pm.underlyings.items()
        }
        if unders != self.engine.state.profile.portfolio.underlyings:  # a new profile re-flattens the book
            self.engine.state.profile = _with_portfolio(self.d.profile, pm.model_copy(update={"underlyings": unders}))

    # --- recording ------------------------------------------------------------------------------

    def _record_events(self, events: list, step: int, rnd: int) -> None:
        f = self.flows
        index = self.engine.state.markets[UNDERLYING].index
        for e in events:
            if isinstance(e, LiquidationStarted):
                self.auction_account[e.auction] = e.account
            if isinstance(e, LiquidationStarted) and e.account in self.relist:
                f["relistings"][step] += 1  # the same episode, listed again
            elif isinstance(e, LiquidationStarted) or (isinstance(e, LiquidationFill) and e.mechanism == "fixed"):
                f["liquidations"][step] += 1
                if rnd > 0 and e.account not in self.queue0:  # made liquidatable by this step's forced sales
                    f["cascade_liquidations"][step] += 1
            if isinstance(e, LiquidationFill):
                f["liquidation_volume_usd"][step] += float(e.fraction) * self.gross_before.get(e.account, 0.0) * index
                if e.liquidator in self.keepers.ids:
                    f["keeper_fills"][step] += 1
                elif e.liquidator in self.searchers.ids:
                    f["mev_fills"][step] += 1
            elif isinstance(e, AuctionEnded):
                account = self.auction_account.pop(e.auction)
                if e.reason == "unsold" or (e.reason == "cleared" and self._liquidatable(account)):
                    self.relist.add(account)
                else:
                    self.relist.discard(account)
            elif isinstance(e, BankruptcyResolved):
                f["uncovered_usd"][step] += e.uncovered_units / USDC_UNITS
                f["bad_debt_usd"][step] += e.uncovered_units / USDC_UNITS
            elif isinstance(e, Transferred):
                self._record_transfer(e, step)

    def _liquidatable(self, account: str) -> bool:
        return self.engine.state.margin(account).liquidatable

    def _record_transfer(self, e: Transferred, step: int) -> None:
        f, usd = self.flows, e.amount_units / USDC_UNITS
        if e.reason == "insurance" and e.debit == INSURANCE:
            f["insurance_paid_usd"][step] += usd
            f["bad_debt_usd"][step] += usd
        elif e.reason == "adl":
            f["adl_usd"][step] += usd
            f["bad_debt_usd"][step] += usd
        elif e.reason == "socialized_loss":
            f["socialized_loss_usd"][step] += usd
            if e.credit != INSURANCE:  # socialized into the fund is counted when the fund pays
                f["bad_debt_usd"][step] += usd

    def _sample(self, totals, k: int) -> None:
        s = self.engine.state
        index = s.markets[UNDERLYING].index
        self.states["fundamental"].append(float(self.spot[k]))
        self.states["mid"].append(self.mid)
        self.states["mark"].append(float(index))
        self.states["vol"].append(float(self.vol[k]))
        self.states["insurance_fund_usd"].append(s.ledger.balance(INSURANCE, "USDC") / USDC_UNITS)
        self.states["open_interest_usd"].append(self._perp_longs() * index)
        self.equity.append(totals.equity / USDC_UNITS)
        self._sampled_ids = totals.ids
        if len(self._user_rows) != len(totals):  # accounts are only opened at setup
            self._user_rows = np.fromiter((a in self.users for a in totals.ids), dtype=bool, count=len(totals))
        users = self._user_rows
        self.margin_req.append(int(np.maximum(totals.initial_margin[users], 0).sum()) / USDC_UNITS)
        self.notional.append(float(totals.notional_usd[users].sum()))

    def _perp_longs(self) -> float:
        """Open interest in BTC (the longs), recounted only when some account changed."""
        s = self.engine.state
        if self._longs[0] != s.revision:
            longs = sum(float(p.size) for a in s.accounts.values() if (p := a.positions.get(PERP)) and p.size > 0)
            self._longs = (s.revision, longs)
        return self._longs[1]

    def _equities(self) -> dict[str, int]:
        """Equity (settlement units) of the liquidators and the vault, whose P&L the metrics report."""
        ids = {*self.keepers.ids, *self.searchers.ids, *([self.vault] if self.vault else [])}
        ids |= {self.backstop} if self.backstop else set()
        totals = self.engine.margin_totals()
        return {a: int(e) for a, e in zip(totals.ids, totals.equity, strict=True) if a in ids}

    def result(self, source: str, path: int) -> PathResult:
        f = self.flows
        m = run_metrics(
            insurance_fund_usd=np.array([self.states["insurance_fund_usd"]]),
            equity_usd=np.array([np.stack(self.equity, axis=-1)]),
            bad_debt_usd=f["bad_debt_usd"][None],
            socialized_loss_usd=f["socialized_loss_usd"][None],
            liquidation_count=f["liquidations"][None],
            liquidation_volume_usd=f["liquidation_volume_usd"][None],
            margin_required_usd=np.array([self.margin_req]),
            notional_usd=np.array([self.notional]),
            dt_s=self.sc.dt_s,
        )
        end = self._equities()

        def pnl(ids) -> float:
            return sum(end[a] for a in ids) / USDC_UNITS - sum(self.start_equity[a] for a in ids) / USDC_UNITS

        kp, mev = self.keepers, self.searchers
        metrics = {name: float(np.ravel(getattr(m, name))[0]) for name in m.__dataclass_fields__}
        # every loss counted: what bankruptcies resolved during the run, plus the negative equity
        # still open at the end (at the final mark) of accounts no liquidator took
        # and what the protocol's own liquidator lost (its equity is not open debt: its P&L counts)
        final = np.asarray(self.equity[-1], dtype=float)
        if self.backstop is not None:
            final = np.delete(final, self._sampled_ids.index(self.backstop))
        open_debt = float(np.maximum(-final, 0.0).sum())
        backstop_pnl = pnl([self.backstop] if self.backstop else [])
        metrics["bad_debt_resolved_usd"] = metrics["bad_debt_usd"]
        metrics["bad_debt_open_usd"] = open_debt
        metrics["backstop_loss_usd"] = max(-backstop_pnl, 0.0)
        metrics["accounts_underwater_at_end"] = float((final < 0).sum())
        metrics["bad_debt_usd"] = metrics["bad_debt_resolved_usd"] + open_debt + metrics["backstop_loss_usd"]
        split = {name: units / USDC_UNITS for name, units in self.split.items()}
        metrics.update(
            {
                "cascade_liquidations": float(f["cascade_liquidations"].sum()),
                "adl_usd": float(f["adl_usd"].sum()),
                "insurance_paid_usd": float(f["insurance_paid_usd"].sum()),
                "uncovered_usd": float(f["uncovered_usd"].sum()),
                "peak_open_interest_usd": max(self.states["open_interest_usd"]),
                "open_interest_start_usd": self.open_interest0_usd,
                "insurance_fund_start_usd": self.fund0_usd,
                "depth_start_usd_per_pct": self.liq.base.depth_usd_per_pct,
                "liquidation_cost_to_users_usd": -split["user"],
                "liquidation_to_keepers_usd": split["keepers"],
                "liquidation_to_mev_usd": split["mev"],
                "liquidation_to_insurance_usd": split["insurance"],
                "liquidation_to_fees_usd": split["fees"],
                "liquidation_to_others_usd": split["others"],
                "liquidation_to_backstop_usd": split["backstop"],
                "backstop_pnl_usd": backstop_pnl,
                "backstop_takeovers": float(self.backstop_takeovers),
                "backstop_declined": float(self.backstop_declined),
                "backstop_position_end_usd": self._gross(self.backstop) * self.states["mark"][-1]
                if self.backstop
                else 0.0,
                "liquidation_bad_debt_closed_usd": split["bad_debt"],
                "relistings": float(f["relistings"].sum()),
                "keeper_pnl_usd": pnl(kp.ids) - kp.costs_usd,
                "keeper_costs_usd": kp.costs_usd,
                "keeper_actions": float(kp.attempted),
                "keeper_actions_rejected": float(kp.rejected),
                "keeper_fills": float(f["keeper_fills"].sum()),
                "mev_pnl_usd": pnl(mev.ids) - mev.costs_usd,
                "mev_costs_usd": mev.costs_usd,
                "mev_actions": float(mev.attempted),
                "mev_actions_dropped": float(mev.rejected),
                "mev_fills": float(f["mev_fills"].sum()),
                "vault_series_sold": float(self.vault_series),
                "vault_pnl_usd": pnl([self.vault] if self.vault else []) - self.vault_deposits_usd,
                "min_mark_usd": min(self.states["mark"]),
                "min_mid_usd": min(self.states["mid"]),
            }
        )
        series = {k: list(map(float, v)) for k, v in self.states.items()}
        series.update({k: list(map(float, v)) for k, v in f.items()})
        return PathResult(self.d.name, path, source, series, metrics, len(self.engine.state.accounts), self.n)


def _with_portfolio(profile: Profile, portfolio) -> Profile:
    return profile.model_copy(update={"portfolio": portfolio})

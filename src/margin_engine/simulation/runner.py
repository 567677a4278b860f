"""One path of one variant, run on the real engine (`Engine`, the code the service runs).

Each step: the fundamental price moves, the mid heals towards it (`recover_mid`), the mid is
published (signed `oracle_update`s from several sources when guards are on, `set_market` when
off), the covered-call vault rolls when its series has expired, then up to `rounds_max` rounds
`round_s` apart: MEV searchers, then keepers, read the liquidation queue as it was their latency
ago, call `start_liquidation` / `bid`, and sell what they took into the depth book, which moves
the mid the next round publishes: the cascade. Each command that moves money or positions has its
transfers checked (`audit_events`), and every step in which one did ends with the full audit of
the ledger (what it checks changes with nothing else, so every step ends on an audited state); a
break raises `InvariantViolation` (a bug, never caught here).

One module per job: `design` (a variant resolved), `prices` (the paths), `publishing` (oracle
updates and parameters), `agents` (keepers, searchers, the backstop, the vault), `unwinds` (their
sales into the book), `recording` (flows, samples, the split and the metrics); this loop joins them.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from margin_engine.engine import Engine, Rejection, audit, audit_events, liquidation_queue
from margin_engine.engine.events import (
    PositionChanged,
    Transferred,
)
from margin_engine.simulation.agents import Agents, _Liquidators
from margin_engine.simulation.design import Design, resolve_variant
from margin_engine.simulation.impact import DepthBook, recover_mid
from margin_engine.simulation.liquidity import Liquidity
from margin_engine.simulation.population import (
    BACKSTOP,
    PERP,
    UNDERLYING,
    USER_ROLES,
    draw_population,
    draw_traders,
    open_population,
)
from margin_engine.simulation.prices import basis_path, price_path, underlying_path, vol_path
from margin_engine.simulation.publishing import Publishing
from margin_engine.simulation.recording import SPLIT_PARTIES, PathResult, Recording
from margin_engine.simulation.scenario import Scenario, Variant
from margin_engine.simulation.seeds import path_rngs
from margin_engine.simulation.unwinds import Unwinds

__all__ = ["Design", "PathResult", "price_path", "resolve_variant", "run_path", "vol_path"]


LIQUIDATION_COMMANDS = ("start_liquidation", "bid", "advance_time")


def run_path(scenario: Scenario, variant: Variant, path: int) -> PathResult:
    """Run path `path` of `variant`: the same prices and population for every variant of a path."""
    design = resolve_variant(scenario, variant)
    # children 0-2 as before any other underlying existed, so BTC's draws do not depend on them
    seeds = path_rngs(scenario.seed, range(path, path + 1))[0].bit_generator.seed_seq.spawn(
        4 + len(scenario.underlyings)
    )
    price_rng, pop_rng, noise_rng, chain_rng, *extra_rngs = (np.random.Generator(np.random.PCG64(s)) for s in seeds)
    spot, source, start_s = price_path(scenario, price_rng)
    legs = [Leg(UNDERLYING, PERP, spot, vol_path(scenario, spot), scenario.vol)]
    legs[0].basis = basis_path(scenario, scenario.csv_path(), scenario.perp_csv_path(), start_s)
    for u, rng in zip(scenario.underlyings, extra_rngs, strict=True):
        other, where = underlying_path(scenario, u, spot, rng)
        legs.append(Leg(u.name, f"{u.name}-PERP", other, vol_path(scenario, other, u.vol), u.vol, u.depth_usd_per_pct))
        legs[-1].basis = basis_path(
            scenario, u.csv_path(scenario.base_dir), u.perp_csv_path(scenario.base_dir), start_s
        )
        source += f"; {u.name}: {where}"
    for leg in legs:
        if leg.basis is not None:
            leg.basis_now = float(leg.basis[0])
            source += f"; {leg.perp} marked at its own file's hourly basis"
    started = time.perf_counter()
    sim = _Sim(scenario, design, legs, pop_rng, noise_rng, chain_rng)
    sim.run()
    result = sim.result(source, path)
    result.start_s = start_s
    result.wall_s = time.perf_counter() - started
    return result


class Leg:
    """One underlying during a run: its fundamental path, the traded mid (forced sales move it),
    the implied vol (it follows the mid when vol.follows = "mid") and the book its perp trades in."""

    def __init__(self, underlying: str, perp: str, spot, vol, vol_model, depth_usd_per_pct: float | None = None):
        self.underlying, self.perp, self.vol_model = underlying, perp, vol_model
        self.spot = np.asarray(spot, dtype=float)
        self.vol = np.array(vol, dtype=float)  # entry k is set at step k from the mid
        self.mid = float(self.spot[0])
        self.min_mid = self.mid  # over every round, forced sales included
        self.vol_now = float(self.vol[0])  # of the step being run
        self.basis: np.ndarray | None = None  # the perp's basis per step from its own file (None: [market]'s)
        self.basis_now = 0.0
        self.variance = vol_model.vol0_annual**2  # EWMA of the mid's squared log returns
        self.depth_usd_per_pct = depth_usd_per_pct  # None: the scenario's
        self.history: deque[tuple[int, float]] = deque(maxlen=512)  # (time, mid) published: what late sources see
        self.pushed: dict[str, tuple[float, int]] = {}  # source -> (price, time) it last pushed
        self.option_expiries: set[int] = set()  # of options in the book: where the smile is published
        self.liq: Liquidity  # set once the population is open (its depth may scale with open interest)


class _Sim(Publishing, Agents, Unwinds, Recording):
    """The loop's mutable state: the engine, the mid, the keepers' view and the recorded series."""

    def __init__(self, scenario, design: Design, legs: list[Leg], pop_rng, noise_rng, chain_rng):
        self.sc, self.d, self.noise_rng, self.chain_rng = scenario, design, noise_rng, chain_rng
        self.dropped = 0  # liquidators' transactions lost to outages
        self.sequencer_down_rounds = 0
        self.oracle_pushes = 0  # signed updates the oracle accepted
        self.option_unwinds, self.option_unwind_cost_usd = 0, 0.0  # taken-over options sold back
        self.legs, self.btc = legs, legs[0]
        self.leg_of = {leg.underlying: leg for leg in legs}
        self.perp_leg = {leg.perp: leg for leg in legs}
        self.engine = Engine(design.profile)
        self.t0 = scenario.start_time_s
        self.n = len(self.btc.spot) - 1
        self.views: list[tuple[int, list[str]]] = []  # (time, liquidatable accounts worst first)
        self.bids: set[tuple[str, str]] = set()
        self.notional_before: dict[str, float] = {}  # USD at the mark, of the accounts a liquidation command touches
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
                "funding_paid_usd",
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
        for leg in legs[1:]:
            self.states.update({f"{leg.underlying.lower()}_{k}": [] for k in ("fundamental", "mid", "mark", "vol")})
        self.equity: list[np.ndarray] = []
        self.margin_req: list[float] = []
        self.notional: list[float] = []
        self._longs: tuple[int, dict[str, float]] = (-1, {})  # (state revision, longs per perp)
        self._user_rows = np.zeros(0, dtype=bool)
        self._party_codes = np.zeros(0, dtype=np.int64)
        self._rows: dict[str, int] = {}
        self._setup(pop_rng)

    def submit(self, cmd: dict, step: int | None = None, rnd: int = 0):
        s = self.engine.state
        liquidating = cmd["type"] in LIQUIDATION_COMMANDS and (cmd["type"] != "advance_time" or bool(s.auctions))
        if liquidating:
            accounts = {a.account for a in s.auctions.values()} | ({cmd["account"]} if "account" in cmd else set())
            self.notional_before = {a: self._notional(a) for a in accounts}
            before = self._money(cmd.get("time"))  # at the command's clock: time decay is no liquidation value
        out = self.engine.submit(cmd)
        if isinstance(out, Rejection):
            return out  # a rejection changes nothing (the engine's tests hold it to that)
        moved = any(isinstance(e, (Transferred, PositionChanged)) for e in out)
        if moved:
            audit_events(s, out)  # this command's transfers; the whole ledger once at the end of the step
            self.unaudited = True
        if step is not None:
            self._record_events(out, step, rnd)
        if liquidating and moved:
            self._split(before, out)
        return out

    def ok(self, cmd: dict, step: int | None = None, rnd: int = 0):
        out = self.submit(cmd, step, rnd)
        if isinstance(out, Rejection):
            raise AssertionError(f"simulator command rejected: {cmd['type']}: {out.code}: {out.message}")
        return out

    def _sequencer_down(self, now: int) -> bool:
        c = self.sc.chain
        if c.sequencer_down_from_step is None:
            return False
        start = self.t0 + c.sequencer_down_from_step * self.sc.dt_s
        return start <= now < start + c.sequencer_down_s

    def _notional(self, account: str, at: str = "mark") -> float:
        """Gross notional (USD): each position's |size| at its underlying's mark (index) or traded mid."""
        s = self.engine.state
        total = 0.0
        for name, p in s.accounts[account].positions.items():
            leg = self.leg_of.get(name.partition("-")[0], self.btc)  # Deribit-style names start with it
            total += abs(float(p.size)) * (leg.mid if at == "mid" else float(s.markets[leg.underlying].index))
        return total

    def _setup(self, pop_rng) -> None:
        sc, pop = self.sc, self.sc.population
        self.ok({"type": "advance_time", "time": self.t0})
        for leg in self.legs:
            self._check_listed(leg)
            self._set_market(leg, leg.mid, leg.vol_now)
        if sc.market.stablecoin_usd is not None:
            self.ok({"type": "set_market", "underlying": "USDC", "index": repr(sc.market.stablecoin_usd)})
        members = draw_population(pop, sc.keepers, sc.mev, self.btc.mid, pop_rng, sc.backstop)
        members += draw_traders(pop, sc.underlyings, {leg.underlying: leg.mid for leg in self.legs[1:]}, pop_rng)
        expiry_s = self.t0 + self.n * sc.dt_s + pop.option_expiry_days * 86_400
        if pop.option_sellers or pop.hedged_books:
            self.btc.option_expiries.add(expiry_s)
        self.roles = open_population(
            self.engine,
            members,
            self.d.margin_mode,
            self.btc.mid,
            self.btc.vol_now,
            expiry_s,
            pop.option_collateral_ratio,
            {leg.perp: leg.mid for leg in self.legs},
        )
        audit(self.engine.state)
        self.unaudited = False  # a command moved money or positions since the last full audit
        self.open_interest0_usd = self._open_interest_usd()
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
        longs = self._perp_longs()
        for leg in self.legs:  # each perp's own book, scaled to its own open interest when asked
            book = self.d.book
            if self.d.depth_oi_ratio is not None:
                depth = max(self.d.depth_oi_ratio * longs.get(leg.perp, 0.0) * leg.mid, 1.0)
                book = DepthBook(depth, book.permanent_fraction, book.depth_exponent)
            elif leg.depth_usd_per_pct is not None:
                book = DepthBook(leg.depth_usd_per_pct, book.permanent_fraction, book.depth_exponent)
            leg.liq = Liquidity(book, self.d.liquidity, leg.vol_now, leg.mid, self.t0)
        self._roll_vault(self.t0, self.btc.vol_now)
        self.base_range = self._base_range()
        for leg in self.legs:
            self._publish(leg, self.t0)
        self._sample(self.engine.margin_totals(), 0)

    def run(self) -> None:
        sc = self.sc
        for k in range(1, self.n + 1):
            t = self.t0 + k * sc.dt_s
            for leg in self.legs:
                before = leg.mid
                leg.mid = float(
                    recover_mid(leg.mid, leg.spot[k - 1], leg.spot[k], sc.dt_s, sc.depth.resilience_half_life_s)
                )
                leg.min_mid = min(leg.min_mid, leg.mid)
                if leg.vol_model.follows == "mid":
                    leg.vol[k] = self._mid_vol(leg, before)
                leg.vol_now = float(leg.vol[k])
                if leg.basis is not None:
                    leg.basis_now = float(leg.basis[k])
            self._apply_price_range(k)
            for r in range(sc.keepers.rounds_max):
                now = t + r * sc.keepers.round_s
                self.ok({"type": "advance_time", "time": now}, k - 1, r)
                if self._sequencer_down(now):  # nothing gets in; the clock (and staleness) runs on
                    self.sequencer_down_rounds += 1
                    if r == 0:
                        self._sample(self.engine.margin_totals(), k)
                    break
                for leg in self.legs:
                    leg.liq.advance(now, leg.mid)
                    self._publish(leg, now, k - 1, r)
                if r == 0:
                    self._roll_vault(now, self.btc.vol_now, k - 1)
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
            if self.unaudited:  # every step that moved money or positions ends on an audited state
                audit(self.engine.state)
                self.unaudited = False
            self.views = self.views[-64:]

"""What a run records: the liquidation split (who gained and lost what at the mark), flows per step
from the events, states sampled each step, and the metrics of the finished path."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from margin_engine.engine.events import (
    AuctionEnded,
    BankruptcyResolved,
    LiquidationFill,
    LiquidationStarted,
    Transferred,
)
from margin_engine.ledger.ledger import FEES, INSURANCE, SETTLEMENT
from margin_engine.simulation.metrics import run_metrics
from margin_engine.simulation.population import (
    BACKSTOP,
)

USDC_UNITS = 1e6
SPLIT_PARTIES = ("user", "keepers", "mev", "backstop", "others", "insurance", "fees", "bad_debt")
ACCOUNT_PARTIES = SPLIT_PARTIES[:5]  # then the venue's ledger accounts and the negative equity closed out


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


class Recording:
    """The `_Sim` methods that record."""

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

    def _record_events(self, events: list, step: int, rnd: int) -> None:
        f = self.flows
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
                f["liquidation_volume_usd"][step] += float(e.fraction) * self.notional_before.get(e.account, 0.0)
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
        elif e.reason == "funding" and e.credit == SETTLEMENT:
            f["funding_paid_usd"][step] += usd  # payers to the clearing account; receivers get it less rounding
        elif e.reason == "adl":
            f["adl_usd"][step] += usd
            f["bad_debt_usd"][step] += usd
        elif e.reason == "socialized_loss":
            f["socialized_loss_usd"][step] += usd
            if e.credit != INSURANCE:  # socialized into the fund is counted when the fund pays
                f["bad_debt_usd"][step] += usd

    def _sample(self, totals, k: int) -> None:
        s = self.engine.state
        for leg in self.legs:
            prefix = "" if leg is self.btc else f"{leg.underlying.lower()}_"
            self.states[f"{prefix}fundamental"].append(float(leg.spot[k]))
            self.states[f"{prefix}mid"].append(leg.mid)
            self.states[f"{prefix}mark"].append(float(s.markets[leg.underlying].index))
            self.states[f"{prefix}vol"].append(float(leg.vol[k]))
        self.states["insurance_fund_usd"].append(s.ledger.balance(INSURANCE, "USDC") / USDC_UNITS)
        self.states["open_interest_usd"].append(self._open_interest_usd())
        self.equity.append(totals.equity / USDC_UNITS)
        self._sampled_ids = totals.ids
        if len(self._user_rows) != len(totals):  # accounts are only opened at setup
            self._user_rows = np.fromiter((a in self.users for a in totals.ids), dtype=bool, count=len(totals))
        users = self._user_rows
        self.margin_req.append(int(np.maximum(totals.initial_margin[users], 0).sum()) / USDC_UNITS)
        self.notional.append(float(totals.notional_usd[users].sum()))

    def _perp_longs(self) -> dict[str, float]:
        """Open interest of each perp in base units (the longs), summed over the engine's book
        (perps are its non-option rows: an underlying lists one perp), recounted when some account changed."""
        s = self.engine.state
        if self._longs[0] != s.revision:
            book = self.engine.book()
            rows = ~book.is_option & (book.size > 0)
            sums = np.bincount(book.underlying[rows], weights=book.size[rows], minlength=len(book.underlyings))
            held = dict(zip(book.underlyings, sums.tolist(), strict=True))
            self._longs = (s.revision, {p: held.get(leg.underlying, 0.0) for p, leg in self.perp_leg.items()})
        return self._longs[1]

    def _open_interest_usd(self) -> float:
        markets = self.engine.state.markets
        return sum(n * float(markets[self.perp_leg[p].underlying].index) for p, n in self._perp_longs().items())

    def _liquidator_options(self) -> int:
        """Option positions keepers, searchers and the backstop still hold at the end."""
        ids = [*self.keepers.ids, *self.searchers.ids, *([self.backstop] if self.backstop else [])]
        s = self.engine.state
        return sum(1 for a in ids for n, p in s.accounts[a].positions.items() if p.size != 0 and n not in self.perp_leg)

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
                "funding_paid_usd": float(f["funding_paid_usd"].sum()),
                "insurance_paid_usd": float(f["insurance_paid_usd"].sum()),
                "uncovered_usd": float(f["uncovered_usd"].sum()),
                "peak_open_interest_usd": max(self.states["open_interest_usd"]),
                "open_interest_start_usd": self.open_interest0_usd,
                "insurance_fund_start_usd": self.fund0_usd,
                "depth_start_usd_per_pct": self.btc.liq.base.depth_usd_per_pct,
                "liquidation_cost_to_users_usd": -split["user"],
                "liquidation_to_keepers_usd": split["keepers"],
                "liquidation_to_mev_usd": split["mev"],
                "liquidation_to_insurance_usd": split["insurance"],
                "liquidation_to_fees_usd": split["fees"],
                "liquidation_to_others_usd": split["others"],
                "liquidation_to_backstop_usd": split["backstop"],
                "backstop_pnl_usd": backstop_pnl,
                "backstop_takeovers": float(self.backstop_takeovers),
                "liquidator_transactions_dropped": float(self.dropped),
                "sequencer_down_rounds": float(self.sequencer_down_rounds),
                "oracle_updates_accepted": float(self.oracle_pushes),
                "option_unwinds": float(self.option_unwinds),
                "option_unwind_cost_usd": self.option_unwind_cost_usd,
                "liquidator_options_end": float(self._liquidator_options()),
                "backstop_declined": float(self.backstop_declined),
                "backstop_position_end_usd": self._notional(self.backstop) if self.backstop else 0.0,
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
                "min_mid_usd": self.btc.min_mid,
            }
        )
        for leg in self.legs[1:]:
            u = leg.underlying.lower()
            metrics[f"{u}_min_mark_usd"] = min(self.states[f"{u}_mark"])
            metrics[f"{u}_min_mid_usd"] = leg.min_mid
        series = {k: list(map(float, v)) for k, v in self.states.items()}
        series.update({k: list(map(float, v)) for k, v in f.items()})
        return PathResult(self.d.name, path, source, series, metrics, len(self.engine.state.accounts), self.n)

"""The liquidators of a run: keepers and MEV searchers read the queue late, start liquidations and
bid in auctions when the penalty beats the cost of selling what they take; the protocol's
backstop takes what they leave; the covered-call vault rolls its series."""

from __future__ import annotations

from dataclasses import dataclass

from margin_engine.engine import Rejection
from margin_engine.engine.events import (
    LiquidationFill,
)
from margin_engine.simulation.population import (
    UNDERLYING,
    open_trade,
    vault_call,
)
from margin_engine.simulation.unwinds import UNWIND_WALK_MAX

USDC_UNITS = 1e6


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


DROPPED = Rejection("dropped", "the transaction was not included (a liquidator outage)")


class Agents:
    """The `_Sim` methods of the agents."""

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
        notional = self._notional(account)
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
        notional = self._notional(account, at="mid")
        loss = self._unwind_loss_usd(account)
        return equity_units / USDC_UNITS - loss - agents.cost_usd - agents.profit_ratio * notional

    def _unwind_loss_usd(self, account: str) -> float:
        """Taking the account's perps at the mark and selling each into its book (at most what one
        unwind sells): the loss against the mark, slippage and the mark's gap to the mid together
        (negative when the book pays more than the mark)."""
        positions = self.engine.state.accounts[account].positions
        loss = 0.0
        for leg in self.legs:
            pos = positions.get(leg.perp)
            if pos is None or pos.size == 0:
                continue
            size = float(pos.size)
            side = 1.0 if size > 0 else -1.0
            qty = min(abs(size), self._unwind_cap(leg, -int(side)))
            mark = float(self.engine.state.markets[leg.underlying].index)
            # what the book cannot take now is valued at the worst walk allowed (the book may be gone)
            loss += (abs(size) - qty) * mark * UNWIND_WALK_MAX
            if qty > 0:
                avg, _ = leg.liq.quote(-side * qty, leg.mid, leg.vol_now)
                loss += side * (mark - avg) * qty
        return loss

    def _action(self, cmd: dict, step: int, rnd: int, agents: _Liquidators):
        agents.attempted += 1
        p = self.sc.chain.liquidator_outage_probability
        if p > 0 and self.chain_rng.random() < p:  # lost: never included, nothing happens
            self.dropped += 1
            agents.rejected += 1
            if agents.pays_rejected:
                agents.costs_usd += agents.cost_usd
            return DROPPED
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
        acted = False
        for _, account in due:
            i = row[account]
            equity, maintenance = int(totals.equity[i]), int(totals.maintenance_margin[i])
            if not totals.liquidatable[i] or equity >= p.equity_maintenance_ratio * maintenance:
                continue
            if self._notional(self.backstop) + self._notional(account) > p.position_max_usd:
                self.backstop_declined += 1
                continue
            auction = self.engine.state.auction_of(account)
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
                auction = self.engine.state.auction_of(account)
                if auction is None:
                    continue
                equity = self.engine.state.margin(account).equity  # after the start, this account only
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

    def _roll_vault(self, now: int, vol: float, step: int | None = None) -> None:
        """Settle the vault's expired series at the mark, then sell the next one to the market maker;
        a sale the engine refuses (a stale or halted oracle) is tried again next step."""
        if self.vault is None or (self.vault_expiry is not None and now < self.vault_expiry):
            return
        if self.vault_expiry is not None:
            index = float(self.engine.state.markets[UNDERLYING].index)
            cmd = {"type": "settle_expiry", "underlying": UNDERLYING, "expiry": self.vault_expiry, "price": repr(index)}
            self.ok(cmd, step)
            self.btc.option_expiries.discard(self.vault_expiry)
            self.vault_expiry = None
        pop = self.sc.population
        name, expiry, price = vault_call(now, self.btc.mid, vol, pop)

        def submit(cmd: dict):
            if cmd["type"] == "deposit":  # a top-up when its BTC no longer covers the calls
                self.vault_deposits_usd += float(cmd["amount"])
            return self.submit(cmd, step)

        if open_trade(submit, self.vault, name, -pop.vault_btc, price, pop.option_collateral_ratio) is None:
            self.vault_expiry = expiry
            self.btc.option_expiries.add(expiry)
            self.vault_series += 1

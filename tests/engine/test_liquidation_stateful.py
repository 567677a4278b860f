"""Random liquidation sequences against the engine (hypothesis rule-based state machine).

Commands: levered perp trades (BTC, ETH), a few BTC options, price moves including gaps of -30%..+30%,
deposits and withdrawals, `fund_insurance`, `start_liquidation`, `bid` and `advance_time` (which
sweeps Dutch auctions and clears batch windows). Run with the `deribit` profile (fixed penalty, then
ADL), `derive` (Dutch auction, socialized loss) and `derive` with `mechanism = "batch"`.

After every step:
- `audit(state)` passes: no money created or destroyed, settlement = open perp quotes;
- a rejected command changed nothing (ledger, positions, auctions, gate, counters, journal);
- every accepted `start_liquidation`, and every dutch or batch fill, was on an account below
  maintenance in the state before the command (for `advance_time`, valued at the new time);
- a `bankruptcy` event adds up (deficit = insurance + adl + socialized + uncovered, parts >= 0) and
  leaves the bankrupt account's settlement balance >= -uncovered (>= 0 when nothing is uncovered)
  and at most 2 units above it;
- an ADL counterparty keeps equity >= 0 (its loss is capped at its equity);
- an accepted withdrawal happened while withdrawals were not gated.
At the end the journal, through JSON, replays to the same state, and a second engine fed the same
commands emits the same events.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from engine_checks import replays_and_repeats, scan_is_fresh, snapshot
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from margin_engine.engine import Engine, Rejection, audit
from margin_engine.engine.isolated_markets import withdrawal_gate
from margin_engine.errors import InputError
from margin_engine.ledger.ledger import user_key
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.profile import load_profile

T0 = 1795593600  # 2026-11-25T08:00:00Z
U = 10**6
SMALL = ("a0", "a1", "a2")
ISO = "iso"
MAKER = "mm"  # deep pockets: the usual other side of a trade
KEEPER = "k"
OPENED = (*SMALL, ISO, MAKER, KEEPER)
PERPS = ("BTC-PERP", "ETH-PERP")
OPTIONS = ("BTC-25DEC26-60000-C", "BTC-25DEC26-55000-P")
BASE_INDEX = {"BTC": 60000, "ETH": 3000}

accounts = st.sampled_from(OPENED)
traders = st.sampled_from((*SMALL, *SMALL, ISO))
liquidators = st.sampled_from((KEEPER, KEEPER, KEEPER, MAKER, "a0", "a1", ISO, "ghost", None))


def _dec(units: int, decimals: int = 6) -> str:
    return format(Decimal(units).scaleb(-decimals), "f")


def _touches(ev, account: str) -> bool:
    """Whether an event moves the account's cash or positions."""
    if ev.type == "position_changed":
        return ev.account == account
    if ev.type == "transfer":
        return account in (ev.debit.removeprefix("user:").split("/")[0], ev.credit.removeprefix("user:").split("/")[0])
    return False


class LiquidationMachine(RuleBasedStateMachine):
    profile_name = "deribit"
    mechanism: str | None = None  # override of liquidation.mechanism

    def __init__(self):
        super().__init__()
        profile = load_profile(self.profile_name)
        if self.mechanism:
            profile = profile.model_copy(
                update={"liquidation": profile.liquidation.model_copy(update={"mechanism": self.mechanism})}
            )
        self.profile = profile
        self.engine = Engine(profile)
        self.commands: list[dict] = []

    # ------------------------------------------------------------------------------ plumbing

    def submit(self, cmd: dict):
        before = copy.deepcopy(snapshot(self.engine))
        try:
            out = self.engine.submit(cmd)
        except InputError:
            assert snapshot(self.engine) == before
            return None
        self.commands.append(cmd)
        event(f"{cmd['type']}: {out.code if isinstance(out, Rejection) else 'accepted'}")
        if isinstance(out, Rejection):
            assert snapshot(self.engine) == before, f"rejected {cmd} ({out.code}) changed the state"
            return out
        for ev in out:
            if ev.type in ("liquidation_fill", "bankruptcy", "deleveraged", "auction_phase_changed"):
                event(f"event {ev.type}" + (f" {ev.mechanism}" if ev.type == "liquidation_fill" else ""))
        self._check_waterfall(out, before)
        return out

    def margin(self, account: str, at: int | None = None):
        s = self.engine.state
        return compute_margins([s.view(account)], s.markets, s.profile, s.now_s if at is None else at)[0]

    def index(self, underlying: str) -> Decimal:
        return Decimal(repr(self.engine.state.markets[underlying].index))

    def _check_waterfall(self, events, before):
        """Bankruptcy events add up and leave the account at >= -uncovered; ADL counterparties keep
        equity >= 0."""
        running: dict[str, int] = {}
        for i, ev in enumerate(events):
            if ev.type == "transfer" and ev.asset == "USDC":
                running[ev.debit] = running.get(ev.debit, 0) - ev.amount_units
                running[ev.credit] = running.get(ev.credit, 0) + ev.amount_units
            if ev.type == "bankruptcy":
                parts = (ev.insurance_units, ev.adl_units, ev.socialized_units, ev.uncovered_units)
                assert all(p >= 0 for p in parts) and sum(parts) == ev.deficit_units, ev
                key = user_key(ev.account)
                balance = before["balances"].get((key, "USDC"), 0) + running.get(key, 0)
                assert balance + ev.uncovered_units >= 0, (ev, balance)
                # and never more than rounding dust left in it (the deficit is rounded up)
                assert balance + ev.uncovered_units <= 2, (
                    f"the bankrupt account keeps {balance + ev.uncovered_units} units"
                )
            if ev.type == "deleveraged":
                assert ev.loss_units >= 0
                later = events[i + 1 :]
                if not any(_touches(x, ev.counterparty) for x in later):
                    assert self.margin(ev.counterparty).equity >= 0, ev

    def _check_fills(self, events, pre: dict):
        """Every dutch or batch fill was on an account below maintenance before the command."""
        for i, ev in enumerate(events):
            if ev.type != "liquidation_fill" or ev.mechanism == "fixed":
                continue
            m = pre[ev.account]
            if any(_touches(x, ev.account) for x in events[:i]) and not any(
                x.type == "liquidation_fill" and x.account == ev.account for x in events[:i]
            ):
                continue  # moved earlier in this command (as another auction's bidder): pre no longer applies
            assert m.liquidatable, f"{ev.mechanism} fill on {ev.account} above maintenance: {m}"

    # --------------------------------------------------------------------------------- rules

    @initialize(
        deposits=st.lists(st.sampled_from((2_000, 5_000, 13_000, 40_000)), min_size=4, max_size=4),
        fund=st.sampled_from((0, 0, 1_000, 50_000)),
        keeper=st.sampled_from((5_000, 2_000_000)),
        books=st.lists(
            st.tuples(st.sampled_from(PERPS), st.booleans(), st.sampled_from((Decimal("0.5"), Decimal("0.9")))),
            min_size=4,
            max_size=4,
        ),
    )
    def start(self, deposits, fund, keeper, books):
        self.submit({"type": "advance_time", "time": T0})
        for u, index in BASE_INDEX.items():
            self.submit({"type": "set_market", "underlying": u, "index": str(index), "vol": 0.6})
        amounts = dict(zip((*SMALL, ISO), deposits, strict=True)) | {MAKER: 20_000_000, KEEPER: keeper}
        for name in OPENED:
            self.submit({"type": "open_account", "account": name, "mode": "isolated" if name == ISO else "cross"})
            self.submit({"type": "deposit", "account": name, "asset": "USDC", "amount": str(amounts[name])})
        if fund:
            self.submit({"type": "fund_insurance", "asset": "USDC", "amount": str(fund)})
        # everyone starts levered, so that a few price moves make liquidations
        for account, (instrument, long, use) in zip((*SMALL, ISO), books, strict=True):
            self.levered_trade(account, instrument, long, use, MAKER)

    @rule(account=accounts, amount=st.sampled_from((1, 500, 5_000, 100_000)))
    def deposit(self, account, amount):
        self.submit({"type": "deposit", "account": account, "asset": "USDC", "amount": str(amount)})

    @rule(account=accounts, fraction=st.sampled_from((Decimal("0.1"), Decimal("0.5"), Decimal(1))))
    def withdraw(self, account, fraction):
        gated = withdrawal_gate(self.engine.state, account) is not None
        held = self.engine.state.ledger.balance(user_key(account), "USDC")
        amount = max(int(held * fraction), 1)
        out = self.submit({"type": "withdraw", "account": account, "asset": "USDC", "amount": _dec(amount)})
        if out is not None and not isinstance(out, Rejection):
            assert not gated, "a withdrawal went through while withdrawals were gated"
            assert self.margin(account).free_collateral >= 0

    @rule(
        account=traders,
        instrument=st.sampled_from(PERPS),
        long=st.booleans(),
        use=st.sampled_from((Decimal("0.3"), Decimal("0.7"), Decimal("0.95"), Decimal("0.99"))),
        other=st.sampled_from((MAKER, MAKER, *SMALL)),
    )
    def levered_trade(self, account, instrument, long, use, other):
        """Open or add to a perp using most of the free collateral, at the index."""
        if other == account:
            return
        m = self.margin(account)
        underlying = instrument.split("-")[0]
        index = self.index(underlying)
        perp = self.profile.underlying(underlying).perp
        free = Decimal(max(m.free_collateral, 0)) / U
        qty = (free * use / (index * Decimal(repr(perp.im_ratio + perp.size_ratio_per_unit)))).quantize(
            Decimal("0.00000001")
        )
        if qty <= 0:
            return
        buyer, seller = (account, other) if long else (other, account)
        self.submit(
            {
                "type": "trade",
                "buyer": buyer,
                "seller": seller,
                "instrument": instrument,
                "size": str(qty),
                "price": str(index),
            }
        )

    @rule(
        buyer=st.sampled_from((*SMALL, MAKER)),
        seller=st.sampled_from((*SMALL, MAKER)),
        option=st.sampled_from(OPTIONS),
        qty=st.sampled_from(("0.1", "0.5", "1", "2")),
        premium=st.sampled_from((500, 1500, 3000, 4500)),
    )
    def trade_option(self, buyer, seller, option, qty, premium):
        if buyer == seller:
            return
        self.submit(
            {
                "type": "trade",
                "buyer": buyer,
                "seller": seller,
                "instrument": option,
                "size": qty,
                "price": str(premium),
            }
        )

    @rule(
        underlying=st.sampled_from(("BTC", "BTC", "ETH")),
        move=st.one_of(st.integers(-3000, 3000), st.integers(-300, 300)),
        vol=st.sampled_from((0.4, 0.6, 0.9)),
    )
    def move_price(self, underlying, move, vol):
        """Index moves of -30%..+30% (in basis points), gaps included; kept within 0.3x..3x of the base."""
        new = self.index(underlying) * (1 + Decimal(move) / 10_000)
        low, high = BASE_INDEX[underlying] * Decimal("0.3"), BASE_INDEX[underlying] * Decimal(3)
        new = min(max(new, low), high).quantize(Decimal("0.01"))
        self.submit({"type": "set_market", "underlying": underlying, "index": str(new), "vol": vol})

    @rule(account=st.sampled_from((*SMALL, *SMALL, ISO, KEEPER, "ghost")), liquidator=liquidators)
    def start_liquidation(self, account, liquidator):
        if liquidator == account:
            return
        pre = self.margin(account) if account in self.engine.state.accounts else None
        cmd = {"type": "start_liquidation", "account": account}
        if liquidator:
            cmd["liquidator"] = liquidator
        out = self.submit(cmd)
        if out is None or isinstance(out, Rejection):
            if isinstance(out, Rejection) and out.code == "not_liquidatable":
                assert not pre.liquidatable
            return
        assert pre.liquidatable, f"{account} liquidated while above maintenance: {pre}"

    def _underwater(self, exclude=None) -> list[str]:
        return [a for a in (*SMALL, ISO, KEEPER) if a != exclude and self.margin(a).liquidatable]

    @rule(
        data=st.data(),
        underlying=st.sampled_from(("BTC", "BTC", "ETH")),
        move=st.integers(-3000, 3000),
        liquidator=st.sampled_from((KEEPER, KEEPER, MAKER, "a1", None)),
    )
    def shock_and_liquidate(self, data, underlying, move, liquidator):
        """A price gap, then start_liquidation on an account below maintenance, if any."""
        self.move_price(underlying, move, 0.6)
        under = self._underwater(liquidator)
        if under:
            self.start_liquidation(data.draw(st.sampled_from(under)), liquidator)

    @rule(data=st.data(), liquidator=st.sampled_from((KEEPER, KEEPER, MAKER, "a1", None)))
    def liquidate_underwater(self, data, liquidator):
        """start_liquidation on an account that is below maintenance now, if any."""
        under = self._underwater(liquidator)
        if under:
            self.start_liquidation(data.draw(st.sampled_from(under)), liquidator)

    @rule(
        data=st.data(),
        liquidator=st.sampled_from((KEEPER, KEEPER, KEEPER, MAKER, "a0", "a1", "a2", ISO)),
        fraction=st.sampled_from(("0.1", "0.5", "1", "1")),
        price=st.sampled_from((None, None, -1.5, -1.1, -1.0, 0.0, 0.5, 0.7, 0.75, 0.9, 1.0, 1.2)),
    )
    def bid(self, data, liquidator, fraction, price):
        auctions = sorted(self.engine.state.auctions)
        unknown = data.draw(st.integers(0, 9)) == 0
        auction = "L99" if unknown or not auctions else data.draw(st.sampled_from(auctions))
        a = self.engine.state.auctions.get(auction)
        cmd = {"type": "bid", "auction": auction, "liquidator": liquidator, "fraction": fraction}
        pre = {}
        if a is not None:
            pre[a.account] = self.margin(a.account)
            if price is not None or a.mechanism == "batch":
                # relative to what is sold at mark: the lot (batch) or the whole account (dutch)
                lot = (a.fraction if a.mechanism == "batch" else Decimal(1)) * Decimal(pre[a.account].equity) / U
                factor = Decimal(repr(0.8 if price is None else price))
                cmd["max_price"] = str((lot * factor).quantize(Decimal("0.01")))
        out = self.submit(cmd)
        if out is None or isinstance(out, Rejection):
            return
        if a is not None and a.mechanism == "batch":
            assert [ev.type for ev in out] == ["bid_placed"]
        self._check_fills(out, pre)

    @rule(
        data=st.data(),
        step=st.sampled_from((10, 300, 1800, 3600)),
        liquidator=st.sampled_from((KEEPER, MAKER, "a0")),
        price=st.sampled_from((0.7, 0.9, -1.0, -1.2)),
    )
    def bid_and_wait(self, data, step, liquidator, price):
        """Bid in a running auction, then let time pass (clears batch windows, sweeps Dutch auctions)."""
        if self.engine.state.auctions:
            self.bid(data, liquidator, "1", price)
        self.advance_time(step)

    @rule(step=st.sampled_from((0, 1, 5, 10, 60, 300, 900, 1800, 3600, 44_100, 86_400)))
    def advance_time(self, step):
        target = self.engine.state.now_s + step
        pre = {a.account: self.margin(a.account, at=target) for a in self.engine.state.auctions.values()}
        out = self.submit({"type": "advance_time", "time": target})
        assert out is not None and not isinstance(out, Rejection)
        self._check_fills(out, pre)

    @rule(amount=st.sampled_from(("1", "1000", "50000")))
    def fund_insurance(self, amount):
        self.submit({"type": "fund_insurance", "asset": "USDC", "amount": amount})

    # ---------------------------------------------------------------------------- invariants

    @invariant()
    def scan_is_fresh(self):
        scan_is_fresh(self.engine)

    @invariant()
    def conserved(self):
        audit(self.engine.state)
        s = self.engine.state
        # withdrawals are gated exactly while an insolvent auction runs or a deficit is uncovered
        expected = bool(s.bankrupt) or any(a.phase == "insolvent" for a in s.auctions.values())
        assert all((withdrawal_gate(s, a) is not None) == expected for a in s.accounts)
        # every running auction belongs to an existing account, one auction per account
        owners = [a.account for a in s.auctions.values()]
        assert len(owners) == len(set(owners)) and all(o in s.accounts for o in owners)

    def teardown(self):
        if self.commands:
            replays_and_repeats(self.engine, self.commands)


SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

LiquidationMachine.TestCase.settings = SETTINGS
TestLiquidationDeribit = LiquidationMachine.TestCase


class DeriveLiquidationMachine(LiquidationMachine):
    profile_name = "derive"


class BatchLiquidationMachine(LiquidationMachine):
    profile_name = "derive"
    mechanism = "batch"


DeriveLiquidationMachine.TestCase.settings = SETTINGS
TestLiquidationDerive = DeriveLiquidationMachine.TestCase
BatchLiquidationMachine.TestCase.settings = SETTINGS
TestLiquidationBatch = BatchLiquidationMachine.TestCase

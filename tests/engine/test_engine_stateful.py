"""Random command sequences against the engine (hypothesis rule-based state machine).

After every step: conservation and the clearing identity hold (`audit`), a rejection changed
nothing, an accepted trade left every side whose position grew or flipped with free collateral
>= 0 (and isolated positions covered by their allocation), an accepted withdrawal left free
collateral >= 0, fees follow the schedule, funding and expiry dust stays below one unit per
position, and perp quotes and cash flows follow the spec (quote = -(entry notional), kept pro rata
on a reduction; a side's cash moves by realized P&L or premium less its fee; funding and expiry
amounts per holder). At the end the journal, through JSON, replays to the same state and a second
engine fed the same commands emits the same event JSON.

Run with the deribit, derive and deribit-pm profiles (portfolio accounts use the risk matrix in the
last). `pytest --hypothesis-show-statistics` shows how often each command was accepted or rejected.
"""

from __future__ import annotations

import copy
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from engine_checks import replays_and_repeats, scan_is_fresh, snapshot
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from margin_engine.engine import Engine, Rejection, audit
from margin_engine.engine.isolated_markets import fund_of, withdrawal_gate
from margin_engine.engine.margin_calls import level_of
from margin_engine.errors import InputError
from margin_engine.instruments.names import parse_instrument
from margin_engine.ledger.ledger import FEES, INSURANCE, allocation_key, market_fund_key
from margin_engine.ledger.units import ceil_units
from margin_engine.margin.profile import FundingParams, InterestParams, MarginCallParams, TierParams, load_profile

T0 = 1795593600  # 2026-11-25T08:00:00Z
EXPIRIES = {"25DEC26": 1798185600, "26MAR27": 1806048000}  # 08:00 UTC
NAMES = ("a0", "a1", "a2", "a3", "a4", "ghost")  # "ghost" is never opened: unknown_account
MODES = ("cross", "isolated", "portfolio")
PERPS = ("BTC-PERP", "ETH-PERP")
OPTIONS = (
    "BTC-25DEC26-60000-C",
    "BTC-25DEC26-55000-P",
    "BTC-25DEC26-70000-C",
    "BTC-26MAR27-60000-C",
    "BTC-26MAR27-50000-P",
    "ETH-25DEC26-3000-C",
)
FUTURES = ("BTC-25DEC26", "ETH-26MAR27")
INSTRUMENTS = PERPS + FUTURES + OPTIONS
BASE_INDEX = {"BTC": 60000, "ETH": 3000}
ETH_FUND = market_fund_key("ETH-PERP")

OPENED = NAMES[:4]  # opened at the start; a4 only by the open_account rule
accounts = st.one_of(
    st.sampled_from(OPENED), st.sampled_from(OPENED), st.sampled_from(OPENED), st.sampled_from(NAMES[4:])
)
units_usdc = st.one_of(st.integers(1, 999), st.integers(1, 200_000 * 10**6))
units_btc = st.one_of(st.integers(1, 999), st.integers(1, 2 * 10**8))
units_eth = st.one_of(st.integers(1, 999), st.integers(1, 30 * 10**18))
sizes = st.one_of(st.integers(1, 99), st.integers(1, 300_000_000))  # in 1e-8 of the underlying
fractions = st.sampled_from(
    [Decimal("0.1"), Decimal("0.5"), Decimal("0.9"), Decimal("0.99"), Decimal(1), Decimal("1.01"), Decimal(2)]
)


def _dec(units: int, decimals: int) -> str:
    return format(Decimal(units).scaleb(-decimals), "f")


def _held(balances: dict, account: str) -> int:
    """USDC of an account: its free pool plus the collateral of its isolated positions."""
    return sum(
        v
        for (k, a), v in balances.items()
        if a == "USDC" and (k == f"user:{account}" or k.startswith(f"user:{account}/"))
    )


def _grew(old: Decimal, new: Decimal) -> bool:
    """The spec's risk-adding side: grew in absolute size, or flipped."""
    return abs(new) > abs(old) or (old != 0 and new != 0 and (old > 0) != (new > 0))


class EngineMachine(RuleBasedStateMachine):
    profile_name = "deribit"

    def __init__(self):
        super().__init__()
        self.profile = load_profile(self.profile_name)
        self.engine = Engine(self.profile)
        self.commands: list[dict] = []

    # ------------------------------------------------------------------------------ plumbing

    def submit(self, cmd: dict):
        before = copy.deepcopy(snapshot(self.engine))
        try:
            out = self.engine.submit(cmd)
        except InputError:
            assert snapshot(self.engine) == before
            return None, before
        self.commands.append(cmd)
        event(f"{cmd['type']}: {out.code if isinstance(out, Rejection) else 'accepted'}")
        if isinstance(out, Rejection):
            assert snapshot(self.engine) == before, f"rejected {cmd} ({out.code}) changed the state"
        return out, before

    def margin(self, account: str):
        return self.engine.state.margin(account)

    def balance(self, account: str, asset: str) -> int:
        return self.engine.state.ledger.balance(f"user:{account}", asset)

    def index(self, underlying: str) -> Decimal:
        m = self.engine.state.markets.get(underlying)
        return Decimal(repr(m.index)) if m else Decimal(BASE_INDEX[underlying])

    # --------------------------------------------------------------------------------- rules

    @initialize(
        set_clock=st.integers(0, 9),
        btc=st.integers(0, 9),
        eth=st.integers(0, 9),
        modes=st.lists(st.sampled_from(MODES), min_size=len(OPENED), max_size=len(OPENED)),
        deposits=st.lists(st.integers(0, 300_000), min_size=len(OPENED), max_size=len(OPENED)),
        btc_deposits=st.lists(st.integers(0, 3 * 10**8), min_size=len(OPENED), max_size=len(OPENED)),
    )
    def start(self, set_clock, btc, eth, modes, deposits, btc_deposits):
        # mostly with a clock and both markets; sometimes without, to meet time_unset and no_market
        if set_clock:
            self.submit({"type": "advance_time", "time": T0})
        for u, on in (("BTC", btc), ("ETH", eth)):
            if on:
                self.submit({"type": "set_market", "underlying": u, "index": str(BASE_INDEX[u]), "vol": 0.6})
        for name, mode, usdc, sats in zip(OPENED, modes, deposits, btc_deposits, strict=True):
            if mode == "portfolio" and self.profile.portfolio is None:
                mode = "cross"  # refused under a profile without portfolio rules (the open_account rule checks it)
            self.submit({"type": "open_account", "account": name, "mode": mode})
            if usdc:
                self.submit({"type": "deposit", "account": name, "asset": "USDC", "amount": str(usdc)})
            if sats and sats % 3 == 0:  # a third of the accounts also post BTC
                self.submit({"type": "deposit", "account": name, "asset": "BTC", "amount": _dec(sats, 8)})

    @rule(name=st.sampled_from(NAMES[:5]), mode=st.sampled_from(MODES))
    def open_account(self, name, mode):
        out, before = self.submit({"type": "open_account", "account": name, "mode": mode})
        unavailable = mode == "portfolio" and self.profile.portfolio is None
        assert isinstance(out, Rejection) == (name in before["modes"] or unavailable)
        if unavailable and name not in before["modes"]:
            assert out.code == "mode_unavailable", out

    @rule(account=accounts, asset=st.sampled_from(("USDC", "USDC", "BTC", "ETH")), data=st.data())
    def deposit(self, account, asset, data):
        amount = data.draw({"USDC": units_usdc, "BTC": units_btc, "ETH": units_eth}[asset])
        decimals = self.profile.asset(asset).decimals
        out, _ = self.submit({"type": "deposit", "account": account, "asset": asset, "amount": _dec(amount, decimals)})
        assert isinstance(out, Rejection) == (account not in self.engine.state.accounts)

    @rule(account=accounts, asset=st.sampled_from(("USDC", "USDC", "BTC", "ETH")), fraction=fractions)
    def withdraw(self, account, asset, fraction):
        decimals = self.profile.asset(asset).decimals
        held = self.balance(account, asset) if account in self.engine.state.accounts else 10**decimals
        amount = max(int(Decimal(max(held, 1)) * fraction), 1)
        out, _ = self.submit({"type": "withdraw", "account": account, "asset": asset, "amount": _dec(amount, decimals)})
        if out is None:
            return
        if isinstance(out, Rejection):
            if out.code == "insufficient_balance":
                assert amount > held
            return
        assert amount <= held
        m = self.margin(account)
        assert m.free_collateral >= 0, f"withdrawal left {account} with free collateral {m.free_collateral}"

    @rule(
        underlying=st.sampled_from(("BTC", "ETH")),
        move=st.integers(-2500, 2500),
        vol=st.integers(20, 150),
        basis_bp=st.none() | st.integers(-300, 300),
        confidence=st.none() | st.sampled_from(["0.3", "0.5", "0.9"]),
    )
    def set_market(self, underlying, move, vol, basis_bp, confidence):
        # index moves by up to +-25% of the base, in cents; the perp's mark may sit up to 3% off it
        # and the feeds' confidence may be low (the market model's charges)
        index = (Decimal(BASE_INDEX[underlying]) * (1 + Decimal(move) / 10_000)).quantize(Decimal("0.01"))
        cmd = {"type": "set_market", "underlying": underlying, "index": str(index), "vol": vol / 100}
        if basis_bp is not None:
            cmd["perp"] = str((index * (1 + Decimal(basis_bp) / 10_000)).quantize(Decimal("0.01")))
        if confidence is not None:
            cmd["confidence"] = {"spot": "0.9", "perp": confidence, "vol": confidence}
        self.submit(cmd)

    @rule(price=st.sampled_from(["0.9", "0.97", "0.985", "1", "1.01"]))
    def set_stablecoin_price(self, price):
        # the settlement stablecoin's price values crypto collateral and drives the depeg charges
        self.submit({"type": "set_market", "underlying": "USDC", "index": price})

    @rule(
        buyer=accounts,
        seller=accounts,
        instrument=st.sampled_from(INSTRUMENTS),
        size=sizes,
        price_move=st.integers(-500, 500),
        option_price=st.integers(0, 600_000),
        aggressor=st.sampled_from((None, "buyer", "seller")),
    )
    def trade(self, buyer, seller, instrument, size, price_move, option_price, aggressor):
        self.do_trade(buyer, seller, instrument, size, price_move, option_price, aggressor)

    @rule(
        buyer=accounts,
        seller=accounts,
        instrument=st.sampled_from(PERPS),
        size=sizes,
        price_move=st.integers(-500, 500),
        aggressor=st.sampled_from((None, "buyer", "seller")),
    )
    def trade_perp(self, buyer, seller, instrument, size, price_move, aggressor):
        self.do_trade(buyer, seller, instrument, size, price_move, 0, aggressor)

    @rule(data=st.data(), fraction=fractions, price_move=st.integers(-500, 500), option_price=st.integers(0, 600_000))
    def trade_against_position(self, data, fraction, price_move, option_price):
        """Reduce, close or flip an open position (fraction < 1, = 1, > 1 of its size)."""
        held = sorted(
            (a, n, p.size) for a, acct in self.engine.state.accounts.items() for n, p in acct.positions.items()
        )
        if not held:
            return
        account, name, size = data.draw(st.sampled_from(held))
        other = data.draw(st.sampled_from([a for a in OPENED if a != account]))
        qty = max(int((abs(size) * fraction).scaleb(8)), 1)
        buyer, seller = (other, account) if size > 0 else (account, other)
        self.do_trade(buyer, seller, name, qty, price_move, option_price, data.draw(st.sampled_from((None, "buyer"))))

    def do_trade(self, buyer, seller, instrument, size, price_move, option_price, aggressor):
        inst = parse_instrument(instrument)
        if inst.is_option:
            price = Decimal(option_price) / 100
        else:
            price = (self.index(inst.underlying) * (1 + Decimal(price_move) / 10_000)).quantize(Decimal("0.01"))
        cmd = {
            "type": "trade",
            "buyer": buyer,
            "seller": seller,
            "instrument": instrument,
            "size": _dec(size, 8),
            "price": str(price),
        }
        if aggressor:
            cmd["aggressor"] = aggressor
        out, before = self.submit(cmd)
        if out is None:
            assert buyer == seller
            return
        old = {a: before["positions"].get(a, {}).get(instrument, (Decimal(0), 0))[0] for a in (buyer, seller)}
        qty = Decimal(size).scaleb(-8)
        new = {buyer: old[buyer] + qty, seller: old[seller] - qty}
        if isinstance(out, Rejection):
            if out.code in ("insufficient_margin", "position_limit", "borrow_cap", "reduce_only") and out.account:
                # only a side that adds risk may be refused for margin, size or a loan
                assert _grew(old[out.account], new[out.account]), (out, old, new)
            if out.code == "position_limit":
                assert abs(new[out.account]) > Decimal(out.cap)
            if out.code == "open_interest_cap":
                assert Decimal(out.requested) > Decimal(out.cap) and Decimal(out.requested) > Decimal(out.current)
            return
        positions = self.engine.state.accounts
        for account in (buyer, seller):
            got = positions[account].positions.get(instrument)
            assert (got.size if got else Decimal(0)) == new[account]
        self._check_fees(out, inst, qty, price, aggressor)
        self._check_quotes_and_cash(out, before, inst, instrument, buyer, seller, qty, price)
        for account in (buyer, seller):
            if not _grew(old[account], new[account]):
                continue
            m = self.margin(account)
            assert m.free_collateral >= 0, (
                f"{account} added risk in {instrument} and was left with free collateral {m.free_collateral}"
            )
            if m.mode == "isolated":
                pm = next(p for p in m.positions if p.instrument == instrument)
                held = self.engine.state.ledger.balance(allocation_key(account, instrument), "USDC")
                assert held >= ceil_units(pm.initial_margin - pm.value, 6), (account, instrument, held, pm)

    def _check_quotes_and_cash(self, events, before, inst, name, buyer, seller, qty, price):
        """Spec oracle: perp quote = -(entry notional), kept pro rata on a reduction, reset to the
        opening part on a flip; a cross side's cash moves by realized P&L (perps) or the premium
        (options), less its fee."""
        (t,) = [e for e in events if e.type == "trade"]
        notional = int((qty * price).scaleb(6).to_integral_value())  # half-even, as both sides book it
        s = self.engine.state
        for account, sign, fee in ((buyer, 1, t.buyer_fee_units), (seller, -1, t.seller_fee_units)):
            old_size, old_quote = before["positions"].get(account, {}).get(name, (Decimal(0), 0))
            got = s.accounts[account].positions.get(name)
            new_size, new_quote = (got.size, got.quote) if got else (Decimal(0), 0)
            if inst.is_option:
                assert new_quote == 0
                flow = -sign * notional
            else:
                if new_size == 0:
                    assert got is None
                elif old_size == 0 or (old_size > 0) == (new_size > 0) and abs(new_size) > abs(old_size):
                    assert new_quote == old_quote - sign * notional  # increase: adds the fill's notional
                elif (old_size > 0) == (new_size > 0):
                    assert abs(Decimal(new_quote) - Decimal(old_quote) * new_size / old_size) <= Decimal("0.5")
                else:  # flipped: the opening part of the fill is the new basis
                    assert abs(Decimal(new_quote) + sign * notional * abs(new_size) / qty) <= Decimal("0.5")
                flow = old_quote - sign * notional - new_quote  # realized P&L
            # free pool and allocations together (top-ups and releases move money inside the account)
            delta = _held(dict(s.ledger.balances), account) - _held(before["balances"], account)
            assert delta == flow - fee, (account, delta, flow, fee)

    def _check_fees(self, events, inst, qty, price, aggressor):
        f = self.profile.fees
        (t,) = [e for e in events if e.type == "trade"]
        for side, fee in (("buyer", t.buyer_fee_units), ("seller", t.seller_fee_units)):
            if inst.is_option:
                raw = min(
                    Decimal(repr(f.option_rate)) * self.index(inst.underlying) * qty,
                    Decimal(repr(f.option_fee_cap_premium_ratio)) * price * qty,
                )
            else:
                rate = f.perp_taker_rate if aggressor == side else f.perp_maker_rate
                raw = Decimal(repr(rate)) * price * qty
            assert fee == int(raw.scaleb(6).to_integral_value(rounding=ROUND_CEILING)), (side, fee, raw)

    @rule(account=accounts, instrument=st.sampled_from(INSTRUMENTS), amount=st.integers(-5_000 * 10**6, 5_000 * 10**6))
    def allocate(self, account, instrument, amount):
        if amount == 0:
            return
        out, _ = self.submit(
            {"type": "allocate", "account": account, "instrument": instrument, "amount": _dec(amount, 6)}
        )
        if out is None or isinstance(out, Rejection) or amount > 0:
            return
        m = self.margin(account)
        pm = next(p for p in m.positions if p.instrument == instrument)
        held = self.engine.state.ledger.balance(allocation_key(account, instrument), "USDC")
        assert held >= ceil_units(pm.initial_margin - pm.value, 6)

    @rule(instrument=st.sampled_from(PERPS), rate=st.integers(-100_000, 100_000))
    def apply_funding(self, instrument, rate):
        s = self.engine.state
        holders = list(s.holders.get(instrument, {}))
        fees = s.ledger.balance(FEES, "USDC")
        out, before = self.submit({"type": "apply_funding", "instrument": instrument, "rate": _dec(rate, 8)})
        if out is None or isinstance(out, Rejection):
            return
        dust = s.ledger.balance(FEES, "USDC") - fees
        assert 0 <= dust <= len(holders), (dust, holders)
        index = Decimal(repr(s.markets[instrument.split("-")[0]].index))
        for account in holders:
            owed = s.accounts[account].positions[instrument].size * index * Decimal(rate).scaleb(-8)
            # payers rounded up, receivers rounded down
            expected = (
                -int(owed.scaleb(6).to_integral_value(rounding=ROUND_CEILING))
                if owed > 0
                else int((-owed).scaleb(6).to_integral_value(rounding=ROUND_FLOOR))
            )
            key = allocation_key(account, instrument) if s.accounts[account].mode == "isolated" else f"user:{account}"
            assert s.ledger.balance(key, "USDC") - before["balances"].get((key, "USDC"), 0) == expected

    @rule(step=st.sampled_from((0, 3600, 86400, 10 * 86400, 31 * 86400, 60 * 86400, -1)))
    def advance_time(self, step):
        now = self.engine.state.now_s
        target = (now if now is not None else T0) + step
        if target < 0:
            return
        out, _ = self.submit({"type": "advance_time", "time": target})
        assert isinstance(out, Rejection) == (now is not None and target < now)
        for kind in ("interest_accrued", "funding_computed"):
            if not isinstance(out, Rejection) and any(x.type == kind for x in out or ()):
                event(f"advance_time: {kind}")

    @rule(
        underlying=st.sampled_from(("BTC", "ETH")),
        expiry=st.sampled_from(sorted(EXPIRIES)),
        move=st.integers(-3000, 3000),
    )
    def settle_expiry(self, underlying, expiry, move):
        price = (Decimal(BASE_INDEX[underlying]) * (1 + Decimal(move) / 10_000)).quantize(Decimal("0.001"))
        s = self.engine.state
        expiring = [
            (a, n)
            for n, hs in s.holders.items()
            for a in hs
            if n.startswith(f"{underlying}-{expiry}-") or n == f"{underlying}-{expiry}"  # options, futures
        ]
        fees = s.ledger.balance(FEES, "USDC")
        out, before = self.submit(
            {"type": "settle_expiry", "underlying": underlying, "expiry": expiry, "price": str(price)}
        )
        if isinstance(out, Rejection):
            if out.code == "not_expired":
                assert s.now_s is None or s.now_s < EXPIRIES[expiry]
            return
        payoff: dict[str, int] = {}
        for account, name in expiring:
            assert name not in s.accounts[account].positions
            assert s.ledger.balance(allocation_key(account, name), "USDC") == 0
            size, quote = before["positions"][account][name]
            inst = parse_instrument(name)
            if inst.is_option:
                intrinsic = max(price - inst.strike, 0) if inst.is_call else max(inst.strike - price, Decimal(0))
                value = (size * intrinsic).scaleb(6)
            else:  # a future is delivered: it realizes its quote plus its value at the price
                value = (size * price).scaleb(6) + quote
            # longs receive rounded down, shorts pay rounded up: both are the floor of the signed payoff
            got = int(value.to_integral_value(rounding=ROUND_FLOOR))
            # an isolated position's allocation comes back to the free pool with its payoff
            got += before["balances"].get((allocation_key(account, name), "USDC"), 0)
            payoff[account] = payoff.get(account, 0) + got
        for account, amount in payoff.items():
            key = f"user:{account}"
            assert s.ledger.balance(key, "USDC") - before["balances"].get((key, "USDC"), 0) == amount
        dust = s.ledger.balance(FEES, "USDC") - fees
        assert 0 <= dust <= len(expiring)

    # ---------------------------------------------------------------------------- invariants

    @invariant()
    def scan_is_fresh(self):
        scan_is_fresh(self.engine)

    @invariant()
    def conserved(self):
        report = audit(self.engine.state)
        s = self.engine.state
        for _asset, row in report.items():
            assert (
                row["deposits"] - row["withdrawals"]
                == row["users"] + row["insurance"] + row["fees"] + row["settlement"]
            )
            assert row["fees"] >= 0
        # no allocation left behind by a closed isolated position
        for (key, _asset), amount in dict(s.ledger.balances).items():
            if "/" in key and amount != 0:
                account, name = key.removeprefix("user:").split("/", 1)
                assert name in s.accounts[account].positions, (key, amount)

    def teardown(self):
        if self.commands:
            replays_and_repeats(self.engine, self.commands)


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

EngineMachine.TestCase.settings = SETTINGS
TestEngineDeribit = EngineMachine.TestCase


class DeriveEngineMachine(EngineMachine):
    profile_name = "derive"


class DeribitPortfolioEngineMachine(EngineMachine):
    """Portfolio-mode accounts are margined by the risk matrix here: the engine's checks must hold too."""

    profile_name = "deribit-pm"


class PerpMarketsEngineMachine(EngineMachine):
    """Interest on loans (`[interest]`: Derive's model, hourly accruals to the fund and lenders,
    borrow caps), open-interest caps and position limits, dYdX's OI-scaled initial margin, the mark
    from the fills' basis, funding computed hourly (Hyperliquid's rule), margin tiers on BTC-PERP,
    Binance's margin-call levels and ETH-PERP as an isolated
    market with its own fund (liquidations and bankruptcies included) in the mix, with admin funding
    and expiries: conservation to the unit after every command, the caps never exceeded, each fund
    paying only its own market's losses and withdrawals gated per pool."""

    def __init__(self):
        super().__init__()
        p = load_profile("deribit")
        unders = {
            u: x.model_copy(
                update={
                    "perp": x.perp.model_copy(
                        update={
                            "open_interest_max_base": 4.0,
                            "position_max_base": 2.5,
                            "basis_ema_s": 30,
                            "open_interest_lower_cap_usd": 60_000.0,  # dYdX's OI-scaled IMF within reach
                            "open_interest_upper_cap_usd": 300_000.0,
                            "isolated_market": u == "ETH",  # its own fund and withdrawal gate
                            # Hyperliquid-style tiers on BTC: 50x to 100,000 USD of notional, then 25x
                            **(
                                {
                                    "tiers": (
                                        TierParams(lower_bound_usd=0, max_leverage=50),
                                        TierParams(lower_bound_usd=100_000, max_leverage=25),
                                    )
                                }
                                if u == "BTC"
                                else {}
                            ),
                        }
                    )
                }
            )
            for u, x in p.underlyings.items()
        }
        interest = InterestParams(borrow_max_usd_per_account=8_000, borrow_max_usd_total=20_000)
        funding = FundingParams(rule="hyperliquid")
        calls = MarginCallParams()  # Binance's levels: margin_call events, reduce-only enforced
        update = {"underlyings": unders, "interest": interest, "funding": funding, "margin_calls": calls}
        self.profile = p.model_copy(update=update)
        self.engine = Engine(self.profile)

    @rule(seller=st.sampled_from(OPENED), premium=st.integers(1_000, 9_000))
    def buy_on_credit(self, seller, premium):
        """A new account with one BTC and no USDC buys a call and holds it an hour: a loan of the
        premium that accrues."""
        buyer = f"b{len(self.engine.state.accounts)}"
        self.submit({"type": "open_account", "account": buyer, "mode": "cross"})
        self.submit({"type": "deposit", "account": buyer, "asset": "BTC", "amount": "1"})
        self.do_trade(buyer, seller, "BTC-26MAR27-60000-C", 10**8, 0, premium * 100, None)
        event(f"buy_on_credit: {'loan' if self.balance(buyer, 'USDC') < 0 else 'no loan'}")
        self.advance_time(3600)  # held an hour: an accrual boundary crossed

    @rule(amount=st.integers(1, 5_000), main=st.booleans())
    def fund(self, amount, main):
        market = {} if main else {"market": "ETH-PERP"}
        self.submit({"type": "fund_insurance", "asset": "USDC", "amount": str(amount), **market})

    @rule(account=st.sampled_from(OPENED), liquidator=st.sampled_from(OPENED + ("k",)))
    def liquidate_one(self, account, liquidator):
        self.liquidate(account, liquidator)

    def liquidate(self, account, liquidator):
        """A liquidation, often of nobody liquidatable; "k" is a keeper that holds nothing. What an
        ETH-PERP trader loses is paid from ETH-PERP's fund, never the main one, and the reverse."""
        if liquidator == "k" and "k" not in self.engine.state.accounts:
            self.submit({"type": "open_account", "account": "k", "mode": "cross"})
            self.submit({"type": "deposit", "account": "k", "asset": "USDC", "amount": "500000"})
        out, before = self.submit({"type": "start_liquidation", "account": account, "liquidator": liquidator})
        if out is None or isinstance(out, Rejection):
            return
        isolated = "ETH-PERP" in before["positions"][account] or account in before["bankrupt_funds"]
        fund, other = (ETH_FUND, INSURANCE) if isolated else (INSURANCE, ETH_FUND)
        for x in out:
            if x.type == "transfer" and x.reason in ("insurance", "liquidation_penalty"):
                assert other not in (x.debit, x.credit), x
            if x.type == "bankruptcy":
                gated = ", uncovered: withdrawals gated" if x.uncovered_units else ""
                event(f"liquidate: bankruptcy ({'isolated market' if isolated else 'cross'}{gated})")
                assert x.fund == fund

    @rule(collateral=st.integers(40, 600), drop_bp=st.integers(200, 2_500), maker_usdc=st.sampled_from((0, 50_000)))
    def isolated_crash(self, collateral, drop_bp, maker_usdc):
        """Two new accounts trade 1 ETH-PERP, ETH falls and the long is liquidated: often bankrupt,
        its deficit then on ETH-PERP's fund and, beyond it, on that market's traders alone (a maker
        with no free USDC leaves it uncovered, gating the market's withdrawals)."""
        n = len(self.engine.state.accounts)
        long, short = f"l{n}", f"s{n}"
        for name, asset, amount in ((long, "USDC", collateral), (short, "USDC", maker_usdc), (short, "BTC", 2)):
            self.submit({"type": "open_account", "account": name, "mode": "cross"})
            if amount:
                self.submit({"type": "deposit", "account": name, "asset": asset, "amount": str(amount)})
        price = self.index("ETH")
        cmd = {"type": "trade", "buyer": long, "seller": short, "instrument": "ETH-PERP", "size": "1"}
        self.submit({**cmd, "price": str(price), "aggressor": "buyer"})
        crashed = (price * (10_000 - drop_bp) / 10_000).quantize(Decimal("0.01"))
        self.submit({"type": "set_market", "underlying": "ETH", "index": str(crashed), "vol": 0.6})
        self.liquidate(long, "k")

    @invariant()
    def isolated_market_holds(self):
        s = self.engine.state
        for a in s.holders.get("ETH-PERP", {}):
            assert list(s.accounts[a].positions) == ["ETH-PERP"], a
        pools = {a: fund_of(s, a) for a in s.accounts}
        for a, pool in pools.items():
            gated = any(s.bankrupt_funds.get(b, INSURANCE) == pool for b in s.bankrupt)
            assert (withdrawal_gate(s, a) is not None) == gated, a

    @invariant()
    def margin_levels_are_current(self):
        """Every account's stored margin-call level is the one its margin now gives."""
        s = self.engine.state
        for a in s.accounts:
            try:
                m = s.margin(a)
            except InputError:
                continue
            level, _ = level_of(m.equity, m.maintenance_margin, s.profile.margin_calls)
            assert s.margin_levels.get(a, "clear") == level, a
            if level != "clear":
                event(f"margin level: {level}")

    @invariant()
    def caps_hold(self):
        s = self.engine.state
        for name in PERPS:
            held = [s.accounts[a].positions[name].size for a in s.holders.get(name, {})]
            assert sum(x for x in held if x > 0) <= 4 and all(abs(x) <= Decimal("2.5") for x in held)


DeriveEngineMachine.TestCase.settings = settings(SETTINGS, max_examples=40)
PerpMarketsEngineMachine.TestCase.settings = settings(SETTINGS, max_examples=60)
TestEnginePerpMarkets = PerpMarketsEngineMachine.TestCase
TestEngineDerive = DeriveEngineMachine.TestCase
DeribitPortfolioEngineMachine.TestCase.settings = settings(SETTINGS, max_examples=40)
TestEngineDeribitPortfolio = DeribitPortfolioEngineMachine.TestCase

"""What-if: an account's margin after hypothetical fills, by the engine's own trade on a scratch
copy of the state, so that allocations, fees, premium, bands and checks are the engine's.

The account takes each fill as the taker against the outside market (which books nothing); the
fills apply in order and the first one the engine would refuse stops there, with its rejection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from margin_engine.engine.commands import Trade, parse_fill
from margin_engine.engine.engine import book_trade
from margin_engine.engine.events import AccountOpened, Event, MarketSet, PositionChanged, TimeAdvanced, Transferred
from margin_engine.engine.rejection import Rejection
from margin_engine.engine.state import State, evolve
from margin_engine.engine.tx import Reject
from margin_engine.errors import InputError
from margin_engine.instruments.names import parse_instrument
from margin_engine.ledger.ledger import EXTERNAL, allocation_key, user_key
from margin_engine.ledger.units import format_units, parse_decimal
from margin_engine.margin.book import AccountView, PositionView
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.liquidation_price import LiquidationPrices
from margin_engine.margin.profile import Profile
from margin_engine.margin.result import AccountMargin
from margin_engine.market.snapshot import MarketSnapshot

_TRADE_RE = re.compile(r"^(?P<instrument>[^:@]+):(?P<size>[^:@]+)(?:@(?P<price>[^:@]+))?$")
MARKET = "(market)"  # the counterparty of a hypothetical fill: not an account id (ids.ACCOUNT_ID_RE)


@dataclass(frozen=True)
class WhatIf:
    before: AccountMargin
    after: AccountMargin
    trades: tuple[str, ...]
    rejected_trade: int | None = None  # index into trades of the fill the engine would refuse
    rejection: Rejection | None = None
    # per underlying held: where each side of the trade leaves the liquidation prices
    prices_before: tuple[LiquidationPrices, ...] = ()
    prices_after: tuple[LiquidationPrices, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The shape `margin-engine what-if --format json` and the service answer with."""
        keys = ("equity", "initial_margin", "maintenance_margin", "free_collateral")
        b, a = self.before, self.after
        return {
            "account": b.id,
            "trades": list(self.trades),
            "accepted": self.rejection is None,
            "rejection": None if self.rejection is None else {"trade": self.rejected_trade, **self.rejection.to_json()},
            "before": b.to_json(),
            "after": a.to_json(),
            "change": {k: format_units(getattr(a, k) - getattr(b, k), b.decimals) for k in keys},
            "liquidation_prices": {
                "before": [p.to_json() for p in self.prices_before],
                "after": [p.to_json() for p in self.prices_after],
            },
        }


def parse_trade(text: object, account: str, state: State, field: str) -> Trade:
    """`INSTRUMENT:SIZE[@PRICE]` (e.g. `BTC-PERP:-2@61000`; a negative size sells) as the Trade the
    account would take against the market; the price defaults to the engine's mark."""
    if not isinstance(text, str) or len(text) > 200:
        raise InputError(field, f"expected INSTRUMENT:SIZE[@PRICE], e.g. BTC-PERP:-2@61000, got {text!r}"[:200])
    match = _TRADE_RE.match(text.strip())
    if match is None:
        raise InputError(field, f"expected INSTRUMENT:SIZE[@PRICE], e.g. BTC-PERP:-2@61000, got {text!r}")
    signed = parse_decimal(match["size"], f"{field}.size")
    if signed == 0:
        raise InputError(f"{field}.size", "must not be zero (negative sells, positive buys)")
    price = match["price"]
    if price is None:
        inst = parse_instrument(match["instrument"], f"{field}.instrument")
        if inst.underlying not in state.markets:
            raise InputError(f"{field}.instrument", f"no market for {inst.underlying}: no mark to trade at")
        price = repr(mark_prices([inst], state)[inst.name])
    inst, size, checked = parse_fill(match["instrument"], abs(signed), price, state.profile, f"{field}.")
    buyer, seller = (account, MARKET) if signed > 0 else (MARKET, account)
    return Trade(buyer, seller, inst, size, checked, "buyer" if signed > 0 else "seller")


def mark_prices(instruments: list, state: State) -> dict[str, float]:
    """Each instrument's mark by the pricing the margin uses (an account holding each once)."""
    probe = AccountView("probe", "cross", {}, tuple(PositionView(i, Decimal(1)) for i in instruments))
    (m,) = compute_margins([probe], state.markets, state.profile, state.now_s or 0)
    return {p.instrument: p.mark_price for p in m.positions}


def what_if(state: State, account: str, trades_text: Iterable[str]) -> WhatIf:
    """Margin of `account` before and after the fills; `state` is never written."""
    texts = tuple(trades_text)
    if account not in state.accounts:
        raise InputError("account", f"no account {account!r}")
    scratch = state.scratch()
    for i, text in enumerate(texts):
        trade = parse_trade(text, account, scratch, f"trade[{i}]")
        try:
            events = book_trade(scratch, trade, (account,))
        except Reject as r:
            return _answer(state, scratch, account, texts, i, r.rejection)
        for event in events:
            evolve(scratch, event)
    return _answer(state, scratch, account, texts)


def _answer(
    state: State, scratch: State, account: str, texts: tuple[str, ...], i: int | None = None, why=None
) -> WhatIf:
    prices = (tuple(state.liquidation_prices(account)), tuple(scratch.liquidation_prices(account)))
    return WhatIf(state.margin(account), scratch.margin(account), texts, i, why, *prices)


def state_of_views(
    profile: Profile, markets: Mapping[str, MarketSnapshot], now_s: int, views: Iterable[AccountView]
) -> State:
    """An engine state holding a portfolio file's accounts, so what-if runs the engine's trade on
    it: balances, isolated collateral and positions as given, funded from outside."""
    events: list[Event] = [TimeAdvanced(now_s)]
    events += [MarketSet(u, m.to_json()) for u, m in markets.items()]
    settle = profile.settlement_asset
    for view in views:
        events.append(AccountOpened(view.id, view.mode))
        funding = [(user_key(view.id), a, units) for a, units in view.balances.items()]
        funding += [(allocation_key(view.id, p.instrument.name), settle, p.allocation_units) for p in view.positions]
        for key, asset, units in funding:
            if units:
                debit, credit = (EXTERNAL, key) if units > 0 else (key, EXTERNAL)
                events.append(Transferred(debit, credit, asset, abs(units), "portfolio_file"))
        events += [PositionChanged(view.id, p.instrument.name, p.size, p.quote_units) for p in view.positions]
    state = State(profile)
    for event in events:
        evolve(state, event)
    return state

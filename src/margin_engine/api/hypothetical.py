"""`what_if()`: one account's margin before and after hypothetical fills, booked by the engine's own
trade on a scratch copy (`engine.what_if`), as `margin-engine what-if` does; nothing is changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from margin_engine.api import _tables
from margin_engine.api.inputs import _plain, load, resolve_profile
from margin_engine.api.margins import MarginReport, usd
from margin_engine.engine import Engine, State
from margin_engine.engine.what_if import WhatIf, state_of_views
from margin_engine.engine.what_if import what_if as _what_if
from margin_engine.errors import InputError
from margin_engine.margin.profile import Profile

KEYS = ("equity", "initial_margin", "maintenance_margin", "free_collateral")
COLUMNS = tuple(f"{k}_usd" for k in KEYS)


@dataclass(frozen=True)
class WhatIfReport:
    """`before` and `after` are AccountMargins; `accepted` is False when a fill would be refused,
    and then `rejection` says why and `after` is the state after the fills before it."""

    profile: Profile
    result: WhatIf

    @property
    def before(self):
        return self.result.before

    @property
    def after(self):
        return self.result.after

    @property
    def accepted(self) -> bool:
        return self.result.rejection is None

    @property
    def rejection(self):
        return self.result.rejection

    @property
    def trades(self) -> tuple[str, ...]:
        return self.result.trades

    def to_json(self) -> dict[str, Any]:
        """What `margin-engine what-if --format json` prints."""
        return {"profile": self.profile.name, **self.result.to_json()}

    def _rows(self) -> list[tuple]:
        b, a = self.before, self.after
        d = b.decimals
        return [
            ("before", *(usd(getattr(b, k), d) for k in KEYS)),
            ("after", *(usd(getattr(a, k), d) for k in KEYS)),
            ("change", *(usd(getattr(a, k) - getattr(b, k), d) for k in KEYS)),
        ]

    def to_pandas(self):
        """Rows before, after and change; columns equity_usd, initial_margin_usd,
        maintenance_margin_usd, free_collateral_usd."""
        return _tables.frame(("when", *COLUMNS), self._rows(), index="when")

    def positions_to_pandas(self):
        """The account's positions before and after (column `when`), as MarginReport shows them."""
        pd = _tables.pandas()
        frames = []
        for when, account in (("before", self.before), ("after", self.after)):
            df = MarginReport(self.profile, (account,)).positions_to_pandas()
            df.insert(0, "when", when)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def _status(self) -> str:
        if self.accepted:
            return "accepted"
        i, r = self.result.rejected_trade or 0, self.rejection
        return f"refused at trade {i} ({self.trades[i]}): {r.code if r else ''}"

    def summary(self) -> str:
        """A text block: account, trades and outcome, then before / after / change in USD."""
        table = _tables.text_table(("when", *COLUMNS), self._rows())
        pairs = [("Account", self.before.id), ("Profile", self.profile.name), ("Outcome", self._status())]
        lines = [*_tables.banner("What-if", pairs, len(table[0]))]
        lines += [f"trade {i}: {t}" for i, t in enumerate(self.trades)]
        if self.rejection is not None:
            lines.append(f"refused: {self.rejection.code}: {self.rejection.message}")
        return "\n".join([*lines, *table])

    def _repr_html_(self) -> str:
        caption = f"What-if for {self.before.id} ({self.profile.name}): {', '.join(self.trades)}: {self._status()}"
        return _tables.html_table(("when", *COLUMNS), self._rows(), caption)

    def __repr__(self) -> str:
        change = usd(self.after.initial_margin - self.before.initial_margin, self.before.decimals)
        return (
            f"WhatIfReport(account={self.before.id!r}, trades={list(self.trades)!r}, accepted={self.accepted}, "
            f"initial_margin_change_usd={change:.2f})"
        )


def trade_text(trade: Any, field: str) -> str:
    """`INSTRUMENT:SIZE[@PRICE]` from that text, a tuple (instrument, size[, price]) or a dict with
    instrument, size and price (optional; default the mark)."""
    if isinstance(trade, str):
        return trade
    if isinstance(trade, Mapping):
        unknown = set(trade) - {"instrument", "size", "price"}
        if unknown or not {"instrument", "size"} <= set(trade):
            raise InputError(field, "expected {'instrument', 'size', 'price'?}")
        parts = [trade["instrument"], trade["size"], trade.get("price")]
    elif isinstance(trade, Sequence) and len(trade) in (2, 3):
        parts = [*trade, None][:3]
    else:
        raise InputError(field, f"expected 'BTC-PERP:-2@61000', (instrument, size[, price]) or a dict; got {trade!r}")
    instrument, size, price = (_plain(p) for p in parts)
    text = f"{instrument}:{_number(size)}"
    return text if price is None else f"{text}@{_number(price)}"


def _number(value: Any) -> str:
    """A size or price as the trade text's decimal (never 1E+3, which the parser refuses)."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def what_if(
    portfolio: Any,
    account: str,
    trades: Any,
    profile: str | Path | Profile | None = None,
    **portfolio_options: Any,
) -> WhatIfReport:
    """Margin of `account` before and after `trades` (one or a list; signed sizes, negative sells;
    at the mark unless a price is given). `portfolio` is anything `margin()` takes, an Engine included."""
    texts = [trade_text(t, f"trades[{i}]") for i, t in enumerate([trades] if _single(trades) else list(trades))]
    if isinstance(portfolio, Engine | State):
        state = portfolio.state if isinstance(portfolio, Engine) else portfolio
        prof = state.profile
    else:
        prof = resolve_profile(profile)
        pf = load(portfolio, prof, **portfolio_options)
        state = state_of_views(prof, pf.markets, pf.valuation_s, pf.accounts)
    if account not in state.accounts:
        known = ", ".join(state.accounts) or "none"
        raise InputError("account", f"no account {account!r} in the portfolio; it has {known}")
    return WhatIfReport(prof, _what_if(state, account, texts))


def _single(trades: Any) -> bool:
    """One trade rather than a list of them: a text, a dict, or a tuple whose first item is a name."""
    return isinstance(trades, str | Mapping) or (
        isinstance(trades, tuple) and bool(trades) and isinstance(trades[0], str)
    )

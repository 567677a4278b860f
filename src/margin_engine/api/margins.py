"""`margin()`: the margin of every account of a portfolio as one `MarginReport`, the numbers of
`margin-engine margin` (the same `compute_margins`), as DataFrames, a text summary and HTML."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from margin_engine.api import _tables
from margin_engine.api.inputs import load, resolve_profile
from margin_engine.clock import format_time
from margin_engine.engine import Engine, State
from margin_engine.engine.scan import BookCache
from margin_engine.errors import InputError
from margin_engine.instruments.names import Future, Option, parse_instrument
from margin_engine.margin.calculator import compute_margins
from margin_engine.margin.portfolio import CONTINGENCIES
from margin_engine.margin.profile import Profile
from margin_engine.margin.result import GREEK_NAMES, AccountMargin

ACCOUNT_COLUMNS = (
    "account",
    "mode",
    "equity_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    "free_collateral_usd",
    "margin_ratio",
    "liquidatable",
    "positions",
    *GREEK_NAMES,
)
POSITION_COLUMNS = (
    "account",
    "instrument",
    "underlying",
    "kind",
    "size",
    "mark_price_usd",
    "value_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    *GREEK_NAMES,
    "collateral_usd",
    "liquidatable",
)
COLLATERAL_COLUMNS = ("account", "asset", "balance", "value_usd", "im_haircut_usd", "mm_haircut_usd")
RISK_COLUMNS = (
    "account",
    "underlying",
    "worst_scenario",
    "worst_pnl_usd",
    "basis_loss_usd",
    "loss_usd",
    *(f"{c}_usd" for c in CONTINGENCIES),
    "confidence_usd",
    "base_usd",
)
_SUMMARY_COLUMNS = ACCOUNT_COLUMNS[:8]


def usd(units: int, decimals: int) -> float:
    """Settlement units as USD; int / int is correctly rounded, so it equals float(the JSON string)."""
    return units / 10**decimals


@dataclass(frozen=True)
class MarginReport:
    """Margin of every account under one profile: `report["alice"]` is that AccountMargin (exact
    integer units), `to_pandas()` one row per account, `positions_to_pandas()` one per position."""

    profile: Profile
    accounts: tuple[AccountMargin, ...]
    valuation_s: int | None = None
    explained: bool = False

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.accounts)

    def __iter__(self) -> Iterator[AccountMargin]:
        return iter(self.accounts)

    def __getitem__(self, account: str) -> AccountMargin:
        for a in self.accounts:
            if a.id == account:
                return a
        raise KeyError(f"no account {account!r}; the report has {', '.join(self.ids) or 'none'}")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.accounts)

    def to_json(self) -> dict[str, Any]:
        """What `margin-engine margin --format json` prints: amounts as exact decimal strings."""
        return {"profile": self.profile.name, "accounts": [a.to_json() for a in self.accounts]}

    # ---------------------------------------------------------------- rows
    def _account_row(self, a: AccountMargin) -> tuple:
        d = a.decimals
        g = a.greeks
        return (
            a.id,
            a.mode,
            usd(a.equity, d),
            usd(a.initial_margin, d),
            usd(a.maintenance_margin, d),
            usd(a.free_collateral, d),
            a.margin_ratio,
            a.liquidatable,
            len(a.positions),
            *(g[n] for n in GREEK_NAMES),
        )

    def _position_rows(self) -> list[tuple]:
        rows = []
        for a in self.accounts:
            for p in a.positions:
                inst = parse_instrument(p.instrument)
                if isinstance(inst, Option):
                    kind = "call" if inst.is_call else "put"
                else:
                    kind = "future" if isinstance(inst, Future) else "perp"
                rows.append(
                    (
                        a.id,
                        p.instrument,
                        inst.underlying,
                        kind,
                        float(p.size),
                        p.mark_price,
                        p.value,
                        p.initial_margin,
                        p.maintenance_margin,
                        *p.greeks,
                        None if p.allocation_units is None else usd(p.allocation_units, a.decimals),
                        p.liquidatable,
                    )
                )
        return rows

    # ---------------------------------------------------------------- DataFrames
    def to_pandas(self):
        """One row per account, indexed by account id: USD amounts (`*_usd`), margin_ratio (MM /
        equity; NaN when equity <= 0 under a requirement), the position count and the Greeks (delta
        and gamma NaN when the account holds several underlyings: they do not add across)."""
        return _tables.frame(ACCOUNT_COLUMNS, [self._account_row(a) for a in self.accounts], index="account")

    def positions_to_pandas(self):
        """One row per position: size (signed, in the underlying), mark and value in USD, standalone
        requirements (NaN under a risk matrix, which has none per position), Greeks of the
        position's size, and an isolated position's collateral and flag."""
        return _tables.frame(POSITION_COLUMNS, self._position_rows())

    def collateral_to_pandas(self):
        """One row per (account, asset) held: balance in the asset, USD value and haircuts."""
        rows = [
            (a.id, c.asset, float(c.balance), c.value, c.im_haircut, c.mm_haircut)
            for a in self.accounts
            for c in a.collateral
        ]
        return _tables.frame(COLLATERAL_COLUMNS, rows)

    def risk_to_pandas(self):
        """Accounts margined on a risk matrix, one row per (account, underlying): the worst
        scenario, its P&L, the loss, each contingency and the base that IM and MM multiply."""
        rows = []
        for a in self.accounts:
            for u in (a.portfolio or {}).get("underlyings", []):
                rows.append(
                    (
                        a.id,
                        u["underlying"],
                        u["worst_scenario"]["label"],
                        u["worst_pnl"],
                        u["basis_loss"],
                        u["loss"],
                        *(u["contingencies"].get(c, 0.0) for c in CONTINGENCIES),
                        u["confidence"],
                        u["base"],
                    )
                )
        return _tables.frame(RISK_COLUMNS, rows)

    def scenarios_to_pandas(self):
        """Every scenario of every risk-matrix account and underlying with its weighted P&L in USD
        (needs `margin(..., explain=True)`)."""
        if not self.explained:
            raise ValueError("scenarios need the explain: margin(portfolio, profile, explain=True)")
        rows = []
        for a in self.accounts:
            for u in (a.portfolio or {}).get("underlyings", []):
                for s in u.get("scenarios", []):
                    rows.append({"account": a.id, "underlying": u["underlying"], **s})
        pd = _tables.pandas()
        df = pd.DataFrame(rows)
        return df.rename(columns={"pnl": "pnl_usd"}) if len(df) else df

    # ---------------------------------------------------------------- showing
    def _summary_rows(self) -> list[tuple]:
        return [self._account_row(a)[: len(_SUMMARY_COLUMNS)] for a in self.accounts]

    def summary(self) -> str:
        """A text block: profile, time and totals, then one line per account (amounts in USD)."""
        table = _tables.text_table(_SUMMARY_COLUMNS, self._summary_rows())
        d = self.profile.settlement_decimals
        pairs = [
            ("Profile", self.profile.name),
            ("Valuation time", "-" if self.valuation_s is None else format_time(self.valuation_s)),
            ("Accounts", len(self.accounts)),
            ("Liquidatable", sum(a.liquidatable for a in self.accounts)),
            ("Equity (USD)", f"{usd(sum(a.equity for a in self.accounts), d):,.2f}"),
            ("Initial margin (USD)", f"{usd(sum(a.initial_margin for a in self.accounts), d):,.2f}"),
        ]
        width = len(table[0])
        notes = [
            "=" * max(width, 72),
            f"Amounts in USD ({self.profile.settlement_asset}, the settlement asset); margin_ratio = "
            "maintenance / equity, 1 or more is liquidatable.",
        ]
        if any(a.portfolio is not None for a in self.accounts):
            notes.append("Portfolio accounts are margined on the profile's risk matrix: see risk_to_pandas().")
        return "\n".join([*_tables.banner("Margin report", pairs, width), *table, *notes])

    def _repr_html_(self) -> str:
        caption = f"Margin ({self.profile.name} profile" + (
            f", {format_time(self.valuation_s)})" if self.valuation_s is not None else ")"
        )
        return _tables.html_table(_SUMMARY_COLUMNS, self._summary_rows(), caption)

    def __repr__(self) -> str:
        d = self.profile.settlement_decimals
        im = usd(sum(a.initial_margin for a in self.accounts), d)
        return (
            f"MarginReport(profile={self.profile.name!r}, accounts={len(self.accounts)}, "
            f"initial_margin_usd={im:.2f}, liquidatable={sum(a.liquidatable for a in self.accounts)})"
        )


def margin(
    portfolio: Any,
    profile: str | Path | Profile | None = None,
    explain: bool = False,
    *,
    market: Mapping | None = None,
    valuation_time: Any = None,
    collateral: Any = None,
    modes: Mapping[str, str] | None = None,
) -> MarginReport:
    """Margin of every account, as `margin-engine margin` computes it.

    `portfolio` is the portfolio file's dict, a path to a JSON/TOML file, a DataFrame of positions
    (columns account, instrument, size, and optionally entry_price, collateral, mode; give `market`,
    `valuation_time` and `collateral` beside it), or an `Engine` (e.g. from `load_journal`), margined
    at its clock under its own profile. `profile` is a packaged name or a TOML path (default
    `deribit`); `explain` adds every scenario of risk-matrix accounts.
    """
    if isinstance(portfolio, Engine | State):
        state = portfolio.state if isinstance(portfolio, Engine) else portfolio
        if profile is not None and resolve_profile(profile).name != state.profile.name:
            raise InputError("profile", f"an engine is margined under its own profile ({state.profile.name})")
        book = BookCache().book(state)
        now_s = state.now_s or 0
        results = compute_margins(book.views, state.markets, state.profile, now_s, explain=explain, book=book)
        return MarginReport(state.profile, tuple(results), state.now_s, explain)
    prof = resolve_profile(profile)
    pf = load(portfolio, prof, market=market, valuation_time=valuation_time, collateral=collateral, modes=modes)
    results = compute_margins(pf.accounts, pf.markets, prof, pf.valuation_s, explain=explain)
    return MarginReport(prof, tuple(results), pf.valuation_s, explain)

"""The documented reference population of the stress simulator, drawn from one seeded Generator.

- **Perp traders** (`t000`, ...): long with probability `long_fraction`, else short. Notional is
  lognormal (median `notional_median_usd`, log-sd `notional_sigma_log`), leverage lognormal
  (median `leverage_median`, log-sd `leverage_sigma_log`) clipped to [1, `leverage_max`];
  collateral = notional / leverage. Where the profile's initial margin needs more, the trader
  deposits the shortfall plus 1% (so leverage is capped by the venue, as in reality).
- **Option sellers** (`o00`, ...): alternately a short OTM put (strike `option_otm_pct` below spot)
  and a short OTM call (above), 1..`option_size_max` BTC, expiring `option_expiry_days` after the run,
  with `option_collateral_ratio` times their initial margin (always cross, or portfolio).
- **Hedged books** (`h00`, ...): `hedged_books` accounts, each alternately short an OTM put or call
  (strike `hedged_otm_pct` from spot, 1..`option_size_max` BTC, the option sellers' expiry) and
  delta-hedged in the perp: perp size = -delta x option size, the option's Black-76 delta at open
  rounded to 1e-4 BTC. Collateral as option sellers (`option_collateral_ratio` times what each leg
  needs); cross, or portfolio when the variant's mode is portfolio, so the hedge offsets there.
- **Covered-call vault** (`vault`): holds `vault_btc` BTC as collateral (haircut by the profile's
  BTC weights) and sells `vault_btc` calls to the market maker at the Black-76 price: at the start
  and at every expiry, strike `vault_otm_pct` above the mid (rounded to 1,000 USD), expiring at the
  first 08:00 UTC at least `vault_roll_days` later. The runner settles each expired series
  (`settle_expiry` at the mark) before it sells the next (`vault_call`). Cross or portfolio, as
  option sellers; `vault_btc = 0`: no vault.
- **Market maker** (`mm`): cross, `market_maker_collateral_usd`; takes the other side of every
  opening trade, of the vault's calls and of the liquidators' unwinds (it stands for the outside book).
- **Keepers** (`k0`, ...): cross, `capital_usd` each; the liquidators.
- **MEV searchers** (`s0`, ...): cross, `mev.capital_usd` each; liquidators that compete with the
  keepers: the runner shows them the queue `mev.latency_s` late and lets them move first each round.
- **Backstop** (`backstop`, when `[backstop] enabled`): cross, `backstop.capital_usd`; the
  protocol's liquidator of last resort (no draw: it changes no other member).

Traders, option sellers, hedged books and the vault are the users: the accounts liquidators take.
Hedged books are drawn after everyone else, so adding them changes no other member's draw. All
USD amounts are rounded to cents and sizes to 1e-4 BTC, so the engine's decimal inputs are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from margin_engine.engine import Engine, Rejection
from margin_engine.instruments.names import EXPIRY_HOUR_UTC, format_expiry
from margin_engine.pricing.black76 import SECONDS_PER_YEAR, black76
from margin_engine.simulation.scenario import Backstop, Keepers, Mev, Population, Underlying

UNDERLYING = "BTC"
PERP = "BTC-PERP"
MARKET_MAKER = "mm"
BACKSTOP = "backstop"
VAULT = "vault"
USER_ROLES = ("trader", "option_seller", "hedged_book", "vault")

Submit = Callable[[dict], object]  # a command in, events or a Rejection out


class PopulationError(AssertionError):
    """The reference population could not be opened on the engine: a bug in the simulator."""


@dataclass(frozen=True)
class Member:
    id: str
    role: str  # trader | option_seller | hedged_book | vault | market_maker | keeper | searcher | backstop
    collateral_usd: float
    instrument: str | None = None  # perp name, or an option's strike and kind (`48000P`)
    size: float = 0.0  # signed, BTC
    collateral_btc: float = 0.0


def draw_population(
    pop: Population,
    keepers: Keepers,
    mev: Mev,
    spot0_usd: float,
    rng: np.random.Generator,
    backstop: Backstop | None = None,
) -> list[Member]:
    """The members, before any venue rule (pure; the same Generator state gives the same list)."""
    traders = _traders(pop, pop.traders, "t", PERP, spot0_usd, rng)
    members = [Member(MARKET_MAKER, "market_maker", round(pop.market_maker_collateral_usd, 2)), *traders]
    sizes = rng.integers(1, pop.option_size_max + 1, pop.option_sellers)
    for j in range(pop.option_sellers):
        strike_kind = _otm(spot0_usd, pop.option_otm_pct, call=j % 2 == 1)
        members.append(Member(f"o{j:02d}", "option_seller", 0.0, strike_kind, -float(sizes[j])))
    if pop.hedged_books:  # drawn last: the other members' draws do not depend on it
        sizes = rng.integers(1, pop.option_size_max + 1, pop.hedged_books)
        for j in range(pop.hedged_books):
            strike_kind = _otm(spot0_usd, pop.hedged_otm_pct, call=j % 2 == 1)
            members.append(Member(f"h{j:02d}", "hedged_book", 0.0, strike_kind, -float(sizes[j])))
    if pop.vault_btc > 0:
        members.append(Member(VAULT, "vault", 0.0, collateral_btc=pop.vault_btc))
    members += [Member(f"k{i}", "keeper", round(keepers.capital_usd, 2)) for i in range(keepers.count)]
    members += [Member(f"s{i}", "searcher", round(mev.capital_usd, 2)) for i in range(mev.searchers)]
    if backstop is not None and backstop.enabled:
        members.append(Member(BACKSTOP, "backstop", round(backstop.capital_usd, 2)))
    return members


def draw_traders(
    pop: Population, underlyings: tuple[Underlying, ...], spot0_usd: dict[str, float], rng: np.random.Generator
) -> list[Member]:
    """The traders of the other underlyings (`t<name><i>`, e.g. `teth000`), drawn as BTC's from
    [population]'s distributions after every BTC member (so BTC's draws do not change)."""
    members = []
    for u in underlyings:
        members += _traders(pop, u.traders, f"t{u.name.lower()}", f"{u.name}-PERP", spot0_usd[u.name], rng)
    return members


def _traders(pop: Population, n: int, prefix: str, perp: str, spot0_usd: float, rng) -> list[Member]:
    """`n` perp traders: long with probability long_fraction, lognormal notional and leverage."""
    is_long = rng.random(n) < pop.long_fraction
    notional = pop.notional_median_usd * np.exp(pop.notional_sigma_log * rng.standard_normal(n))
    leverage = np.clip(
        pop.leverage_median * np.exp(pop.leverage_sigma_log * rng.standard_normal(n)), 1, pop.leverage_max
    )
    members = []
    for i in range(n):
        size = max(round(notional[i] / spot0_usd, 4), 0.001)
        members.append(
            Member(
                f"{prefix}{i:03d}", "trader", round(notional[i] / leverage[i], 2), perp, size if is_long[i] else -size
            )
        )
    return members


def _otm(spot_usd: float, otm_pct: float, call: bool) -> str:
    """Strike and kind of an option `otm_pct` out of the money, the strike rounded to 1,000 USD."""
    strike = spot_usd * (1 + otm_pct / 100) if call else spot_usd * (1 - otm_pct / 100)
    return f"{max(round(strike / 1000) * 1000, 1000)}{'C' if call else 'P'}"


def option_name(strike_kind: str, expiry_s: int) -> str:
    return f"{UNDERLYING}-{format_expiry(datetime.fromtimestamp(expiry_s, UTC))}-{strike_kind[:-1]}-{strike_kind[-1]}"


def option_greeks(strike_kind: str, spot_usd: float, vol: float, years: float) -> tuple[float, float]:
    """Black-76 price (USD, at least a cent) and delta of one option on the index (rate 0)."""
    g = black76(spot_usd, float(strike_kind[:-1]), years, vol, 0.0, strike_kind[-1] == "C")
    price = max(round(float(np.asarray(g.price).ravel()[0]), 2), 0.01)
    return price, float(np.asarray(g.delta).ravel()[0])


def open_population(
    engine: Engine,
    members: list[Member],
    mode: str,
    spot0_usd: float,
    vol0: float,
    expiry_s: int,
    collateral_ratio: float,
    perp_price_usd: dict[str, float] | None = None,
) -> dict[str, list[str]]:
    """Open every member's account and opening trades on the engine (not the vault's calls: the
    runner sells those as they roll); ids by role. Perps trade at `perp_price_usd` (default: BTC's
    at `spot0_usd`)."""
    perp_price_usd = perp_price_usd or {PERP: spot0_usd}
    now = engine.state.now_s or 0
    years = (expiry_s - now) / SECONDS_PER_YEAR
    roles: dict[str, list[str]] = {}
    submit = engine.submit
    for m in members:
        acct_mode = mode if m.role == "trader" else ("portfolio" if mode == "portfolio" else "cross")
        _ok(submit, {"type": "open_account", "account": m.id, "mode": acct_mode})
        if m.collateral_usd > 0:
            _ok(submit, {"type": "deposit", "account": m.id, "amount": f"{m.collateral_usd:.2f}"})
        if m.collateral_btc > 0:
            _ok(submit, {"type": "deposit", "account": m.id, "asset": "BTC", "amount": f"{m.collateral_btc:.4f}"})
        roles.setdefault(m.role, []).append(m.id)
        trades = []
        if m.role == "trader":
            trades.append((m.instrument, m.size, perp_price_usd[m.instrument], 1.01))
        elif m.role in ("option_seller", "hedged_book"):
            price, delta = option_greeks(m.instrument, spot0_usd, vol0, years)
            trades.append((option_name(m.instrument, expiry_s), m.size, price, collateral_ratio))
            hedge = round(-delta * m.size, 4)
            if m.role == "hedged_book" and hedge != 0:
                trades.append((PERP, hedge, spot0_usd, collateral_ratio))
        for instrument, size, price, cover in trades:
            out = open_trade(submit, m.id, instrument, size, price, cover)
            if out is not None:
                raise PopulationError(f"opening trade of {m.id} rejected: {out}")
    return roles


def vault_call(now_s: int, spot_usd: float, vol: float, pop: Population) -> tuple[str, int, float]:
    """The vault's next series: (name, expiry in Unix seconds, Black-76 price), strike `vault_otm_pct`
    above spot, expiring at the first 08:00 UTC (Deribit's expiry time) `vault_roll_days` or more ahead."""
    day = 86_400
    earliest = now_s + pop.vault_roll_days * day
    expiry_s = -(-(earliest - EXPIRY_HOUR_UTC * 3600) // day) * day + EXPIRY_HOUR_UTC * 3600
    strike_kind = _otm(spot_usd, pop.vault_otm_pct, call=True)
    price, _ = option_greeks(strike_kind, spot_usd, vol, (expiry_s - now_s) / SECONDS_PER_YEAR)
    return option_name(strike_kind, expiry_s), expiry_s, price


def open_trade(
    submit: Submit, account: str, instrument: str, size: float, price: float, cover: float
) -> Rejection | None:
    """Trade against the market maker; on insufficient margin deposit what is lacking (times cover)
    and retry. None when done, else the rejection that deposits cannot cure."""
    buyer, seller = (account, MARKET_MAKER) if size > 0 else (MARKET_MAKER, account)
    cmd = {
        "type": "trade",
        "buyer": buyer,
        "seller": seller,
        "instrument": instrument,
        "size": f"{abs(size):.4f}",
        "price": f"{price:.2f}",
    }
    for _ in range(4):
        out = submit(cmd)
        if not isinstance(out, Rejection):
            return None
        if out.code != "insufficient_margin" or out.account != account:
            return out
        lacking = (out.needed or 0) - (out.available or 0)
        needed_usd = max(lacking, 0) * cover / 10 ** (out.decimals or 6) + 1.0
        _ok(submit, {"type": "deposit", "account": account, "amount": f"{needed_usd:.2f}"})
    return out


def _ok(submit: Submit, cmd: dict):
    out = submit(cmd)
    if isinstance(out, Rejection):
        raise PopulationError(f"{cmd['type']} rejected while opening the population: {out}")
    return out

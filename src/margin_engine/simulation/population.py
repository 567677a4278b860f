"""The documented reference population of the stress simulator, drawn from one seeded Generator.

- **Perp traders** (`t000`, ...): long with probability `long_fraction`, else short. Notional is
  lognormal (median `notional_median_usd`, log-sd `notional_sigma_log`), leverage lognormal
  (median `leverage_median`, log-sd `leverage_sigma_log`) clipped to [1, `leverage_max`];
  collateral = notional / leverage. Where the profile's initial margin needs more, the trader
  deposits the shortfall plus 1% (so leverage is capped by the venue, as in reality).
- **Option sellers** (`o00`, ...): alternately a short OTM put (strike `option_otm_pct` below spot)
  and a short OTM call (above), 1..`option_size_max` BTC, expiring `option_expiry_days` after the run,
  with `option_collateral_ratio` times their initial margin (always cross, or portfolio).
- **Market maker** (`mm`): cross, `market_maker_collateral_usd`; takes the other side of every
  opening trade and of the keepers' unwinds (it stands for the outside book).
- **Keepers** (`k0`, ...): cross, `capital_usd` each; the liquidators.

All USD amounts are rounded to cents and sizes to 1e-4 BTC, so the engine's decimal inputs are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from margin_engine.engine import Engine, Rejection
from margin_engine.instruments.names import format_expiry
from margin_engine.pricing.black76 import black76
from margin_engine.simulation.scenario import Keepers, Population

UNDERLYING = "BTC"
PERP = "BTC-PERP"
MARKET_MAKER = "mm"
SECONDS_PER_YEAR = 365 * 86_400


class PopulationError(AssertionError):
    """The reference population could not be opened on the engine: a bug in the simulator."""


@dataclass(frozen=True)
class Member:
    id: str
    role: str  # trader | option_seller | market_maker | keeper
    collateral_usd: float
    instrument: str | None = None
    size: float = 0.0  # signed, BTC
    price_usd: float = 0.0


def draw_population(pop: Population, keepers: Keepers, spot0_usd: float, rng: np.random.Generator) -> list[Member]:
    """The members, before any venue rule (pure; the same Generator state gives the same list)."""
    n = pop.traders
    is_long = rng.random(n) < pop.long_fraction
    notional = pop.notional_median_usd * np.exp(pop.notional_sigma_log * rng.standard_normal(n))
    leverage = np.clip(
        pop.leverage_median * np.exp(pop.leverage_sigma_log * rng.standard_normal(n)), 1, pop.leverage_max
    )
    members = [Member(MARKET_MAKER, "market_maker", round(pop.market_maker_collateral_usd, 2))]
    for i in range(n):
        size = max(round(notional[i] / spot0_usd, 4), 0.001)
        members.append(
            Member(f"t{i:03d}", "trader", round(notional[i] / leverage[i], 2), PERP, size if is_long[i] else -size)
        )
    sizes = rng.integers(1, pop.option_size_max + 1, pop.option_sellers)
    for j in range(pop.option_sellers):
        call = j % 2 == 1
        strike = spot0_usd * (1 + pop.option_otm_pct / 100) if call else spot0_usd * (1 - pop.option_otm_pct / 100)
        strike = max(round(strike / 1000) * 1000, 1000)
        members.append(Member(f"o{j:02d}", "option_seller", 0.0, f"{strike}{'C' if call else 'P'}", -float(sizes[j])))
    members += [Member(f"k{i}", "keeper", round(keepers.capital_usd, 2)) for i in range(keepers.count)]
    return members


def option_name(strike_kind: str, expiry_s: int) -> str:
    return f"{UNDERLYING}-{format_expiry(datetime.fromtimestamp(expiry_s, UTC))}-{strike_kind[:-1]}-{strike_kind[-1]}"


def open_population(
    engine: Engine,
    members: list[Member],
    mode: str,
    spot0_usd: float,
    vol0: float,
    expiry_s: int,
    collateral_ratio: float,
) -> dict[str, list[str]]:
    """Open every member's account and opening trade on the engine; ids by role."""
    now = engine.state.now_s or 0
    roles: dict[str, list[str]] = {}
    for m in members:
        acct_mode = mode if m.role == "trader" else ("portfolio" if mode == "portfolio" else "cross")
        _ok(engine, {"type": "open_account", "account": m.id, "mode": acct_mode})
        if m.collateral_usd > 0:
            _ok(engine, {"type": "deposit", "account": m.id, "amount": f"{m.collateral_usd:.2f}"})
        roles.setdefault(m.role, []).append(m.id)
        if m.role == "trader":
            _open_trade(engine, m.id, PERP, m.size, spot0_usd, 1.01)
        elif m.role == "option_seller":
            name = option_name(m.instrument, expiry_s)
            strike = float(m.instrument[:-1])
            g = black76(spot0_usd, strike, (expiry_s - now) / SECONDS_PER_YEAR, vol0, 0.0, m.instrument[-1] == "C")
            price = max(round(float(np.asarray(g.price).ravel()[0]), 2), 0.01)
            _open_trade(engine, m.id, name, m.size, price, collateral_ratio)
    return roles


def _open_trade(engine: Engine, account: str, instrument: str, size: float, price: float, cover: float) -> None:
    """Trade against the market maker; on insufficient margin deposit what is lacking (times cover) and retry."""
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
        out = engine.submit(cmd)
        if not isinstance(out, Rejection):
            return
        if out.code != "insufficient_margin" or out.account != account:
            raise PopulationError(f"opening trade of {account} rejected: {out}")
        lacking = (out.needed or 0) - (out.available or 0)
        needed_usd = max(lacking, 0) * cover / 10 ** (out.decimals or 6) + 1.0
        _ok(engine, {"type": "deposit", "account": account, "amount": f"{needed_usd:.2f}"})
    raise PopulationError(f"opening trade of {account} still rejected after deposits")


def _ok(engine: Engine, cmd: dict) -> list:
    out = engine.submit(cmd)
    if isinstance(out, Rejection):
        raise PopulationError(f"{cmd['type']} rejected while opening the population: {out}")
    return out

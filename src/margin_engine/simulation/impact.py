"""Market depth for forced selling: what a liquidation fills at, and where it leaves the mid.

Two venue models, one interface (`fill(size_signed_base, mid) -> (avg_price, new_mid)`):
- `DepthBook`: resting orders on each side of the mid; within a distance x (fraction of mid) the
  side holds depth_usd_per_pct * (x / 1%)^depth_exponent of notional, valued at the mid. A trade
  walks the book to x*; it fills at the quantity-weighted average of the levels it took, and a
  share `permanent_fraction` of x* stays in the mid (Almgren & Chriss 2000: temporary impact is
  the fill's slippage, permanent impact the lasting move). Exponent 1 is their linear model;
  exponent 2 is the square-root law (impact ~ sqrt(size); Almgren, Thum, Hauptmann & Li 2005,
  Toth et al. 2011).
- `ConstantProductPool`: a Uniswap v2 pool x * y = k (Adams, Zinsmeister & Robinson 2020).

The moved mid is what the oracle then reports; `recover_mid` lets it relax back to the fundamental
path with a half-life (transient impact with exponential resilience, Obizhaeva & Wang 2013). All
functions are pure and vectorized over arrays of sizes and mids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from margin_engine.simulation._checks import (
    float_array,
    fraction,
    non_negative_array,
    positive,
    positive_array,
    same_shape,
)
from margin_engine.simulation.errors import BookExhaustedError, SimulationInputError

Side = Literal["buy", "sell"]
PCT = 0.01


class Venue(Protocol):
    def fill(self, size_signed_base: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Average fill price and the mid after a trade of `size_signed_base` (> 0 buys, < 0 sells)."""
        ...


@dataclass(frozen=True)
class DepthBook:
    depth_usd_per_pct: float  # notional resting within 1% of the mid on each side
    permanent_fraction: float  # share of the distance walked that stays in the mid after the trade
    depth_exponent: float = 1.0  # 1: linear impact (Almgren-Chriss); 2: square-root impact

    def __post_init__(self) -> None:
        positive(self.depth_usd_per_pct, "depth_usd_per_pct")
        fraction(self.permanent_fraction, "permanent_fraction")
        positive(self.depth_exponent, "depth_exponent")

    def fill(self, size_signed_base: np.ndarray, mid: np.ndarray, consumed_usd=0.0) -> tuple[np.ndarray, np.ndarray]:
        """Walk to x* = 1% * (|size| * mid / depth)^(1/exponent). With depth growing as x^g, the
        quantity-weighted average distance of the fill is g / (g + 1) * x* (x*/2 for a linear book).

        `consumed_usd`: notional already taken from this side and not yet refilled (finite
        resilience): the trade starts where that left off, walking the book from N1 = consumed to
        N2 = consumed + |size| * mid, at the average distance of x(N) = 1% (N / depth)^(1/g) over
        [N1, N2]: g / (g + 1) (x(N2) N2 - x(N1) N1) / (N2 - N1); the mid moves
        by the permanent share of x(N2) - x(N1)."""
        g = self.depth_exponent
        n1 = np.broadcast_to(np.asarray(consumed_usd, dtype=float), np.shape(size_signed_base))
        n2 = n1 + np.abs(size_signed_base) * mid
        reach, start = (PCT * (n / self.depth_usd_per_pct) ** (1.0 / g) for n in (n2, n1))
        selling = size_signed_base < 0
        if np.any(selling & (reach >= 1.0)):
            worst = float(np.max(np.abs(size_signed_base[selling & (reach >= 1.0)])))
            raise BookExhaustedError("size_base", f"a sale of {worst} walks the book to a price of zero or below")
        spread = np.where(n2 > n1, n2 - n1, 1.0)
        avg_walk = np.where(n2 > n1, (reach * n2 - start * n1) / spread * (g / (g + 1.0)), 0.0)
        sign = np.sign(size_signed_base)
        avg_price = mid * (1.0 + sign * avg_walk)
        new_mid = mid * (1.0 + sign * self.permanent_fraction * (reach - start))
        return avg_price, new_mid

    def fill_one(
        self, size_signed_base: float, mid: float, consumed_usd: float = 0.0, depth_usd_per_pct: float | None = None
    ) -> tuple[float, float]:
        """`fill` of one trade in plain floats (what a liquidator's quote loop asks thousands of
        times a run), optionally at another depth than the book's; the same walk, to the last bit."""
        g, depth = self.depth_exponent, self.depth_usd_per_pct if depth_usd_per_pct is None else depth_usd_per_pct
        n1 = float(consumed_usd)
        n2 = n1 + abs(size_signed_base) * mid
        # the power on an array, as `fill` takes it: numpy's vectorized pow and libm's differ in the
        # last bit at times, and a tiny trade deep in the book divides that bit by its own size
        walked = PCT * np.power(np.array((n2 / depth, n1 / depth)), 1.0 / g)
        reach, start = float(walked[0]), float(walked[1])
        if size_signed_base < 0 and reach >= 1.0:
            worst = abs(size_signed_base)
            raise BookExhaustedError("size_base", f"a sale of {worst} walks the book to a price of zero or below")
        avg_walk = (reach * n2 - start * n1) / (n2 - n1) * (g / (g + 1.0)) if n2 > n1 else 0.0
        sign = (size_signed_base > 0) - (size_signed_base < 0)
        return mid * (1.0 + sign * avg_walk), mid * (1.0 + sign * self.permanent_fraction * (reach - start))


@dataclass(frozen=True)
class ConstantProductPool:
    """Reserves x (base) and y (quote) with x * y = liquidity^2 and mid y / x, so at a mid p the pool
    holds x = L / sqrt(p) and y = L * sqrt(p): the mid alone is its state. The fee is taken from the
    input as in Uniswap v2 but paid out instead of added to the reserves, so the pool stays on its
    curve (v2 compounds it; the difference over one crash is the fee on the volume)."""

    liquidity: float  # L = sqrt(k), in sqrt(base * quote)
    fee_fraction: float = 0.003  # Uniswap v2: 0.3% of the input amount

    def __post_init__(self) -> None:
        positive(self.liquidity, "liquidity")
        if not 0 <= self.fee_fraction < 1:
            raise SimulationInputError("fee_fraction", f"must be in [0, 1), got {self.fee_fraction}")

    def reserves(self, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        root = np.sqrt(mid)
        return self.liquidity / root, self.liquidity * root

    def fill(self, size_signed_base: np.ndarray, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sell d base: the pool takes d (1 - fee) into x and pays out y d (1 - fee) / (x + d (1 - fee))
        (v2 getAmountOut). Buy d base: it pays out d and takes y d / (x - d) of quote after the fee."""
        x, y = self.reserves(mid)
        size = np.abs(size_signed_base)
        keep = 1.0 - self.fee_fraction
        buying = size_signed_base > 0
        if np.any(buying & (size >= x)):
            raise BookExhaustedError("size_base", "a buy of the pool's whole base reserve or more cannot fill")
        x_after = np.where(buying, x - size, x + size * keep)
        y_after = self.liquidity**2 / x_after  # on the curve: the fee has left the pool
        avg_price = np.where(buying, y / ((x - size) * keep), y * keep / (x + size * keep))
        return avg_price, y_after / x_after


def execute(side: Side, size_base, mid, book: Venue) -> tuple[np.ndarray, np.ndarray]:
    """Fill a market order of `size_base` (>= 0) at `mid` on `book`: (average price, mid after).
    Arrays broadcast, one trade per element; a zero size leaves the mid where it is."""
    if side not in ("buy", "sell"):
        raise SimulationInputError("side", f"must be 'buy' or 'sell', got {side!r}")
    size = non_negative_array(size_base, "size_base", ndim_min=0)
    price = positive_array(mid, "mid", ndim_min=0)
    size, price = np.broadcast_arrays(size, price)
    return book.fill(size if side == "buy" else -size, price)


def recover_mid(mid, fundamental, fundamental_next, dt_s: float, resilience_half_life_s: float) -> np.ndarray:
    """The mid dt_s later: its log gap to the fundamental path halves every `resilience_half_life_s`
    (infinity: impact is permanent) while the fundamental moves from `fundamental` to `fundamental_next`."""
    keep = 2.0 ** (-positive(dt_s, "dt_s") / _half_life(resilience_half_life_s))
    gap = positive_array(mid, "mid", ndim_min=0) / positive_array(fundamental, "fundamental", ndim_min=0)
    return positive_array(fundamental_next, "fundamental_next", ndim_min=0) * gap**keep


@dataclass(frozen=True)
class ImpactedPath:
    mid: np.ndarray  # after the trades of each step: what the oracle reports
    avg_price: np.ndarray  # average fill of each step's trade


def impacted_path(fundamental, net_buy_base, book: Venue, dt_s: float, resilience_half_life_s: float) -> ImpactedPath:
    """Replays a schedule of net trades (> 0 buys, < 0 sells; shape (n_paths, n_steps + 1), like the
    fundamental path) against the venue: at each step the mid first recovers towards the fundamental,
    then the step's trade fills and moves it. The vectorized twin of the simulator's loop."""
    base = positive_array(fundamental, "fundamental", ndim_min=2)
    trades = float_array(net_buy_base, "net_buy_base", ndim_min=2)
    same_shape(trades, "net_buy_base", base.shape, "fundamental")
    positive(dt_s, "dt_s")
    _half_life(resilience_half_life_s)
    mid = np.empty_like(base)
    avg_price = np.empty_like(base)
    before = base[:, 0]
    for k in range(base.shape[1]):  # each step starts from where the last trade left the mid
        if k:
            before = recover_mid(mid[:, k - 1], base[:, k - 1], base[:, k], dt_s, resilience_half_life_s)
        avg_price[:, k], mid[:, k] = book.fill(trades[:, k], before)
    return ImpactedPath(mid, avg_price)


def _half_life(value: float) -> float:
    if value != np.inf:
        positive(value, "resilience_half_life_s")
    return float(value)

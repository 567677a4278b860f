"""Vectorized Black-76 prices and Greeks for options on a crypto index.

The margin engine revalues whole books at once, so every function here takes
numpy arrays and evaluates them with numpy ufuncs, never option by option.

Formula sources:
  * F. Black, "The pricing of commodity contracts", J. Financial Economics 3 (1976).
  * J. Hull, "Options, Futures and Other Derivatives", chapters on Black-Scholes-Merton
    and on Black's model for futures options.
  * E. G. Haug, "The Complete Guide to Option Pricing Formulas", 2nd ed., section 1.1.

Conventions (relied on by the margin code):
  * ``forward`` is F = S * exp(r T), where S is the index; Greeks are taken
    with respect to S, so they match Black-Scholes with zero dividend yield.
  * delta = dV/dS (units of underlying), gamma = d2V/dS2 per 1 USD of S,
    vega = dV/dsigma * 0.01 (per volatility point),
    theta = -dV/dT / 365 holding S fixed (per calendar day).
  * When T == 0 or vol == 0 the option is worth its discounted intrinsic value;
    delta is 0 or +-1 (at the money counts as out of the money), gamma and vega
    are 0, and theta is the carry of that intrinsic value,
    -r K exp(-r T) / 365 for an in-the-money call (+ for a put), which is the
    limit of the general formula as vol -> 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

SECONDS_PER_YEAR = 365 * 86400
DAYS_PER_YEAR = 365.0
_BLOCK = 1 << 15  # options per block: its ~20 float64 temporaries (256 KiB each) stay in cache
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)

# One rule per numeric input (price is for the implied-vol solver):
# (description used in messages, predicate on the array).
_RULES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "forward": ("finite and > 0", lambda a: np.isfinite(a) & (a > 0)),
    "strike": ("finite and > 0", lambda a: np.isfinite(a) & (a > 0)),
    "time_years": ("finite and >= 0", lambda a: np.isfinite(a) & (a >= 0)),
    "vol": ("finite and >= 0", lambda a: np.isfinite(a) & (a >= 0)),
    "rate": ("finite", np.isfinite),
    "price": ("finite and >= 0", lambda a: np.isfinite(a) & (a >= 0)),
}


class PricingInputError(ValueError):
    """Raised for inputs the pricer must not silently turn into NaN."""


@dataclass(frozen=True)
class Greeks:
    """Price and first-order risk of each option, per one unit of underlying, in USD."""

    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray


def year_fraction(seconds):
    """Convert seconds to expiry into the ACT/365 year fraction the pricer expects."""
    return np.asarray(seconds, dtype=np.float64) / SECONDS_PER_YEAR


def _as_float(name: str, values) -> np.ndarray:
    """float64 view of ``values``; anything unconvertible is an input error, not a TypeError."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PricingInputError(f"{name} must be numeric: {exc}") from None


def _invalid(name: str, arr: np.ndarray) -> np.ndarray:
    """Mask of elements breaking the rule for ``name``; shared with the implied-vol solver."""
    return ~_RULES[name][1](arr)


def _requirement(name: str) -> str:
    """The rule for ``name`` as an error message, e.g. "vol must be finite and >= 0"."""
    return f"{name} must be {_RULES[name][0]}"


def _checked(name: str, values) -> np.ndarray:
    """Return ``values`` as float64, raising PricingInputError naming the first bad element."""
    arr = _as_float(name, values)
    bad = _invalid(name, arr)
    if bad.any():
        flat = int(np.flatnonzero(bad)[0])
        where = "" if arr.ndim == 0 else f" at index {_index(flat, arr.shape)}"
        raise PricingInputError(f"{_requirement(name)}, got {float(arr.flat[flat])!r}{where}")
    return arr


def _index(flat: int, shape: tuple[int, ...]):
    """Report a position the way the caller indexes the array (int for 1-D, tuple otherwise)."""
    return flat if len(shape) == 1 else tuple(int(i) for i in np.unravel_index(flat, shape))


def _checked_flag(is_call) -> np.ndarray:
    """Require a real boolean array: strings such as 'p' or ints would be silently truthy."""
    arr = np.asarray(is_call)
    if arr.dtype != np.bool_:
        raise PricingInputError(f"is_call must be a boolean array, got dtype {arr.dtype}")
    return arr


def _broadcast(*arrays: np.ndarray) -> list[np.ndarray]:
    """np.broadcast_arrays, with shape mismatches reported as PricingInputError."""
    try:
        return list(np.broadcast_arrays(*arrays))
    except ValueError as exc:
        raise PricingInputError(f"inputs do not broadcast together: {exc}") from None


def black76(forward, strike, time_years, vol, rate, is_call) -> Greeks:
    """Price and Greeks of European options on a forward (Black 1976), vectorized.

    All arguments broadcast against each other; ``is_call`` is a boolean array.
    See the module docstring for the exact Greek conventions.

    Books are evaluated in blocks of ``_BLOCK`` options by numpy's buffered
    iterator: the ~20 temporaries of a block stay in cache and are reused, so a
    million-option book neither streams them through main memory nor allocates
    gigabytes of scratch space.
    """
    inputs = [
        _checked("forward", forward),
        _checked("strike", strike),
        _checked("time_years", time_years),
        _checked("vol", vol),
        _checked("rate", rate),
        _checked_flag(is_call),
    ]
    _broadcast(*inputs)  # fail with PricingInputError, not nditer's message
    block_iter = np.nditer(
        inputs + [None] * 5,
        flags=["external_loop", "buffered", "zerosize_ok"],
        op_flags=[["readonly"]] * 6 + [["writeonly", "allocate"]] * 5,  # type: ignore[arg-type]  # numpy stubs: Literal
        op_dtypes=[np.float64] * 5 + [np.bool_] + [np.float64] * 5,
        buffersize=_BLOCK,
    )
    with block_iter:
        for block in block_iter:
            _black76_block(*block)
        return Greeks(*block_iter.operands[6:])


def _black76_block(f, k, t, v, r, call, price, delta, gamma, vega, theta):
    """Fill one block of outputs in a single pass of ufuncs, computing each exp/sqrt/pdf once."""
    # omega = +1 for calls, -1 for puts: Haug's generalized form
    # V = omega * exp(-rT) * [F N(omega d1) - K N(omega d2)] avoids put-call-parity cancellation.
    omega = call * 2.0 - 1.0
    discount = np.exp(-r * t)
    spot = f * discount
    sqrt_t = np.sqrt(t)
    std_dev = v * sqrt_t
    degenerate = std_dev == 0
    any_degenerate = bool(degenerate.any())
    if any_degenerate:
        # Placeholder 1.0 keeps these lanes finite until they are replaced below.
        std_dev = std_dev + degenerate

    d1 = np.log(f / k) / std_dev + 0.5 * std_dev
    d2 = d1 - std_dev
    n1 = ndtr(omega * d1)
    n2 = ndtr(omega * d2)
    pdf = np.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    if any_degenerate:
        # vol -> 0 limit: N(omega d1) = N(omega d2) = 1 in the money, else 0, and pdf = 0,
        # so the formulas below give the discounted intrinsic value and its carry.
        in_the_money = omega * (f - k) > 0
        n1 = np.where(degenerate, in_the_money, n1)
        n2 = np.where(degenerate, in_the_money, n2)
        pdf = np.where(degenerate, 0.0, pdf)

    # Hull's Black-Scholes-Merton Greeks with S = F exp(-rT) and no dividend yield:
    # gamma = n(d1) / (S sigma sqrt(T)), vega = S sqrt(T) n(d1),
    # theta = -S n(d1) sigma / (2 sqrt(T)) - omega r K exp(-rT) N(omega d2)  (per year).
    np.multiply(omega, n1, out=delta)
    strike_leg = omega * (k * discount) * n2  # omega K exp(-rT) N(omega d2), shared by price and theta
    np.subtract(spot * delta, strike_leg, out=price)
    pdf_over_std = pdf / std_dev
    np.divide(pdf_over_std, spot, out=gamma)
    np.multiply(spot * pdf * sqrt_t, 0.01, out=vega)
    np.divide(-0.5 * v * v * spot * pdf_over_std - r * strike_leg, DAYS_PER_YEAR, out=theta)

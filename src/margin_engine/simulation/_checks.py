"""Argument checks shared by the simulation modules: each failure names its field."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from margin_engine.simulation.errors import SimulationInputError


def finite(value: float, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise SimulationInputError(field, f"must be a finite number, got {value!r}")
    return float(value)


def positive(value: float, field: str) -> float:
    if finite(value, field) <= 0:
        raise SimulationInputError(field, f"must be > 0, got {value!r}")
    return float(value)


def non_negative(value: float, field: str) -> float:
    if finite(value, field) < 0:
        raise SimulationInputError(field, f"must be >= 0, got {value!r}")
    return float(value)


def fraction(value: float, field: str) -> float:
    if not 0 <= finite(value, field) <= 1:
        raise SimulationInputError(field, f"must be in [0, 1], got {value!r}")
    return float(value)


def count(value: int, field: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise SimulationInputError(field, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def float_array(values, field: str, ndim_min: int = 1) -> np.ndarray:
    """A float64 copy-free view with at least `ndim_min` axes and only finite entries."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise SimulationInputError(field, "must be an array of numbers") from None
    if array.ndim < ndim_min:
        raise SimulationInputError(field, f"must have at least {ndim_min} axis(es), got shape {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise SimulationInputError(field, f"{int(bad.sum())} entries are not finite, first at {_first(bad)}")
    return array


def positive_array(values, field: str, ndim_min: int = 1) -> np.ndarray:
    array = float_array(values, field, ndim_min)
    bad = array <= 0
    if bad.any():
        raise SimulationInputError(field, f"{int(bad.sum())} entries are <= 0, first at {_first(bad)}")
    return array


def non_negative_array(values, field: str, ndim_min: int = 1) -> np.ndarray:
    array = float_array(values, field, ndim_min)
    bad = array < 0
    if bad.any():
        raise SimulationInputError(field, f"{int(bad.sum())} entries are < 0, first at {_first(bad)}")
    return array


def same_shape(array: np.ndarray, field: str, shape: tuple[int, ...], other: str) -> None:
    if array.shape != shape:
        raise SimulationInputError(field, f"shape {array.shape} must equal the shape of {other}, {shape}")


def _first(mask: np.ndarray) -> tuple[int, ...] | int:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return index[0] if len(index) == 1 else index

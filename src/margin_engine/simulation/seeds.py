"""Per-path random streams derived from one master seed, so a run does not depend on how it is split.

Path i always draws from child i of `SeedSequence(master_seed).spawn(n)` (NumPy's recommended way to
derive independent streams: NEP 19, "Parallel random number generation" in the NumPy docs). A
child depends only on the master seed and its index, so running paths on 1 or 16 workers, in any
order, gives the same numbers bit for bit. A path that needs several streams (prices, agents) can
`spawn` its own children from `path_rngs(...)[k].bit_generator.seed_seq`.
"""

from __future__ import annotations

import numpy as np

from margin_engine.simulation._checks import count
from margin_engine.simulation.errors import SimulationInputError


def path_rngs(master_seed: int, paths: range) -> list[np.random.Generator]:
    """One PCG64 generator per path index in `paths` (a contiguous range, step 1)."""
    count(master_seed, "master_seed", minimum=0)
    if not isinstance(paths, range) or paths.step != 1 or paths.start < 0 or len(paths) == 0:
        raise SimulationInputError("paths", f"must be a non-empty range(start, stop) with start >= 0, got {paths!r}")
    children = np.random.SeedSequence(master_seed).spawn(paths.stop)[paths.start :]
    return [np.random.Generator(np.random.PCG64(child)) for child in children]


def chunk_paths(n_paths: int, n_workers: int) -> list[range]:
    """Contiguous, non-empty ranges covering 0..n_paths, sizes differing by at most one."""
    count(n_paths, "n_paths")
    count(n_workers, "n_workers")
    n_chunks = min(n_paths, n_workers)
    bounds = [n_paths * k // n_chunks for k in range(n_chunks + 1)]
    return [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

"""Paths x variants in parallel: local processes (default) or a Dask cluster; the same results
whatever the number of workers, since each path draws only from its own seed (`seeds.path_rngs`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from margin_engine.errors import InputError
from margin_engine.simulation.runner import PathResult, run_path
from margin_engine.simulation.scenario import Scenario

Progress = Callable[[PathResult], None]


def tasks(scenario: Scenario) -> list[tuple[int, int]]:
    """(variant index, path) pairs, variant-major."""
    return [(v, p) for v in range(len(scenario.all_variants())) for p in range(scenario.paths)]


def _run_task(scenario: Scenario, task: tuple[int, int]) -> PathResult:
    variant_index, path = task
    return run_path(scenario, scenario.all_variants()[variant_index], path)


def run_sweep(
    scenario: Scenario, workers: int = 1, dask_address: str | None = None, progress: Progress | None = None
) -> list[PathResult]:
    """Every (variant, path) of the scenario, sorted by (variant order, path)."""
    if workers < 1:
        raise InputError("--workers", f"must be >= 1, got {workers}")
    todo = tasks(scenario)
    if dask_address is not None:
        results = _run_dask(scenario, todo, dask_address, progress)
    elif workers == 1 or len(todo) == 1:
        results = []
        for task in todo:
            results.append(_run_task(scenario, task))
            if progress:
                progress(results[-1])
    else:
        results = _run_processes(scenario, todo, workers, progress)
    order = {v.name: i for i, v in enumerate(scenario.all_variants())}
    return sorted(results, key=lambda r: (order[r.variant], r.path))


def _run_processes(scenario: Scenario, todo, workers: int, progress: Progress | None) -> list[PathResult]:
    results = []
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        for result in pool.map(_run_task, [scenario] * len(todo), todo):
            results.append(result)
            if progress:
                progress(result)
    return results


def _run_dask(scenario: Scenario, todo, address: str, progress: Progress | None) -> list[PathResult]:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise InputError("--dask", "dask.distributed is not installed (pip install 'dask[distributed]')") from None
    try:
        client = Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError("--dask", f"cannot connect to the Dask scheduler at {address!r}: {exc}") from None
    with client:
        futures = client.map(_run_task, [scenario] * len(todo), todo, pure=False)
        results = []
        for future in as_completed(futures):
            results.append(future.result())
            if progress:
                progress(results[-1])
    return results

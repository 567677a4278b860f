"""Per-path seeds: the numbers do not depend on how many workers run the paths, or in which order."""

import numpy as np
import pytest

from margin_engine.simulation.errors import SimulationInputError
from margin_engine.simulation.paths import GarchParams, JumpParams, garch_t_paths, gbm_paths, merton_paths
from margin_engine.simulation.seeds import chunk_paths, path_rngs

MASTER_SEED = 20240805
N_PATHS = 10

MODELS = {
    "gbm": lambda rngs: gbm_paths(60_000.0, 0.7, 0.0, 24, 3600, len(rngs), rngs),
    "merton": lambda rngs: merton_paths(60_000.0, 0.7, 0.0, JumpParams(30.0, -0.05, 0.08), 24, 3600, len(rngs), rngs),
    "garch": lambda rngs: garch_t_paths(60_000.0, GarchParams(1e-5, 0.1, 0.85, 4.0), 24, 3600, len(rngs), rngs),
}


def run_on_workers(simulate, n_workers, reverse=False):
    """Each worker gets a contiguous chunk of path indices and builds only those paths' generators."""
    chunks = chunk_paths(N_PATHS, n_workers)
    results = {}
    for chunk in reversed(chunks) if reverse else chunks:
        results[chunk.start] = simulate(path_rngs(MASTER_SEED, chunk))
    return np.concatenate([results[start] for start in sorted(results)])


@pytest.mark.parametrize("model", sorted(MODELS))
def test_split_across_1_2_or_3_workers_gives_identical_paths(model):
    simulate = MODELS[model]
    single = run_on_workers(simulate, 1)
    assert single.shape == (N_PATHS, 25)
    for n_workers in (2, 3):
        assert np.array_equal(run_on_workers(simulate, n_workers), single)
        assert np.array_equal(run_on_workers(simulate, n_workers, reverse=True), single)


def test_a_path_depends_on_its_index_only():
    # path 7 alone equals row 7 of the whole run, and differs from path 6
    whole = MODELS["gbm"](path_rngs(MASTER_SEED, range(N_PATHS)))
    alone = MODELS["gbm"](path_rngs(MASTER_SEED, range(7, 8)))
    assert np.array_equal(alone[0], whole[7])
    assert not np.array_equal(whole[6], whole[7])


def test_path_generators_are_the_spawned_children():
    spawned = np.random.SeedSequence(MASTER_SEED).spawn(5)
    ours = path_rngs(MASTER_SEED, range(2, 5))
    for child, generator in zip(spawned[2:], ours, strict=True):
        assert generator.bit_generator.seed_seq.spawn_key == child.spawn_key
        assert np.array_equal(generator.random(4), np.random.default_rng(child).random(4))


def test_chunks_cover_all_paths_once():
    assert chunk_paths(10, 3) == [range(0, 3), range(3, 6), range(6, 10)]
    assert chunk_paths(2, 5) == [range(0, 1), range(1, 2)]  # never an empty chunk
    assert chunk_paths(7, 1) == [range(0, 7)]


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: path_rngs(-1, range(3)), "master_seed"),
        (lambda: path_rngs(1, range(3, 3)), "paths"),
        (lambda: path_rngs(1, range(0, 6, 2)), "paths"),
        (lambda: chunk_paths(10, 0), "n_workers"),
    ],
)
def test_bad_arguments_are_named(call, field):
    with pytest.raises(SimulationInputError) as err:
        call()
    assert err.value.field == field

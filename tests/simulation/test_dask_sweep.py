"""Sweeps on a Dask cluster give the same summary.json, byte for byte, as a local run."""

import pytest

from margin_engine.errors import InputError
from margin_engine.simulation.report import write_report
from margin_engine.simulation.scenario import parse_scenario
from margin_engine.simulation.sweep import run_sweep

distributed = pytest.importorskip("distributed")

SMALL = {
    "name": "small",
    "seed": 11,
    "paths": 2,
    "steps": 4,
    "price": {"kind": "merton", "vol_annual": 1.0, "shock_step": 2, "shock_pct": -10},
    "population": {"traders": 12, "option_sellers": 1},
    "keepers": {"count": 2, "latency_s": 10},
    "variants": [{"name": "fixed"}, {"name": "dutch", "mechanism": "dutch"}],
}


def test_dask_cluster_gives_the_local_summary(tmp_path):
    sc = parse_scenario(SMALL)
    local = run_sweep(sc, workers=1)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        remote = run_sweep(sc, dask_address=cluster.scheduler_address)
    write_report(tmp_path / "local", sc, local)
    write_report(tmp_path / "dask", sc, remote)
    assert (tmp_path / "local" / "summary.json").read_bytes() == (tmp_path / "dask" / "summary.json").read_bytes()


def test_unreachable_scheduler_is_bad_input():
    with pytest.raises(InputError) as info:
        run_sweep(parse_scenario(SMALL), dask_address="tcp://127.0.0.1:9")
    assert info.value.field == "--dask"

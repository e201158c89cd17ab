"""A Dask LocalCluster of 2 worker processes started for the campaign tests (never a fixed port), and tiny
scenario and campaign files: 2 hours of SimBench 1-LV-rural3 at 15 min without market (about a second each)."""

from pathlib import Path

import pytest
import yaml

TINY = {
    "schema_version": 1,
    "name": "tiny",
    "seed": 1,
    "time": {"start": "2016-07-24T08:00:00", "duration_h": 2, "resolution_s": 900},
    "grid": {"network": "simbench:1-LV-rural3--0-sw", "engine": "pandapower"},
    "fleet": {"from_grid_loads": True, "pv": {"share": 0.4, "kwp": {"min": 4, "max": 12}, "profiles": ["PV1", "PV3"]}},
    "outputs": {"timeseries": False},
}


def campaign_data(inputs: dict, **spec) -> dict:
    return {
        "schema_version": 1,
        "name": "t",
        "test_case": {
            "purpose": "test the campaign machinery",
            "system_under_test": "rural feeder",
            "functions_under_investigation": ["voltage"],
            "domain_under_investigation": ["electric power"],
            "target_metrics": [{"kpi": "v_max_pu", "unit": "pu", "max": 1.1},
                               {"kpi": "grid_export_kwh", "unit": "kWh"}],
        },
        "test_specification": {"test_system": "1-LV-rural3", "base": {"scenario": "tiny.yaml"}, "inputs": inputs}
        | spec,
    }


@pytest.fixture
def write_campaign(tmp_path: Path):
    def write(inputs: dict, name: str = "campaign.yaml", **spec) -> Path:
        (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
        path = tmp_path / name
        path.write_text(yaml.safe_dump(campaign_data(inputs, **spec), sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 single-thread worker processes, both able to reach the lab's device (resource label
    ``hil``); the scheduler gives up on a task at its first lost worker, as the campaign's own LocalCluster does."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
        c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                         scheduler_kwargs={"dashboard_address": ":0"}, scheduler_port=0, resources={"hil": 1})
    yield c
    c.close()

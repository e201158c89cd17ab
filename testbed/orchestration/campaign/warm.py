"""What the local cluster's workers import before their first experiment: the run API and the simulators a
run starts (pandapower, lightsim2grid, mosaik, pandas). The local cluster forks its workers from one
forkserver process that imported these once, while the campaign's experiments were being validated, instead
of each worker importing them in its first experiment (about 2 s each on the development machine)."""

MODULES = (
    "distributed",
    "testbed.orchestration.api",
    "testbed.orchestration.service_test",
    "testbed.orchestration.campaign.experiment",
    "testbed.domain.kpis",
    "simulators.grid.mosaik_sim",
    "simulators.grid.pandapower_engine",
    "simulators.prosumers.mosaik_sim",
    "simulators.recorder.mosaik_sim",
)

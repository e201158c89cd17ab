"""The fleet part: every prosumer's load, PV, battery and EV, as one mosaik entity feeding the grid."""

from __future__ import annotations

from simulators.prosumers.setup import build_fleet_setup
from testbed.orchestration.world import Part, WorldBuilder

FLEET_SERIES = ("p_kw", "load_kw", "pv_kw", "ev_kw", "battery_kw", "soc", "ev_soc")


class FleetPart(Part):
    """Provides ``"fleet"`` and the prosumer order of its array outputs; needs ``"grid"``."""

    name = "fleet"

    def build(self, builder: WorldBuilder) -> None:
        plan = builder.plan
        setup = build_fleet_setup(plan.prosumers, plan.profiles, plan.scenario.time)
        fleet = builder.start(
            "Prosumers", "simulators.prosumers.mosaik_sim:FleetSimulator",
            setup=setup, grid_bus_ids=builder.network["bus_ids"],
        ).Fleet()
        builder.prosumer_ids = setup.ids
        builder.provide("fleet", fleet)
        builder.connect(fleet, builder.entity("grid"), "bus_p_kw", "bus_q_kvar")
        builder.record(fleet, FLEET_SERIES, series={attr: list(setup.ids) for attr in FLEET_SERIES})

"""The grid part: the power-flow simulator (pandapower or OpenDSS) of every run, and its criteria."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testbed.domain.verdict import Criterion, grid_criteria
from testbed.orchestration.world import Part, WorldBuilder

GRID_SERIES = ("vm_pu", "line_loading_pct", "trafo_loading_pct", "losses_kw", "ext_grid_p_kw", "ext_grid_q_kvar",
               "converged")


class GridPart(Part):
    """Provides ``"grid"`` (the Grid entity) and the network's element order; records voltages, loadings,
    losses and the feeder exchange; judges convergence, the voltage band and the thermal limits."""

    name = "grid"

    def __init__(self, v_min_pu: float, v_max_pu: float) -> None:
        self.v_min_pu = v_min_pu
        self.v_max_pu = v_max_pu

    def build(self, builder: WorldBuilder) -> None:
        sim = builder.start("Grid", "simulators.grid.mosaik_sim:GridSimulator", engine=builder.plan.engine)
        grid = sim.Grid()
        builder.network = sim.network_info()
        builder.provide("grid", grid)
        info = builder.network
        builder.record(
            grid,
            GRID_SERIES,
            series={"vm_pu": info["bus_ids"], "line_loading_pct": info["line_ids"],
                    "trafo_loading_pct": info["trafo_ids"]},
        )

    def criteria(self, kpis: Mapping[str, Any]) -> list[Criterion]:
        return grid_criteria(kpis, self.v_min_pu, self.v_max_pu)

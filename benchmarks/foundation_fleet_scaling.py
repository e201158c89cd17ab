"""Cost of one prosumer-fleet step through its mosaik adapter for 10 to 10,000 prosumers.

    .venv/bin/python benchmarks/foundation_fleet_scaling.py

Each prosumer has a SimBench household load, half have PV and a battery, a fifth an EV; profiles for one
day at 15-minute steps. Measures FleetSimulator.step + get_data of every output the runner connects
(per-bus sums for the grid and the per-prosumer arrays for the recorder), as mosaik calls them.
"""

from __future__ import annotations

import time
from datetime import datetime

from simulators.prosumers.mosaik_sim import ARRAYS, FleetSimulator
from simulators.prosumers.profiles import load_simbench_profiles
from simulators.prosumers.setup import build_fleet_setup
from testbed.domain.scenario.models import EV, PV, Battery, Load, Prosumer, TimeWindow


def fleet(n: int, profiles) -> list[Prosumer]:
    out = []
    for i in range(n):
        out.append(
            Prosumer(
                id=f"p{i}",
                bus=f"bus {i % 100}",
                load=Load(profile="H0-A", annual_kwh=3000 + 10 * (i % 50)),
                pv=PV(kwp=5.0) if i % 2 == 0 else None,
                battery=Battery(capacity_kwh=10, power_kw=5) if i % 2 == 0 else None,
                ev=EV(capacity_kwh=50, charge_kw=11, trip_kwh=10, depart_h=7, arrive_h=18) if i % 5 == 0 else None,
            )
        )
    return out


def main() -> None:
    profiles = load_simbench_profiles("1-LV-rural3--0-sw")
    window = TimeWindow(start=datetime(2016, 7, 24), duration_h=24, resolution_s=900)
    base = None
    print(f"{'prosumers':>10} {'us/step':>10} {'vs 10':>7}")
    for n in (10, 100, 1000, 10000):
        setup = build_fleet_setup(fleet(n, profiles), profiles, window)
        sim = FleetSimulator()
        sim.init("P", setup=setup)
        sim.create(1, "Fleet")
        request = {"fleet": ["p_kw_by_bus", "q_kvar_by_bus", *ARRAYS]}
        t0 = time.perf_counter()
        for k in range(window.n_steps):
            sim.step(k, {}, window.n_steps)
            sim.get_data(request)
        us = (time.perf_counter() - t0) / window.n_steps * 1e6
        base = base or us
        print(f"{n:>10} {us:>10.1f} {us / base:>7.2f}")


if __name__ == "__main__":
    main()

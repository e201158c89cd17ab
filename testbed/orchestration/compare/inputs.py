"""What the strategies' optimisations know of a plan: the homes as arrays (:class:`Homes`), the price basis,
and each home's reactive power (for the power-flow check)."""

from __future__ import annotations

import numpy as np

from simulators.prosumers.setup import build_fleet_setup
from testbed.domain.compare.homes import BATTERY_FIELDS, Homes, ev_day
from testbed.domain.compare.tariff import Prices
from testbed.domain.prosumer import Tariff
from testbed.orchestration.plan import RunPlan

#: The price basis when a scenario has no market section: the market's own defaults.
DEFAULT_TARIFF = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)


def basis_tariff(plan: RunPlan) -> Tariff:
    """The retail tariff every strategy's energy is valued at: the scenario market's, else the default."""
    m = plan.scenario.market
    return m.tariff if m is not None else DEFAULT_TARIFF


def homes_for(plan: RunPlan) -> tuple[Homes, np.ndarray]:
    """The plan's homes (in the fleet's prosumer order) and their reactive power (T, n) [kvar, generator
    convention], from the same profiles and device arrays the fleet simulates."""
    w = plan.scenario.time
    s = build_fleet_setup(plan.prosumers, plan.profiles, w)
    load = s.load_p_profiles[:, s.load_index] * s.load_p_scale_kw
    q = -(s.load_q_profiles[:, s.load_index] * s.load_q_scale_kvar)
    pv = s.pv_profiles[:, s.pv_index] * s.pv_kwp
    pos = {b: i for i, b in enumerate(plan.engine.info.bus_ids)}
    ev = ev_day(s.ev, w.start, w.n_steps, w.resolution_s)
    homes = Homes(
        dt_h=w.resolution_s / 3600.0,
        net_kw=pv - load,
        bus=np.array([pos[b] for b in s.buses], dtype=np.int64),
        n_bus=len(pos),
        battery={f: np.asarray(s.battery[f], float) for f in BATTERY_FIELDS},
        ev_capacity_kwh=np.asarray(s.ev["capacity_kwh"], float),
        ev_charge_kw=np.asarray(s.ev["charge_kw"], float),
        ev_efficiency=np.asarray(s.ev["charge_efficiency"], float),
        ev_initial_kwh=np.asarray(s.ev["initial_soc"], float) * np.asarray(s.ev["capacity_kwh"], float),
        ev_home=ev["home"],
        ev_trip_kwh=ev["trip_kwh"],
        ev_ref_kw=ev["ref_kw"],
    )
    return homes, q


def flat_prices(plan: RunPlan) -> Prices:
    return Prices.flat(basis_tariff(plan), plan.scenario.time.n_steps)

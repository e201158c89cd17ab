"""Expanding a scenario's ``fleet`` rule into explicit prosumers, reproducibly from the seed (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from testbed.domain.scenario.models import EV, PV, Battery, Fleet, Load, Prosumer


@dataclass(frozen=True)
class LoadSite:
    """A load of the grid the fleet turns into a prosumer."""

    name: str
    bus_id: str


def _pick(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Exactly round(share * n) distinct positions out of n, in ascending order."""
    k = int(round(share * n))
    return np.sort(rng.permutation(n)[:k])


def expand_fleet(fleet: Fleet, sites: Sequence[LoadSite], seed: int) -> list[Prosumer]:
    """One prosumer per load site, with PV, batteries and EVs assigned as the fleet rule says.

    Shares are met exactly (rounded to whole prosumers); who gets what, PV sizes and EV times are drawn from
    ``numpy.random.default_rng(seed)`` in a fixed order, so the same seed gives the same fleet.
    """
    rng = np.random.default_rng(seed)
    n = len(sites)
    pv: dict[int, PV] = {}
    battery: dict[int, Battery] = {}
    ev: dict[int, EV] = {}
    if fleet.pv is not None:
        owners = _pick(rng, n, fleet.pv.share)
        sizes = rng.uniform(fleet.pv.kwp.min, fleet.pv.kwp.max, size=len(owners))
        for j, (i, kwp) in enumerate(zip(owners, sizes, strict=True)):
            profile = fleet.pv.profiles[j % len(fleet.pv.profiles)]
            pv[int(i)] = PV(kwp=max(round(float(kwp), 1), 0.1), profile=profile)
        if fleet.battery is not None:
            spec = fleet.battery.model_dump(exclude={"share"})
            for j in _pick(rng, len(owners), fleet.battery.share):
                battery[int(owners[j])] = Battery(**spec)
    if fleet.ev is not None:
        e = fleet.ev
        for i in _pick(rng, n, e.share):
            ev[int(i)] = EV(
                capacity_kwh=e.capacity_kwh,
                charge_kw=e.charge_kw,
                charge_efficiency=e.charge_efficiency,
                trip_kwh=round(float(rng.uniform(e.trip_kwh.min, e.trip_kwh.max)), 2),
                depart_h=round(float(rng.uniform(e.depart_h.min, e.depart_h.max)), 2) % 24,
                arrive_h=round(float(rng.uniform(e.arrive_h.min, e.arrive_h.max)), 2) % 24,
            )
    return [
        Prosumer(
            id=site.name,
            bus=site.bus_id,
            load=Load(grid_load=site.name),
            pv=pv.get(i),
            battery=battery.get(i),
            ev=ev.get(i),
        )
        for i, site in enumerate(sites)
    ]

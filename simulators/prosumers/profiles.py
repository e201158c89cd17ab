"""SimBench's year-long profiles (15-minute values for 2016, shipped offline with the ``simbench`` package).

Load profiles are per unit of a load's rated power (``<name>_pload`` and ``<name>_qload``), PV profiles per
unit of peak power. The testbed indexes them by time of year: a scenario in any year reads the 2016 value of
the same month, day and time of day (2016 is a leap year, so every date exists).

A grid's profiles are read from SimBench once and then kept in the disk cache (:mod:`simulators.cache`), so a
later run reads them without SimBench's CSV files and without importing pandapower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from simulators import cache
from simulators.grid.networks import element_ids, simbench_key, simbench_net

SLOT_S = 900
SLOTS_PER_YEAR = 366 * 96  # 2016
_YEAR_START = datetime(2016, 1, 1)


@dataclass(frozen=True)
class GridLoad:
    """A load of a SimBench grid: the prosumer the fleet makes of it."""

    name: str
    bus_id: str
    profile: str
    p_kw: float  # rated active power the profile is scaled by [kW]
    q_kvar: float  # rated reactive power the q-profile is scaled by [kvar]


@dataclass(frozen=True)
class ProfileSet:
    """Profiles of one SimBench grid: arrays of ``SLOTS_PER_YEAR`` values."""

    source: str
    load_p: dict[str, np.ndarray]
    load_q: dict[str, np.ndarray]
    pv: dict[str, np.ndarray]
    grid_loads: tuple[GridLoad, ...]

    def annual_energy_per_unit_h(self, profile: str) -> float:
        """Energy of a year of ``profile`` per kW of rating [kWh/kW]: 15-minute slots times 0.25 h."""
        return float(self.load_p[profile].sum()) * SLOT_S / 3600.0


PROFILES_KIND = "simbench-profiles"


def load_simbench_profiles(code: str) -> ProfileSet:
    """Read the profiles and the loads of the SimBench grid ``code`` (raises UserError if unknown)."""
    key = {**simbench_key(code), "profiles_source": cache.source_fingerprint(__name__)}
    return cache.get_or_build(PROFILES_KIND, code, key, lambda: _profiles_from_simbench(code))


def _profiles_from_simbench(code: str) -> ProfileSet:
    net = simbench_net(code)  # shared: read only
    table = net.profiles["load"]
    load_p: dict[str, np.ndarray] = {}
    load_q: dict[str, np.ndarray] = {}
    for col in table.columns:
        if col.endswith("_pload"):
            load_p[col[: -len("_pload")]] = table[col].to_numpy(dtype=float)
        elif col.endswith("_qload"):
            load_q[col[: -len("_qload")]] = table[col].to_numpy(dtype=float)
    ren = net.profiles["renewables"]
    pv = {c: ren[c].to_numpy(dtype=float) for c in ren.columns if c.startswith("PV")}
    bus_ids = dict(zip(net.bus.index, element_ids(net.bus, "bus "), strict=True))
    loads = tuple(
        GridLoad(
            name=str(row.name_),
            bus_id=bus_ids[row.bus],
            profile=str(row.profile),
            p_kw=float(row.p_mw) * 1000.0,
            q_kvar=float(row.q_mvar) * 1000.0,
        )
        for row in net.load.rename(columns={"name": "name_"}).sort_index().itertuples()
    )
    for name, arr in [*load_p.items(), *pv.items()]:
        if len(arr) != SLOTS_PER_YEAR:
            raise ValueError(f"SimBench profile {name} of {code} has {len(arr)} values, expected {SLOTS_PER_YEAR}")
    return ProfileSet(source=f"simbench:{code}", load_p=load_p, load_q=load_q, pv=pv, grid_loads=loads)


def step_slots(start: datetime, n_steps: int, resolution_s: int) -> np.ndarray:
    """For each step, the profile slots it covers: an (n_steps, k) index array, k = max(1, resolution/900).

    A step shorter than a slot holds the slot's value; a longer one averages the slots it spans.
    """
    per_step = max(1, resolution_s // SLOT_S)
    out = np.empty((n_steps, per_step), dtype=np.int64)
    for k in range(n_steps):
        t = start + timedelta(seconds=k * resolution_s)
        in_2016 = t.replace(year=2016)
        slot = int((in_2016 - _YEAR_START).total_seconds() // SLOT_S)
        out[k] = (slot + np.arange(per_step)) % SLOTS_PER_YEAR
    return out


def per_step(profile: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The profile's value for each step (mean over the slots a step covers)."""
    return profile[slots].mean(axis=1)

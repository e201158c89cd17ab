"""Checks of a scenario against the grid and the profiles it names (pure: the names are passed in)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from testbed.domain.scenario.models import Battery, Prosumer
from testbed.domain.scenario.response import FrequencyResponse


def reference_problems(
    prosumers: Sequence[Prosumer],
    *,
    bus_ids: Collection[str],
    load_profiles: Collection[str],
    pv_profiles: Collection[str],
    grid_loads: Collection[str],
    path: str = "prosumers",
) -> list[str]:
    """Every reference of ``prosumers`` that does not exist, as ``<path>[i].<field>: <reason>`` lines."""
    problems: list[str] = []

    def unknown(where: str, kind: str, value: str, known: Collection[str]) -> None:
        sample = ", ".join(sorted(known)[:6]) + (", ..." if len(known) > 6 else "")
        problems.append(f"{where}: unknown {kind} {value!r} (known: {sample or 'none'})")

    for i, p in enumerate(prosumers):
        at = f"{path}[{i}]"
        if p.bus not in bus_ids:
            unknown(f"{at}.bus", "bus", p.bus, bus_ids)
        if p.load.grid_load is not None and p.load.grid_load not in grid_loads:
            unknown(f"{at}.load.grid_load", "grid load", p.load.grid_load, grid_loads)
        if p.load.profile is not None and p.load.profile not in load_profiles:
            unknown(f"{at}.load.profile", "load profile", p.load.profile, load_profiles)
        if p.pv is not None and p.pv.profile not in pv_profiles:
            unknown(f"{at}.pv.profile", "PV profile", p.pv.profile, pv_profiles)
    return problems


def frequency_responders(
    spec: FrequencyResponse, prosumers: Sequence[Prosumer]
) -> tuple[list[tuple[Prosumer, Battery]], list[str]]:
    """The members (prosumer, battery) of ``frequency_response``, and the problems of naming them."""
    by_id = {p.id: p for p in prosumers}
    if spec.members is None:
        chosen = [p for p in prosumers if p.battery is not None and p.battery.hil is None]
        if not chosen:
            return [], ["frequency_response: no prosumer has a simulated battery to respond with"]
        return [(p, p.battery) for p in chosen], []
    out, problems = [], []
    for i, pid in enumerate(spec.members):
        p = by_id.get(pid)
        where = f"frequency_response.members[{i}]"
        if p is None:
            sample = ", ".join(sorted(by_id)[:6]) + (", ..." if len(by_id) > 6 else "")
            problems.append(f"{where}: unknown prosumer {pid!r} (known: {sample})")
        elif p.battery is None:
            problems.append(f"{where}: prosumer {pid!r} has no battery")
        elif p.battery.hil is not None:
            problems.append(f"{where}: prosumer {pid!r}'s battery is a device in the loop, not a simulated one")
        else:
            out.append((p, p.battery))
    return out, problems

"""Set a device up for a service test over SunSpec: what it must serve, and which of its own functions run.

- ``setpoints``: the test drives active power through 704 ``WSet`` (its own droop, 711, and Volt-VAR, 705, are
  switched off, so that they do not add to the setpoints);
- ``droop``: the device's own frequency droop (711, one control: deadband, droop, response time);
- ``volt-var``: the device's own Volt-VAR curve (705, one curve of 4 points, in % of VAMax, response time);
- ``volt-watt``: the device's own Volt-Watt curve (706, one curve of 2 points, in % of WMax, response time).

A device that does not serve a model the mode needs is refused before anything is written
(:class:`MissingModels`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from hil.client import SunSpecClient

log = logging.getLogger(__name__)

REQUIRED_MODELS: dict[str, tuple[int, ...]] = {
    "setpoints": (701, 704),
    "droop": (701, 711),
    "volt-var": (701, 705),
    "volt-watt": (701, 706),
}


class MissingModels(Exception):
    """The device does not serve SunSpec models the test needs."""

    def __init__(self, address: str, unit: int, mode: str, missing: Sequence[int]) -> None:
        self.missing = tuple(missing)
        super().__init__(
            f"{address} unit {unit} does not serve SunSpec model(s) {', '.join(map(str, missing))} that control "
            f"{mode} needs"
        )


def missing_models(served: Sequence[int], mode: str) -> list[int]:
    return [m for m in REQUIRED_MODELS[mode] if m not in served]


async def program(
    client: SunSpecClient,
    mode: str,
    *,
    droop: tuple[float, float, float] | None = None,
    curve: Sequence[tuple[float, float]] | None = None,
    curve_response_s: float | None = None,
) -> None:
    """Program ``client``'s device (already scanned) for ``mode``. ``droop`` = (deadband [Hz], droop [pu],
    open-loop response time [s]); ``curve`` = Volt-VAR points (V [pu], Q [fraction of S_rated]) or Volt-Watt
    points (V [pu], P [fraction of P_rated]) and its response time ``curve_response_s`` [s]."""
    missing = missing_models(list(client.models), mode)
    if missing:
        raise MissingModels(client.address, client.unit, mode, missing)
    served = client.models
    if mode != "droop" and 711 in served:
        await client.write_points(711, {"Ena": 0})
    if mode != "volt-var" and 705 in served:
        await client.write_points(705, {"Ena": 0})
    if mode != "volt-watt" and 706 in served:
        await client.write_points(706, {"Ena": 0})
    if mode == "setpoints":
        await client.write_points(704, {"WSetEna": 1, "WSetMod": 1, "WSet": 0.0})
    elif mode == "droop":
        db, k, olrt = droop
        await client.write_points(
            711,
            {"Ctl[0].DbOf": db, "Ctl[0].DbUf": db, "Ctl[0].KOf": k, "Ctl[0].KUf": k, "Ctl[0].RspTms": olrt, "Ena": 1},
        )
        if 704 in served:
            await client.write_points(704, {"WSetEna": 0})
    elif mode == "volt-var":
        values: dict[str, float] = {"Crv[0].RspTms": curve_response_s}
        for i, (v, q) in enumerate(curve):
            values[f"Crv[0].Pt[{i}].V"] = 100.0 * v
            values[f"Crv[0].Pt[{i}].Var"] = 100.0 * q
        await client.write_points(705, values)
        await client.write_points(705, {"Ena": 1})
    elif mode == "volt-watt":
        values = {"Crv[0].RspTms": curve_response_s}
        for i, (v, p) in enumerate(curve):
            values[f"Crv[0].Pt[{i}].V"] = 100.0 * v
            values[f"Crv[0].Pt[{i}].W"] = 100.0 * p
        await client.write_points(706, values)
        await client.write_points(706, {"Ena": 1})
    log.info("%s unit %d programmed for %s", client.address, client.unit, mode)

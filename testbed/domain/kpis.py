"""Key performance indicators of a run, accumulated step by step (pure: numbers in, numbers out).

Energies are integrated as power times the step length (powers are step means or step values).

- ``grid_import_kwh`` / ``grid_export_kwh``: energy through the feeder's connection to the upstream grid.
- ``prosumer_import_kwh`` / ``prosumer_export_kwh``: the sum over homes of what each meter imported or
  exported (a home exports when its net power is > 0, generator convention).
- ``self_sufficiency``: share of the homes' consumption (load + EV charging) not imported through their
  meters: ``1 - prosumer_import_kwh / (load_kwh + ev_kwh)``.
- ``self_consumption``: share of PV energy used behind the meter: ``1 - prosumer_export_kwh / pv_kwh``.
- ``minutes_outside_voltage_limits``: time during which at least one bus was outside [v_min_pu, v_max_pu].
- Voltage and loading extremes are over converged steps; ``non_converged_steps`` counts the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


class KpiAccumulator:
    def __init__(self, *, dt_h: float, v_min_pu: float, v_max_pu: float, prosumer_ids: tuple[str, ...] = ()):
        if dt_h <= 0:
            raise ValueError(f"dt_h must be > 0, got {dt_h}")
        self.dt_h = dt_h
        self.v_min_limit = v_min_pu
        self.v_max_limit = v_max_pu
        self.prosumer_ids = prosumer_ids
        self.steps = 0
        self.non_converged = 0
        self.steps_outside = 0
        self.v_min = np.inf
        self.v_max = -np.inf
        self.peak_line = -np.inf
        self.peak_trafo = -np.inf
        self.e: dict[str, float] = dict.fromkeys(
            (
                "grid_import_kwh",
                "grid_export_kwh",
                "losses_kwh",
                "load_kwh",
                "pv_kwh",
                "ev_kwh",
                "battery_charge_kwh",
                "battery_discharge_kwh",
                "prosumer_import_kwh",
                "prosumer_export_kwh",
            ),
            0.0,
        )
        n = len(prosumer_ids)
        self.home_import = np.zeros(n)
        self.home_export = np.zeros(n)

    def update(self, values: Mapping[str, Any]) -> None:
        """Add one step. Known keys: converged, vm_pu, line_loading_pct, trafo_loading_pct, losses_kw,
        ext_grid_p_kw, load_kw, pv_kw, ev_kw, battery_kw, p_kw (per-prosumer arrays); others are ignored."""
        dt = self.dt_h
        self.steps += 1
        if "converged" in values:
            if not values["converged"]:
                self.non_converged += 1
            else:
                vm = np.asarray(values.get("vm_pu", []), dtype=float)
                if vm.size and np.isfinite(vm).any():
                    lo, hi = np.nanmin(vm), np.nanmax(vm)
                    self.v_min = min(self.v_min, lo)
                    self.v_max = max(self.v_max, hi)
                    if lo < self.v_min_limit or hi > self.v_max_limit:
                        self.steps_outside += 1
                for key, attr in (("line_loading_pct", "peak_line"), ("trafo_loading_pct", "peak_trafo")):
                    arr = np.asarray(values.get(key, []), dtype=float)
                    if arr.size and np.isfinite(arr).any():
                        setattr(self, attr, max(getattr(self, attr), float(np.nanmax(arr))))
                p_ext = float(values.get("ext_grid_p_kw", 0.0))
                self.e["grid_import_kwh"] += max(p_ext, 0.0) * dt
                self.e["grid_export_kwh"] += max(-p_ext, 0.0) * dt
                self.e["losses_kwh"] += float(values.get("losses_kw", 0.0)) * dt
        for key in ("load_kw", "pv_kw", "ev_kw"):
            if key in values:
                self.e[key.replace("_kw", "_kwh")] += float(np.sum(values[key])) * dt
        if "battery_kw" in values:
            b = np.asarray(values["battery_kw"], dtype=float)
            self.e["battery_charge_kwh"] += float(-b[b < 0].sum()) * dt
            self.e["battery_discharge_kwh"] += float(b[b > 0].sum()) * dt
        if "p_kw" in values:
            p = np.asarray(values["p_kw"], dtype=float)
            imp = np.maximum(-p, 0.0) * dt
            exp = np.maximum(p, 0.0) * dt
            self.e["prosumer_import_kwh"] += float(imp.sum())
            self.e["prosumer_export_kwh"] += float(exp.sum())
            if len(self.home_import) == len(p):
                self.home_import += imp
                self.home_export += exp

    def result(self) -> dict[str, Any]:
        e = self.e
        consumption = e["load_kwh"] + e["ev_kwh"]
        out: dict[str, Any] = {
            "steps": self.steps,
            "non_converged_steps": self.non_converged,
            "v_min_pu": _nan_to_none(self.v_min),
            "v_max_pu": _nan_to_none(self.v_max),
            "minutes_outside_voltage_limits": self.steps_outside * self.dt_h * 60.0,
            "voltage_limits_pu": [self.v_min_limit, self.v_max_limit],
            "peak_line_loading_pct": _nan_to_none(self.peak_line),
            "peak_trafo_loading_pct": _nan_to_none(self.peak_trafo),
            **{k: round(v, 9) for k, v in e.items()},
            "self_sufficiency": _nan_to_none(1 - e["prosumer_import_kwh"] / consumption) if consumption > 0 else None,
            "self_consumption": _nan_to_none(1 - e["prosumer_export_kwh"] / e["pv_kwh"]) if e["pv_kwh"] > 0 else None,
        }
        if self.prosumer_ids:
            out["prosumers"] = {
                pid: {"import_kwh": round(float(i), 9), "export_kwh": round(float(x), 9)}
                for pid, i, x in zip(self.prosumer_ids, self.home_import, self.home_export, strict=True)
            }
        return out

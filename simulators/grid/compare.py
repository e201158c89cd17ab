"""One snapshot of a network with its own loads, and the differences between two engines' snapshots.

Used by ``fpp grid solve`` / ``fpp grid compare`` and by the cross-engine tests. Results are plain dicts
(JSON-ready; NaN becomes None) with units in the key names.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from simulators.grid.engine import GridEngine, Snapshot
from simulators.grid.factory import build_engine
from testbed.domain.errors import UserError


def solve_own_loads(ref: str, engine: str, *, base_dir: Path | None = None) -> tuple[GridEngine, Snapshot]:
    """Build ``engine`` for ``ref`` keeping the network's own loads and generators, and solve once."""
    eng = build_engine(ref, engine=engine, keep_elements=True, base_dir=base_dir)
    n = len(eng.info.bus_ids)
    eng.set_injections(np.zeros(n), np.zeros(n))
    return eng, eng.solve()


def _num(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def snapshot_dict(eng: GridEngine, snap: Snapshot, engine: str) -> dict:
    info = eng.info
    out = {
        "network": info.name,
        "engine": engine,
        "converged": bool(snap.converged),
        "message": snap.message,
        "iterations": int(snap.iterations),
        "unbalanced": bool(info.unbalanced),
        "losses_kw": _num(snap.losses_kw),
        "ext_grid_p_kw": _num(snap.ext_grid_p_kw),
        "ext_grid_q_kvar": _num(snap.ext_grid_q_kvar),
        "buses": [
            {
                "id": b,
                "vn_kv": float(info.bus_vn_kv[i]),
                "vm_pu": _num(snap.vm_pu[i]),
                "va_degree": _num(snap.va_degree[i]),
            }
            for i, b in enumerate(info.bus_ids)
        ],
        "lines": [{"id": x, "loading_pct": _num(snap.line_loading_pct[i])} for i, x in enumerate(info.line_ids)],
        "trafos": [{"id": x, "loading_pct": _num(snap.trafo_loading_pct[i])} for i, x in enumerate(info.trafo_ids)],
    }
    if snap.vm_pu_phase is not None:
        for i, row in enumerate(out["buses"]):
            row["vm_pu_phase"] = [_num(v) for v in snap.vm_pu_phase[i]]
    return out


def _largest(ids, a: np.ndarray, b: np.ndarray, *, wrap_degree: bool = False) -> dict:
    if len(a) == 0:
        return {"id": None, "diff": 0.0}
    d = np.asarray(a, float) - np.asarray(b, float)
    if wrap_degree:
        d = (d + 180.0) % 360.0 - 180.0
    d = np.abs(d)
    if np.isnan(d).all():
        return {"id": None, "diff": None}
    k = int(np.nanargmax(d))
    return {"id": ids[k], "diff": float(d[k]), "a": _num(a[k]), "b": _num(b[k])}


def compare_engines(ref: str, *, base_dir: Path | None = None, engines=("pandapower", "opendss")) -> dict:
    """Solve ``ref`` with its own loads on two engines and report the largest differences (b - a)."""
    if ref.lower().endswith(".dss"):
        raise UserError(
            f"{ref}: compare needs a network both engines read; an OpenDSS file runs on the OpenDSS engine only "
            "(pandapower's OpenDSS converter is not exact enough to compare against)"
        )
    a_name, b_name = engines
    a_eng, a = solve_own_loads(ref, a_name, base_dir=base_dir)
    b_eng, b = solve_own_loads(ref, b_name, base_dir=base_dir)
    if a_eng.info.bus_ids != b_eng.info.bus_ids or a_eng.info.line_ids != b_eng.info.line_ids:
        raise RuntimeError("engines disagree on the network's element ids")  # a bug, not a user mistake
    out = {
        "network": ref,
        "engines": [a_name, b_name],
        "converged": [bool(a.converged), bool(b.converged)],
        "buses": len(a_eng.info.bus_ids),
    }
    if not (a.converged and b.converged):
        out["message"] = "; ".join(f"{n}: {s.message}" for n, s in ((a_name, a), (b_name, b)) if not s.converged)
        return out
    info = a_eng.info
    out.update(
        {
            "max_vm_diff_pu": _largest(info.bus_ids, a.vm_pu, b.vm_pu),
            "max_va_diff_degree": _largest(info.bus_ids, a.va_degree, b.va_degree, wrap_degree=True),
            "max_line_loading_diff_pct": _largest(info.line_ids, a.line_loading_pct, b.line_loading_pct),
            "max_trafo_loading_diff_pct": _largest(info.trafo_ids, a.trafo_loading_pct, b.trafo_loading_pct),
            "losses_kw": [float(a.losses_kw), float(b.losses_kw)],
            "losses_diff_kw": float(b.losses_kw - a.losses_kw),
            "losses_diff_rel": float((b.losses_kw - a.losses_kw) / a.losses_kw) if a.losses_kw else None,
            "ext_grid_p_kw": [float(a.ext_grid_p_kw), float(b.ext_grid_p_kw)],
        }
    )
    return out

"""Writing a balanced pandapower network as an OpenDSS circuit.

The export is exact for what pandapower's balanced power flow models, so that both engines give the same
voltages (tests: ≤ 1e-4 pu on SimBench LV grids). The choices that make it exact:

- **External grid**: pandapower's power flow treats it as an ideal voltage source (its short-circuit power
  ``s_sc_max_mva``/``rx_max`` only enters short-circuit studies), so the ``Vsource`` gets a negligible
  impedance (``_SOURCE_Z_OHM``) instead of the short-circuit impedance.
- **Closed bus-bus switches** fuse their buses (as pandapower does): both pandapower buses map to one
  OpenDSS bus. Open bus-bus switches connect nothing. An **open line or transformer switch** leaves that
  element connected at its other end only: its open end goes to a bus of its own, so a line still draws
  its charging current from the closed end, as in pandapower.
- **Lines**: positive-sequence data (r, x, c per km) written also as zero-sequence data, so the three phases
  are uncoupled; ``parallel`` divides the impedance and multiplies the capacitance. The base frequency is the
  network's ``f_hz``. Shunt conductance ``g_us_per_km`` has no OpenDSS line equivalent: non-zero is refused.
- **Transformers**: ``%loadloss = vkr_percent``, ``xhl = sqrt(vk² - vkr²)``, no-load losses and magnetising
  current from ``pfe_kw`` and ``i0_percent``; ratio taps as per-unit winding taps. The vector group's phase
  shift is not reproduced in OpenDSS (a delta-wye bank shifts by 30°, pandapower's ``shift_degree`` may be
  150°): both windings are wye, voltage magnitudes are unaffected, and :attr:`DssCircuit.angle_offset_deg`
  holds, per pandapower bus, the angle to add to OpenDSS's angle to get pandapower's (minus the summed shifts).
- **Loads** are constant-power ``Load`` elements (ZIP shares through ``model=8``); **static generators** and
  **storage** are written as ``Load`` elements with negated power (OpenDSS loads accept negative kW), which
  keeps them constant-power at any voltage, as in pandapower. ``Vminpu``/``Vmaxpu`` are widened so that
  OpenDSS does not turn them into impedances away from 1 pu.
- **Bus voltage bases** are each bus's ``vn_kv`` (``CalcVoltageBases`` over the network's levels, then
  ``SetkVBase`` per bus), so per-unit values match pandapower's also when the file is compiled on its own.

Sign conventions in the written file: OpenDSS loads are consumer convention (kW > 0 consumed), like
pandapower loads and storage; pandapower static generators are generator convention, hence their flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandapower as pp

from simulators.grid.networks import check_supplied, element_ids
from testbed.domain.errors import UserError

_SOURCE_Z_OHM = (1e-7, 1e-6)  # (r, x) of the Vsource: negligible against any line [ohm]
_V_MIN_PU = 0.05  # below this OpenDSS loads become impedances (keeps collapse cases from blowing up)
_V_MAX_PU = 5.0
_CONST_PQ = "model=1"


@dataclass
class DssCircuit:
    """An OpenDSS circuit written from a pandapower network, with the maps back to pandapower's ids."""

    name: str
    commands: list[str]  # the OpenDSS script, one command per entry
    bus_ids: tuple[str, ...]  # pandapower bus ids (engine order)
    bus_dss: tuple[str, ...]  # the OpenDSS bus of each pandapower bus (fused buses share one)
    bus_vn_kv: np.ndarray
    line_ids: tuple[str, ...]
    line_dss: tuple[str, ...]  # OpenDSS Line names, same order as line_ids
    trafo_ids: tuple[str, ...]
    trafo_dss: tuple[str, ...]
    angle_offset_deg: np.ndarray  # per pandapower bus: pandapower angle = OpenDSS angle + offset [degree]
    kept_elements: tuple[str, ...] = field(default=())  # full names of the network's own loads etc.
    base_frequency_hz: float = 50.0

    def script(self) -> str:
        return "\n".join(self.commands) + "\n"

    def write(self, path: Path) -> None:
        """Write the circuit as a ``.dss`` file that OpenDSS compiles on its own."""
        Path(path).write_text(self.script(), encoding="utf-8")


class _Fuse:
    """Union-find over pandapower bus indices (closed bus-bus switches)."""

    def __init__(self, buses) -> None:
        self.parent = {int(b): int(b) for b in buses}

    def find(self, b: int) -> int:
        root = b
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[b] != root:
            self.parent[b], b = root, self.parent[b]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _g(x: float) -> str:
    return repr(float(x))


def export_pandapower(net: pp.pandapowerNet, *, name: str = "network") -> DssCircuit:
    """Translate a balanced pandapower network into an OpenDSS circuit (see module docstring).

    Raises :class:`UserError` listing every element the export cannot represent exactly.
    """
    problems = _unsupported(net)
    if problems:
        raise UserError(f"{name}: cannot export this network to OpenDSS", problems)
    check_supplied(net, name)
    f_hz = float(net.f_hz)
    bus = net.bus
    fuse = _Fuse(bus.index)
    sw = net.switch
    for row in sw[(sw.et == "b") & sw.closed.astype(bool)].itertuples():
        fuse.union(int(row.bus), int(row.element))
    dss_bus = {int(b): f"b{fuse.find(int(b))}" for b in bus.index}

    open_ends: dict[tuple[str, int], set[int]] = {}
    for row in sw[(sw.et.isin(["l", "t"])) & ~sw.closed.astype(bool)].itertuples():
        open_ends.setdefault((row.et, int(row.element)), set()).add(int(row.bus))

    def end(et: str, idx: int, b: int, tag: str) -> str:
        if b in open_ends.get((et, idx), ()):
            return f"open_{et}{idx}_{tag}"
        return dss_bus[b]

    ext = net.ext_grid[net.ext_grid.in_service.astype(bool)]
    if len(ext) == 0:
        raise UserError(f"{name}: the network has no external grid to export as an OpenDSS source")
    cmds = [
        "Clear",
        f"Set DefaultBaseFrequency={_g(f_hz)}",
    ]
    r_s, x_s = _SOURCE_Z_OHM
    for k, row in enumerate(ext.itertuples()):
        kv = float(bus.at[row.bus, "vn_kv"])
        head = "New Circuit.fpp" if k == 0 else f"New Vsource.ext{k}"
        cmds.append(
            f"{head} bus1={dss_bus[int(row.bus)]} phases=3 basekv={_g(kv)} pu={_g(row.vm_pu)} "
            f"angle={_g(row.va_degree)} Z1=[{_g(r_s)}, {_g(x_s)}] Z0=[{_g(r_s)}, {_g(x_s)}]"
        )

    line_names = []
    for idx, row in net.line.iterrows():
        par = float(row.parallel)
        r, x, c = float(row.r_ohm_per_km) / par, float(row.x_ohm_per_km) / par, float(row.c_nf_per_km) * par
        amps = float(row.max_i_ka) * float(row.df) * par * 1000.0
        nm = f"line{idx}"
        line_names.append(nm)
        cmds.append(
            f"New Line.{nm} bus1={end('l', idx, int(row.from_bus), 'f')} bus2={end('l', idx, int(row.to_bus), 't')} "
            f"phases=3 length={_g(row.length_km)} units=km r1={_g(r)} x1={_g(x)} c1={_g(c)} "
            f"r0={_g(r)} x0={_g(x)} c0={_g(c)} normamps={_g(amps)} emergamps={_g(amps)}"
            + ("" if bool(row.in_service) else " enabled=no")
        )

    trafo_names = []
    for idx, row in net.trafo.iterrows():
        nm = f"trafo{idx}"
        trafo_names.append(nm)
        kva = float(row.sn_mva) * 1000.0 * float(row.parallel)
        vk, vkr = float(row.vk_percent), float(row.vkr_percent)
        noload_pct = float(row.pfe_kw) / (float(row.sn_mva) * 1000.0) * 100.0
        imag_pct = math.sqrt(max(float(row.i0_percent) ** 2 - noload_pct**2, 0.0))
        taps = _taps(row)
        cmds.append(
            f"New Transformer.{nm} phases=3 windings=2 "
            f"buses=[{end('t', idx, int(row.hv_bus), 'hv')}, {end('t', idx, int(row.lv_bus), 'lv')}] "
            f"conns=[wye, wye] kvs=[{_g(row.vn_hv_kv)}, {_g(row.vn_lv_kv)}] kvas=[{_g(kva)}, {_g(kva)}] "
            f"taps=[{_g(taps[0])}, {_g(taps[1])}] xhl={_g(math.sqrt(max(vk**2 - vkr**2, 0.0)))} "
            f"%loadloss={_g(vkr)} %noloadloss={_g(noload_pct)} %imag={_g(imag_pct)}"
            + ("" if bool(row.in_service) else " enabled=no")
        )

    kept = []
    for table, sign in (("load", 1.0), ("sgen", -1.0), ("storage", 1.0)):
        df = net[table]
        for idx, row in df.iterrows():
            scale = float(row.scaling) if "scaling" in df else 1.0
            kw = sign * float(row.p_mw) * scale * 1000.0
            kvar = sign * float(row.q_mvar) * scale * 1000.0
            kv = float(bus.at[row.bus, "vn_kv"])
            model = _load_model(row) if table == "load" else _CONST_PQ
            nm = f"{table}{idx}"
            cmds.append(
                f"New Load.{nm} bus1={dss_bus[int(row.bus)]} phases=3 conn=wye kV={_g(kv)} kW={_g(kw)} "
                f"kvar={_g(kvar)} {model} vminpu={_g(_V_MIN_PU)} vmaxpu={_g(_V_MAX_PU)}"
                + ("" if bool(row.in_service) else " enabled=no")
            )
            if bool(row.in_service):
                kept.append(f"Load.{nm}")

    bases = ", ".join(_g(v) for v in sorted(set(bus.vn_kv.astype(float)), reverse=True))
    cmds += [f"Set VoltageBases=[{bases}]", "CalcVoltageBases"]
    seen = set()
    for b in bus.index:
        db = dss_bus[int(b)]
        if db not in seen:
            seen.add(db)
            cmds.append(f"SetkVBase bus={db} kVLL={_g(bus.at[b, 'vn_kv'])}")
    cmds += ["Set MaxIterations=100", "Set Tolerance=1e-8", "Set Mode=Snap"]

    bus_ids = element_ids(bus, "bus ")
    return DssCircuit(
        name=name,
        commands=cmds,
        bus_ids=bus_ids,
        bus_dss=tuple(dss_bus[int(b)] for b in bus.index),
        bus_vn_kv=bus.vn_kv.to_numpy(dtype=float),
        line_ids=element_ids(net.line, "line "),
        line_dss=tuple(line_names),
        trafo_ids=element_ids(net.trafo, "trafo "),
        trafo_dss=tuple(trafo_names),
        angle_offset_deg=_angle_offsets(net, ext),
        kept_elements=tuple(kept),
        base_frequency_hz=f_hz,
    )


def _taps(row) -> tuple[float, float]:
    pos, neutral = row.tap_pos, row.tap_neutral
    if pos is None or neutral is None or not np.isfinite(pos) or not np.isfinite(neutral) or pos == neutral:
        return 1.0, 1.0
    ratio = 1.0 + (float(pos) - float(neutral)) * float(row.tap_step_percent) / 100.0
    return (ratio, 1.0) if row.tap_side == "hv" else (1.0, ratio)


def _load_model(row) -> str:
    zp = float(row.get("const_z_p_percent", 0.0) or 0.0) / 100.0
    ip = float(row.get("const_i_p_percent", 0.0) or 0.0) / 100.0
    zq = float(row.get("const_z_q_percent", zp * 100.0) or 0.0) / 100.0
    iq = float(row.get("const_i_q_percent", ip * 100.0) or 0.0) / 100.0
    if zp == ip == zq == iq == 0.0:
        return _CONST_PQ
    return f"model=8 zipv=[{_g(zp)}, {_g(ip)}, {_g(1 - zp - ip)}, {_g(zq)}, {_g(iq)}, {_g(1 - zq - iq)}, 0]"


def _unsupported(net: pp.pandapowerNet) -> list[str]:
    """Everything the export cannot write exactly, one line per element kind."""
    problems = []
    for table in ("trafo3w", "gen", "shunt", "impedance", "ward", "xward", "dcline", "asymmetric_load",
                  "asymmetric_sgen", "motor", "tcsc", "svc", "ssc", "vsc"):
        if table in net and len(net[table]) and net[table].in_service.astype(bool).any():
            problems.append(f"{table}: {len(net[table])} element(s); the exporter writes only lines, 2-winding "
                            "transformers, switches, loads, static generators, storage and external grids")
    if len(net.line) and (net.line.g_us_per_km.fillna(0.0) != 0.0).any():
        problems.append("line.g_us_per_km: shunt conductance has no OpenDSS line equivalent")
    tr = net.trafo
    if len(tr):
        off = tr.tap_pos.notna() & tr.tap_neutral.notna() & (tr.tap_pos != tr.tap_neutral)
        if "tap_changer_type" in tr:
            bad = off & ~tr.tap_changer_type.isin(["Ratio"])
            if bad.any():
                problems.append(f"trafo {list(tr.index[bad])}: only 'Ratio' tap changers off neutral are exported")
        if "tap_step_degree" in tr:
            bad = off & (tr.tap_step_degree.fillna(0.0) != 0.0)
            if bad.any():
                problems.append(f"trafo {list(tr.index[bad])}: phase-shifting taps are not exported")
    sw = net.switch
    if len(sw) and "z_ohm" in sw:
        bad = (sw.et == "b") & sw.closed.astype(bool) & (sw.z_ohm.fillna(0.0) != 0.0)
        if bad.any():
            problems.append(f"switch {list(sw.index[bad])}: bus-bus switches with impedance are not exported")
    return problems


def _angle_offsets(net: pp.pandapowerNet, ext) -> np.ndarray:
    """Per bus, pandapower's cumulated transformer phase shift from the source (OpenDSS shifts nothing here).

    pandapower puts the low-voltage side ``shift_degree`` behind the high-voltage side. Returned as the value to
    add to OpenDSS's angle to get pandapower's (negative shift behind each transformer).
    """
    import pandapower.topology as top

    offset = {int(b): 0.0 for b in net.bus.index}
    tr = net.trafo[net.trafo.in_service.astype(bool)]
    if len(tr) == 0:
        return np.zeros(len(net.bus))
    # Buses connected without transformers share an angle offset; walk components outward from the source.
    g = top.create_nxgraph(net, include_trafos=False, respect_switches=True)
    comp_of = {}
    for k, comp in enumerate(top.connected_components(g)):
        for b in comp:
            comp_of[int(b)] = k
    comp_offset = {comp_of[int(b)]: 0.0 for b in ext.bus}
    frontier = list(comp_offset)
    while frontier:
        nxt = []
        for row in tr.itertuples():
            hv, lv = comp_of.get(int(row.hv_bus)), comp_of.get(int(row.lv_bus))
            shift = float(row.shift_degree or 0.0)
            if hv in frontier and lv not in comp_offset:
                comp_offset[lv] = comp_offset[hv] - shift
                nxt.append(lv)
            elif lv in frontier and hv not in comp_offset:
                comp_offset[hv] = comp_offset[lv] + shift
                nxt.append(hv)
        frontier = nxt
    for b in offset:
        offset[b] = comp_offset.get(comp_of.get(b), 0.0)
    return np.array([offset[int(b)] for b in net.bus.index])

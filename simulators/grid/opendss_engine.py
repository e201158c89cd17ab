"""The OpenDSS grid engine (``opendssdirect.py``), balanced or per phase.

A circuit comes either from the pandapower exporter (:mod:`simulators.grid.dss_export`; bus, line and
transformer ids are then the pandapower engine's) or from an OpenDSS ``.dss`` file with its redirects (ids are
OpenDSS's own lower-case names).

Injections: the engine adds one constant-power ``Load`` per OpenDSS bus (named ``fpp_<k>``), connected to all
of the bus's phase nodes; a bus's injection is split equally between its phases. OpenDSS loads use the
consumer convention, so ``set_injections`` flips the sign once (``kW = -p_kw``). Injections are written with
the DSS C-API batch interface, only for the loads whose values changed, in one edit session (each load is
recalculated once for kW and kvar together), and each step is one ``Solution.Solve()``.

Outputs: per-phase voltage magnitudes against each bus's base voltage (pandapower's ``vn_kv`` for exported
circuits, OpenDSS's ``kVBase`` for files), ``vm_pu`` is their mean over the bus's phases, ``va_degree`` the
angle of its first phase (plus the exporter's phase-shift correction). Loadings are the largest conductor
current of any terminal against the line's ``normamps`` or the transformer winding's rated current (NaN when out
of service). Terminal currents are those OpenDSS computes, I = YPrim * V per power-delivery element, as one
sparse product of all the elements' primitive admittances with the solved node voltages (equal to
``PDElements.AllCurrents``: 3e-12 A apart on 9,099 buses, and loadings and losses tested to 1e-9 relative, at
a twentieth of its cost); circuits with control elements that may
change a primitive admittance during a solve (regulator taps, capacitor steps, switches) read
``PDElements.AllCurrents`` instead. Losses are those of all power-delivery elements (lines, transformers, ...),
summed as V * conj(I) over their terminals (equal to ``Circuit.Losses``, tested); the source power is
``-Circuit.TotalPower`` (OpenDSS reports power flowing *into* the source terminal, hence the second flip).
Each engine holds its own OpenDSS context, so several engines live in one process. The engine sets the solver's
snapshot mode, tolerance (1e-8 pu voltage change between iterations) and iteration limit (100), also for
``.dss`` files (a file that sets a daily or yearly mode is solved as one snapshot per step).
"""

from __future__ import annotations

import logging
import math
import weakref
from pathlib import Path

import dss
import numpy as np
import opendssdirect as odd
import scipy.sparse as sp

from simulators.grid.dss_export import DssCircuit
from simulators.grid.engine import NetworkInfo, Snapshot, checked_injections
from testbed.domain.errors import UserError

log = logging.getLogger(__name__)

_INJ_PREFIX = "fpp_"
_KEPT_CLASSES = ("Load", "Generator", "PVSystem", "Storage")
_SOLVER_SETTINGS = ("Set Mode=Snap", "Set MaxIterations=100", "Set Tolerance=1e-8")
_V_MIN_PU = 0.05
_V_MAX_PU = 5.0
_SQRT3 = math.sqrt(3.0)
# Control elements that can change a power-delivery element's primitive admittance inside a solve.
_Y_CONTROLS = ("RegControl", "CapControl", "SwtControl")
# DSS C-API setter flag: a load's power changes without rebuilding its primitive admittance (and so the system Y
# matrix), as the classic Loads interface does; OpenDSS's compensation currents keep the solution exact.
_AVOID_FULL_RECALC = int(dss.SetterFlags.AvoidFullRecalc)


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class OpenDSSEngine:
    """An OpenDSS circuit with one injection point per bus.

    Parameters
    ----------
    source:
        A :class:`DssCircuit` from the exporter, or the path of a ``.dss`` file.
    keep_elements:
        Keep the circuit's own loads, generators, PV systems and storage (True), or disable them (False).
    name:
        A label for messages and results.
    """

    def __init__(self, source: DssCircuit | Path, *, keep_elements: bool, name: str = "network") -> None:
        self._dss = odd.NewContext()
        self._circuit = self._dss.to_dss_python().ActiveCircuit
        self._ymatrix = self._dss.to_dss_python().YMatrix
        self._nodev_at = None  # address of OpenDSS's solution voltage array, and a NumPy view of it
        self._nodev = None
        self._node_ref = None  # AllNodeNames position -> index into that array
        self._dss.Basic.AllowChangeDir(False)
        self._dss.Basic.AllowForms(False)
        self._name = name
        self._setter_flags = _AVOID_FULL_RECALC  # 0 rebuilds YPrim on every write (benchmarks/grid_engines.py)
        if isinstance(source, DssCircuit):
            self._load_commands(source.commands, f"{name} (exported from pandapower)")
            bus_ids, bus_dss, base_v = source.bus_ids, source.bus_dss, source.bus_vn_kv * 1000.0 / _SQRT3
            line_ids, line_dss = source.line_ids, source.line_dss
            trafo_ids, trafo_dss = source.trafo_ids, source.trafo_dss
            self._angle_offset = np.asarray(source.angle_offset_deg, dtype=float)
            kept = source.kept_elements
            unbalanced = False
        else:
            self._compile(Path(source))
            bus_ids, bus_dss, base_v, line_ids, line_dss, trafo_ids, trafo_dss = self._describe_file()
            self._angle_offset = np.zeros(len(bus_ids))
            kept = self._own_elements()
            taken = [el for el in kept if el.lower().startswith(f"load.{_INJ_PREFIX}")]
            if taken:
                raise UserError(f"{name}: load names starting with '{_INJ_PREFIX}' are reserved for the testbed", taken)
            unbalanced = None
        d = self._dss
        self._run(*_SOLVER_SETTINGS)
        if not keep_elements:
            for el in kept:
                self._run(f"{el}.enabled=no")

        # Node layout: the columns of each bus's phases 1..3 in AllBusVolts (-1 where the bus lacks the phase).
        d.Solution.Solve()  # builds the bus list
        node_pos = {n.lower(): i for i, n in enumerate(d.Circuit.AllNodeNames())}
        uniq = list(dict.fromkeys(bus_dss))
        self._phase_cols = np.full((len(uniq), 3), -1, dtype=np.int64)
        for k, b in enumerate(uniq):
            for ph in (1, 2, 3):
                self._phase_cols[k, ph - 1] = node_pos.get(f"{b}.{ph}", -1)
        uniq_pos = {b: k for k, b in enumerate(uniq)}
        missing = [bus_ids[i] for i, b in enumerate(bus_dss) if (self._phase_cols[uniq_pos[b]] < 0).all()]
        if missing:
            raise UserError(f"{name}: buses without phase conductors in OpenDSS", [f"bus {b}" for b in missing[:20]])
        self._bus_to_uniq = np.array([uniq_pos[b] for b in bus_dss], dtype=np.int64)
        self._base_v = np.asarray(base_v, dtype=float)
        n_phases = (self._phase_cols >= 0).sum(axis=1)
        bus_cols = self._phase_cols[self._bus_to_uniq]
        self._has_phase = bus_cols >= 0
        self._all_three = bool(self._has_phase.all())
        # Phase-major layouts (3, n_bus): reductions over the phases then run along contiguous rows.
        self._bus_cols_t = np.ascontiguousarray(np.maximum(bus_cols, 0).T)
        self._missing_t = np.ascontiguousarray(~self._has_phase.T)
        self._inv_base = 1.0 / np.asarray(base_v, dtype=float)
        self._n_phase = self._has_phase.sum(axis=1).astype(float)
        # The angle is phase a's where the bus has it, else its first phase's.
        self._angle_col = np.where(bus_cols[:, 0] >= 0, bus_cols[:, 0], bus_cols.max(axis=1))
        if unbalanced is None:
            unbalanced = bool((n_phases < 3).any()) or self._has_single_phase_elements()
        self._unbalanced = unbalanced

        # One injection load per OpenDSS bus, on all its phases.
        uniq_kv_ln = np.zeros(len(uniq))
        uniq_kv_ln[self._bus_to_uniq] = self._base_v / 1000.0
        cmds = []
        for k, b in enumerate(uniq):
            phases = [str(p + 1) for p in range(3) if self._phase_cols[k, p] >= 0]
            kv = uniq_kv_ln[k] * (_SQRT3 if len(phases) > 1 else 1.0)
            cmds.append(
                f"New Load.{_INJ_PREFIX}{k} bus1={b}.{'.'.join(phases)} phases={len(phases)} conn=wye kV={float(kv)!r} "
                f"kW=0 kvar=0 model=1 vminpu={_V_MIN_PU} vmaxpu={_V_MAX_PU}"
            )
        self._run(*cmds)
        self._n_inj = len(uniq)
        self._inj_batch = self._make_batch("Load", f"^{_INJ_PREFIX}[0-9]+$", len(uniq))
        self._check_batch_order()

        self.info = NetworkInfo(
            name=name,
            bus_ids=tuple(bus_ids),
            bus_vn_kv=np.asarray(self._base_v) * _SQRT3 / 1000.0,
            line_ids=tuple(line_ids),
            trafo_ids=tuple(trafo_ids),
            unbalanced=unbalanced,
        )
        self._line_dss, self._trafo_dss = tuple(line_dss), tuple(trafo_dss)
        self._p_kw = np.zeros(self._n_inj)
        self._q_kvar = np.zeros(self._n_inj)
        self._reinit = False
        d.Solution.Solve()
        self._layout_nodes()
        self._layout_branches()
        self._check_supplied(bus_ids)

    # -- building -----------------------------------------------------------------------------------------
    def _run(self, *commands: str) -> None:
        text = self._dss.Text
        for cmd in commands:
            text.Command(cmd)

    def _load_commands(self, commands, where: str) -> None:
        try:
            self._run(*commands)
        except odd.DSSException as exc:
            raise UserError(f"{where}: OpenDSS rejected the circuit: {_short(exc)}") from None

    def _compile(self, path: Path) -> None:
        if path.suffix.lower() != ".dss":
            raise UserError(f"{path}: an OpenDSS network must be a .dss file")
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            self._run("Clear", f'Compile "{path.resolve()}"')
        except odd.DSSException as exc:
            raise UserError(f"{path}: OpenDSS could not compile it: {_short(exc)}") from None
        if self._dss.Circuit.NumBuses() == 0 and not self._dss.Circuit.Name():
            raise UserError(f"{path}: defines no circuit (it needs a 'New Circuit.<name> ...' line)")

    def _describe_file(self):
        d = self._dss
        try:
            d.Solution.Solve()
        except odd.DSSException as exc:
            raise UserError(f"{self._name}: OpenDSS cannot solve the circuit: {_short(exc)}") from None
        names = [b.lower() for b in d.Circuit.AllBusNames()]
        base_v = []
        no_base = []
        for b in names:
            d.Circuit.SetActiveBus(b)
            kv = d.Bus.kVBase()
            if not kv > 0:
                no_base.append(b)
            base_v.append(kv * 1000.0)
        if no_base:
            raise UserError(
                f"{self._name}: buses without a voltage base (add 'Set VoltageBases=[...]' and 'CalcVoltageBases')",
                [f"bus {b}" for b in no_base[:20]],
            )
        lines = [n.lower() for n in d.Lines.AllNames() if n.lower() != "none"]
        trafos = [n.lower() for n in d.Transformers.AllNames() if n.lower() != "none"]
        return tuple(names), tuple(names), np.array(base_v), tuple(lines), tuple(lines), tuple(trafos), tuple(trafos)

    def _own_elements(self) -> tuple[str, ...]:
        d = self._dss
        out = []
        for cls in _KEPT_CLASSES:
            d.Basic.SetActiveClass(cls)
            if d.ActiveClass.Count() == 0:
                continue
            out += [f"{cls}.{n}" for n in d.ActiveClass.AllNames()]
        return tuple(out)

    def _each_element(self, classes: tuple[str, ...]):
        """Make each element of ``classes`` the active circuit element in turn (yields nothing itself)."""
        d = self._dss
        for cls in classes:
            d.Basic.SetActiveClass(cls)
            if d.ActiveClass.Count() == 0:
                continue
            for n in d.ActiveClass.AllNames():
                d.Circuit.SetActiveElement(f"{cls}.{n}")
                yield

    def _has_single_phase_elements(self) -> bool:
        return any(self._dss.CktElement.NumPhases() < 3 for _ in self._each_element(_KEPT_CLASSES))

    def _make_batch(self, cls: str, regexp: str, expected: int):
        api = self._dss.to_dss_python()._api_util
        ffi, lib = api.ffi, api.lib
        ptr = ffi.new("void***")
        dims = ffi.new("int32_t[4]")
        lib.Batch_CreateByRegExpS(ptr, dims, cls.encode(), regexp.encode())  # this lib binds the context itself
        api._check_for_error()
        count = int(dims[0])
        if count != expected:
            raise RuntimeError(f"batch of {cls} matched {count} elements, expected {expected}")
        self._api, self._ffi, self._lib = api, ffi, lib
        weakref.finalize(self, lib.Batch_Dispose, ptr[0])
        # The batch is an array of object pointers; a copy as integers lets a write address any subset of it.
        return np.frombuffer(ffi.buffer(ptr[0], count * ffi.sizeof("void*")), dtype=np.uintp).copy()

    def _check_batch_order(self) -> None:
        """The batch must list fpp_0, fpp_1, ... in order: write k to load k and read it back by name."""
        d = self._dss
        everyone = np.arange(self._n_inj)
        marks = everyone.astype(float)
        self._write_batch(everyone, [(b"kW", everyone, marks)])
        for k in range(self._n_inj):
            d.Loads.Name(f"{_INJ_PREFIX}{k}")
            if d.Loads.kW() != float(k):
                raise RuntimeError(f"OpenDSS batch order differs from creation order at load {k}")
        zero = np.zeros(self._n_inj)
        self._write_batch(everyone, [(b"kW", everyone, zero), (b"kvar", everyone, zero)])

    def _write_batch(self, edited: np.ndarray, writes: list[tuple[bytes, np.ndarray, np.ndarray]]) -> None:
        """Write properties of the injection loads in one OpenDSS edit session.

        ``edited``: indices of every load that any write touches; ``writes``: (property, indices, values). Inside
        an edit session OpenDSS defers each load's recalculation to the end, once per load instead of once per
        property (the same final state; ~25 % cheaper for kW + kvar on 9,097 loads, benchmarks/grid_engines.py).
        """
        if len(edited) == 0:
            return
        lib = self._lib
        edited_ptrs = self._pointers(edited)
        batch = self._ffi.cast("void**", self._ffi.from_buffer(edited_ptrs))
        lib.Batch_BeginEdit(batch, len(edited))
        try:
            for prop, which, values in writes:
                buf = np.ascontiguousarray(values, dtype=np.float64)
                ptrs = self._pointers(which)
                lib.Batch_Float64ArrayS(
                    self._ffi.cast("void**", self._ffi.from_buffer(ptrs)),
                    len(which),
                    prop,
                    lib.BatchOperation_Set,
                    self._ffi.from_buffer("double[]", buf),
                    self._setter_flags,
                )
        finally:
            lib.Batch_EndEdit(batch, len(edited), len(writes))
        self._api._check_for_error()

    def _pointers(self, which: np.ndarray) -> np.ndarray:
        """The object pointers of the injection loads ``which`` (indices), contiguous."""
        return self._inj_batch if len(which) == self._n_inj else np.ascontiguousarray(self._inj_batch[which])

    def _layout_nodes(self) -> None:
        """Where each node (in ``AllNodeNames`` order) sits in OpenDSS's solution voltage array: the Y matrix's
        order (``YNodeOrder``), shifted by one for the ground at index 0."""
        d = self._dss
        ref = {n.lower(): k + 1 for k, n in enumerate(d.Circuit.YNodeOrder())}
        names = [n.lower() for n in d.Circuit.AllNodeNames()]
        missing = [n for n in names if n not in ref]
        if missing:
            raise RuntimeError(f"OpenDSS nodes missing from the Y matrix order: {missing[:5]}")
        self._node_ref = np.array([ref[n] for n in names], dtype=np.int64)

    def _node_volts(self) -> np.ndarray:
        """Complex node voltages [V] in ``AllNodeNames`` order, gathered from OpenDSS's own solution array (what
        ``Circuit.AllBusVolts`` returns, without its per-bus copy loop)."""
        ptr = self._ymatrix.GetVPointer()
        at = int(self._ffi.cast("uintptr_t", ptr))
        if at != self._nodev_at:  # first call, or OpenDSS reallocated the array (new buses)
            n = len(self._node_ref) + 1
            self._nodev = np.frombuffer(self._ffi.buffer(ptr, 16 * n), dtype=np.complex128)
            self._nodev_at = at
        return self._nodev[self._node_ref]

    def _layout_branches(self) -> None:
        """Where each line's and transformer's currents sit in ``PDElements.AllCurrents``, and their ratings."""
        d = self._dss
        names = [n.lower() for n in d.PDElements.AllNames()]
        n_term = np.asarray(d.PDElements.AllNumTerminals(), dtype=np.int64)
        n_cond = np.asarray(d.PDElements.AllNumConductors(), dtype=np.int64)
        n_phase = np.asarray(d.PDElements.AllNumPhases(), dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(n_term * n_cond)[:-1]])
        pos = {n: i for i, n in enumerate(names)}

        def cols(kind: str, element: str) -> list[list[int]] | None:
            i = pos.get(f"{kind}.{element}")
            if i is None:
                return None
            d.Circuit.SetActiveElement(f"{kind}.{element}")
            if not d.CktElement.Enabled():
                return None  # out of service: NaN loading, as the pandapower engine gives
            return [[int(start[i] + t * n_cond[i] + c) for c in range(n_phase[i])] for t in range(int(n_term[i]))]

        self._line_cols, self._line_rating, self._line_valid = self._branch_table(
            "line", self._line_dss, cols, self._line_amps
        )
        self._trafo_cols, self._trafo_rating, self._trafo_valid = self._branch_table(
            "transformer", self._trafo_dss, cols, self._trafo_amps
        )
        self._layout_loss_nodes(names, n_term * n_cond)

    def _layout_loss_nodes(self, names: list[str], sizes: np.ndarray) -> None:
        """For every entry of ``PDElements.AllCurrents``, its node's position in ``AllBusVolts`` (ground: the
        extra last slot, 0 V). The losses are then sum(V * conj(I)) over all power-delivery terminals: the same
        sum ``Circuit.Losses`` makes, but from arrays already read (saves a second pass over the elements)."""
        d = self._dss
        node_pos = {n.lower(): i for i, n in enumerate(d.Circuit.AllNodeNames())}
        ground = len(node_pos)
        idx = []
        y_rows, y_cols, y_vals = [], [], []
        for name, size in zip(names, sizes, strict=True):
            d.Circuit.SetActiveElement(name)
            first = len(idx)
            if not d.CktElement.Enabled():
                idx += [ground] * int(size)  # a disabled element carries no current
                continue
            buses = [b.split(".")[0].lower() for b in d.CktElement.BusNames()]
            nodes = d.CktElement.NodeOrder()
            per_term = len(nodes) // max(len(buses), 1)
            for k, node in enumerate(nodes):
                idx.append(ground if node == 0 else node_pos[f"{buses[k // per_term]}.{node}"])
            y = np.asarray(d.CktElement.YPrim(), dtype=float).view(np.complex128).reshape(int(size), int(size))
            r, c = np.nonzero(y)
            y_rows.append(r + first)
            y_cols.append(np.asarray(idx[first:], dtype=np.int64)[c])
            y_vals.append(y[r, c])
        if len(idx) != int(sizes.sum()):
            raise RuntimeError(f"OpenDSS current layout: {len(idx)} node entries for {int(sizes.sum())} currents")
        self._loss_nodes = np.asarray(idx, dtype=np.int64)
        # Terminal currents of all power-delivery elements as one sparse product with the node voltages (ground
        # last, at 0 V), unless a control element may change a primitive admittance during a solve.
        if self._has_y_controls():
            self._y_branch = None
        else:
            self._y_branch = sp.csr_matrix(
                (_cat(y_vals, np.complex128), (_cat(y_rows, np.int64), _cat(y_cols, np.int64))),
                shape=(len(idx), ground + 1),
            )

    def _has_y_controls(self) -> bool:
        return any(self._dss.CktElement.Enabled() for _ in self._each_element(_Y_CONTROLS))

    def _branch_currents(self) -> np.ndarray:
        """Complex terminal currents of all power-delivery elements, in ``PDElements.AllCurrents`` order [A]."""
        if self._y_branch is None:
            return self._circuit.PDElements.AllCurrents.view(np.complex128)
        return self._y_branch @ self._v_ext

    def _branch_table(self, kind, names, cols, rating):
        """Per element: the 6 current columns (2 terminals x 3 phases), % of rating per ampere, in service; the
        first two as (6, n) arrays."""
        n = len(names)
        col = np.zeros((n, 2, 3), dtype=np.int64)
        rate = np.full((n, 2, 3), np.inf)
        valid = np.zeros(n, dtype=bool)
        for k, nm in enumerate(names):
            c = cols(kind, nm)
            if c is None:
                continue
            amps = rating(nm)
            valid[k] = True
            for t in range(min(len(c), 2)):
                ph = c[t]
                col[k, t, : len(ph)] = ph
                col[k, t, len(ph) :] = ph[0]
                rate[k, t, :] = amps[t] if amps[t] > 0 else np.inf
        # Terminal-conductor-major (6, n): the largest of the six is then a reduction along contiguous rows.
        return np.ascontiguousarray(col.reshape(n, 6).T), np.ascontiguousarray((100.0 / rate).reshape(n, 6).T), valid

    def _line_amps(self, name: str) -> tuple[float, float]:
        d = self._dss
        d.Lines.Name(name)
        a = d.Lines.NormAmps()
        return a, a

    def _trafo_amps(self, name: str) -> tuple[float, float]:
        d = self._dss
        d.Transformers.Name(name)
        out = []
        phases = d.CktElement.NumPhases() if d.Circuit.SetActiveElement(f"Transformer.{name}") >= 0 else 3
        for w in (1, 2):
            d.Transformers.Wdg(w)
            kva, kv = d.Transformers.kVA(), d.Transformers.kV()
            if phases > 1:
                out.append(kva / (_SQRT3 * kv) if kv > 0 else 0.0)
            else:
                out.append(kva / kv if kv > 0 else 0.0)
        return out[0], out[1]

    def _check_supplied(self, bus_ids) -> None:
        """An island without a source shows as buses at zero voltage after the no-load solve."""
        if not self._dss.Solution.Converged():
            return  # reported by solve() as a flagged step
        vm = self._phase_magnitudes_t()
        dead = np.where(np.isnan(vm), 0.0, vm).max(axis=0) < 1e-6
        if dead.any():
            names = [bus_ids[i] for i in np.flatnonzero(dead)]
            raise UserError(
                f"{self._name}: {len(names)} bus(es) are not connected to any source (an island without a source)",
                [f"bus {b}" for b in names[:20]] + ([f"... and {len(names) - 20} more"] if len(names) > 20 else []),
            )

    # -- the contract -------------------------------------------------------------------------------------
    def set_injections(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        p_kw, q_kvar = checked_injections(self.info, p_kw, q_kvar)
        # The one sign flip of the OpenDSS boundary: OpenDSS loads are consumer convention [kW, kvar].
        kw = -np.bincount(self._bus_to_uniq, weights=p_kw, minlength=self._n_inj)
        kvar = -np.bincount(self._bus_to_uniq, weights=q_kvar, minlength=self._n_inj)
        # Only the loads whose values changed are written (OpenDSS's property setter costs ~0.13 us per load and
        # value). Writing kW switches an OpenDSS load to "kW and power factor", so kvar must follow every kW write;
        # kvar alone may change without touching kW.
        p_changed = kw != self._p_kw
        q_changed = p_changed | (kvar != self._q_kvar)
        writes = []
        for prop, changed, values in ((b"kW", p_changed, kw), (b"kvar", q_changed, kvar)):
            which = np.flatnonzero(changed)
            if len(which):
                writes.append((prop, which, values if len(which) == self._n_inj else values[which]))
        if writes:
            self._write_batch(writes[-1][1], writes)  # the kvar write covers every load written
        self._p_kw, self._q_kvar = kw, kvar

    def solve(self) -> Snapshot:
        solution = self._circuit.Solution
        if self._reinit:
            # Start again from the no-load voltages rather than from a diverged state.
            solution.InitSnap()
            self._reinit = False
        try:
            solution.Solve()
        except odd.DSSException as exc:
            self._reinit = True
            return Snapshot.failed(self.info, f"power flow did not converge: {_short(exc)}")
        if not solution.Converged:
            self._reinit = True
            return Snapshot.failed(self.info, f"power flow did not converge in {solution.Iterations} iterations")
        mag = self._phase_magnitudes_t()
        if self._all_three:
            vm = (mag[0] + mag[1] + mag[2]) * (1.0 / 3.0)
        else:
            vm = np.where(self._missing_t, 0.0, mag).sum(axis=0) / self._n_phase
        if not (vm.min() >= _V_MIN_PU and np.isfinite(vm).all()):
            self._reinit = True
            return Snapshot.failed(self.info, "power flow did not converge: voltage collapse (below 0.05 pu)")
        va = np.degrees(np.angle(self._volts[self._angle_col]))
        va += self._angle_offset + 180.0
        np.mod(va, 360.0, out=va)
        va -= 180.0
        self._v_ext = np.append(self._volts, 0.0)  # the ground node at 0 V
        i_all = self._branch_currents()
        currents = np.abs(i_all)
        v_term = self._v_ext[self._loss_nodes]
        # Re(sum V * conj(I)) = sum of (re * re + im * im) over the interleaved float views; no BLAS dot, whose
        # threads cost milliseconds on a busy machine.
        losses_w = float(np.multiply(v_term.view(np.float64), np.ascontiguousarray(i_all).view(np.float64)).sum())
        total = self._circuit.TotalPower
        return Snapshot(
            converged=True,
            vm_pu=vm,
            va_degree=va,
            line_loading_pct=self._loading(currents, self._line_cols, self._line_rating, self._line_valid),
            trafo_loading_pct=self._loading(currents, self._trafo_cols, self._trafo_rating, self._trafo_valid),
            losses_kw=losses_w / 1000.0,
            ext_grid_p_kw=-float(total[0]),
            ext_grid_q_kvar=-float(total[1]),
            vm_pu_phase=np.ascontiguousarray(mag.T) if self._unbalanced else None,
            iterations=int(solution.Iterations),
        )

    # -- results ------------------------------------------------------------------------------------------
    def _phase_magnitudes_t(self) -> np.ndarray:
        """(3, n_bus) phase voltage magnitudes [pu], NaN where a bus lacks the phase."""
        v = self._node_volts()
        self._volts = v
        mag = np.abs(v)[self._bus_cols_t] * self._inv_base
        if not self._all_three:
            mag[self._missing_t] = np.nan
        return mag

    @staticmethod
    def _loading(currents, cols, pct_per_amp, valid) -> np.ndarray:
        if len(cols) == 0:
            return np.zeros(0)
        pct = (currents[cols] * pct_per_amp).max(axis=0)
        pct[~valid] = np.nan
        return pct

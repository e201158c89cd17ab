"""The pandapower grid engine (balanced AC power flow with Newton-Raphson).

Speed: after the first solve only bus injections change, so pandapower's ``recycle`` reuses the admittance
matrices and, as pandapower's own time series does, ``only_v_results`` skips the pandas result tables:
line and transformer loadings, losses and the slack power are computed here from the solved voltages
with the same formulas pandapower uses (a test checks them against ``runpp``'s tables). lightsim2grid's
solver is used when it gives the same voltages as pandapower's own on this network (tolerance 1e-9 pu), since
its importer ignores bus-bus switches on some networks (DESIGN.md, known pitfalls). That check costs two power
flows; it runs at the first solve, not when the engine is built (so checking a scenario runs no power flow),
and not at all when the caller passes the choice made earlier for the same network (the factory keeps it in
the disk cache). With lightsim2grid, pandapower's numba kernels are switched off: they only build the
admittance matrix once per run, the same within 3e-13 pu, while compiling them costs ~4 s per process.

Unbalanced networks (in-service ``asymmetric_load`` or ``asymmetric_sgen`` rows) are solved with pandapower's
``runpp_3ph`` instead, which needs the network's zero-sequence data; the testbed's per-bus injections stay
balanced (a third per phase) and ``Snapshot.vm_pu_phase`` holds the phase voltages.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import replace

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import F_BUS, T_BUS
from pandapower.pypower.idx_bus import BASE_KV, PD, QD, VA, VM

from simulators.grid.engine import NetworkInfo, Snapshot, checked_injections
from simulators.grid.networks import check_supplied, element_ids
from testbed.domain.errors import UserError

log = logging.getLogger(__name__)

_RECYCLE = {"trafo": False, "gen": False, "bus_pq": True}
_INJECTION_NAME = "fpp injection"
_LS2G_TOLERANCE_PU = 1e-9
#: The power-flow solvers an engine may use: lightsim2grid's Newton-Raphson, pandapower's own, or pandapower's
#: three-phase power flow (unbalanced networks).
SOLVERS = ("lightsim2grid", "pandapower", "runpp_3ph")
_OPTIONS = {
    "lightsim2grid": {"recycle": _RECYCLE, "only_v_results": True, "lightsim2grid": True, "numba": False},
    "pandapower": {"recycle": _RECYCLE, "only_v_results": True},
}


class PandapowerEngine:
    """A pandapower network with one injection point per bus.

    Parameters
    ----------
    net:
        The network; it is copied, the caller's object is not changed.
    keep_elements:
        Keep the network's own loads, static generators and storage units (True), or take them out of
        service so that the testbed's injections are the only ones (False; prosumers replace them).
    name:
        A label for messages and results.
    solver:
        One of :data:`SOLVERS`, as :attr:`solver` gave it for this same network and ``keep_elements`` before;
        ``None`` chooses at the first solve (and checks an unbalanced network's three-phase data now).
    """

    def __init__(
        self, net: pp.pandapowerNet, *, keep_elements: bool, name: str = "network", solver: str | None = None
    ) -> None:
        if solver is not None and solver not in SOLVERS:
            raise ValueError(f"solver {solver!r}: choose one of {', '.join(SOLVERS)}")
        net = copy.deepcopy(net)
        if len(net.ext_grid[net.ext_grid.in_service]) == 0 and not (
            "slack" in net.gen and net.gen.slack.fillna(False).astype(bool).any()
        ):
            raise UserError(f"{name}: the network has no external grid or slack generator to balance it")
        check_supplied(net, name)
        if not keep_elements:
            for table in ("load", "sgen", "storage", "asymmetric_load", "asymmetric_sgen"):
                net[table]["in_service"] = False
        buses = net.bus.index.to_numpy()
        # One call for all buses: create_load per bus costs ~2 ms each (18 s on a 9,000-bus grid).
        created = pp.create_loads(net, buses=buses, p_mw=0.0, q_mvar=0.0, name=_INJECTION_NAME)
        self._inj_index = net.load.index[net.load.index.isin(created)]
        self._net = net
        self._pristine = copy.deepcopy(net)
        trafo_ids = element_ids(net.trafo, "trafo ") + element_ids(net.trafo3w, "trafo3w ")
        self.info = NetworkInfo(
            name=name,
            bus_ids=element_ids(net.bus, "bus "),
            bus_vn_kv=net.bus.vn_kv.to_numpy(dtype=float),
            line_ids=element_ids(net.line, "line "),
            trafo_ids=trafo_ids,
            unbalanced=False,
        )
        self._restart_flat = False
        self._three_phase = is_asymmetric(net)
        if self._three_phase:
            self.info = replace(self.info, unbalanced=True)
            if solver is None:
                self._check_three_phase_data()
            solver = "runpp_3ph"
        elif solver == "runpp_3ph":
            raise ValueError(f"{name}: solver runpp_3ph given for a balanced network")
        self._solver: str | None = solver

    @property
    def net(self) -> pp.pandapowerNet:
        """The engine's own network copy (read it, do not change its topology)."""
        return self._net

    @property
    def solver(self) -> str:
        """The power-flow solver (one of :data:`SOLVERS`); asking for it makes the choice if not made yet."""
        if self._solver is None:
            self._solver = self._choose_solver()
        return self._solver

    @property
    def uses_lightsim2grid(self) -> bool:
        return self.solver == "lightsim2grid"

    def _choose_solver(self) -> str:
        """lightsim2grid if it gives pandapower's voltages on the base case (no injections), else pandapower.

        Runs on a copy, so the engine's own network keeps no state of these two power flows.
        """
        net = copy.deepcopy(self._pristine)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, numba=False)
        except pp.LoadflowNotConverged:
            log.warning("%s: base case does not converge; lightsim2grid check skipped", self.info.name)
            return "pandapower"
        reference = net.res_bus.vm_pu.to_numpy(copy=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, lightsim2grid=True, numba=False)
            fast = net.res_bus.vm_pu.to_numpy(copy=True)
        except Exception as exc:  # lightsim2grid refuses some networks: then pandapower's own solver is used
            log.info("%s: lightsim2grid not usable (%s)", self.info.name, exc)
            return "pandapower"
        diff = np.nanmax(np.abs(fast - reference)) if len(reference) else 0.0
        if np.isfinite(diff) and diff <= _LS2G_TOLERANCE_PU:
            return "lightsim2grid"
        log.info("%s: lightsim2grid differs by %.2e pu; using pandapower's solver", self.info.name, diff)
        return "pandapower"

    def set_injections(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        p_kw, q_kvar = checked_injections(self.info, p_kw, q_kvar)
        # The one sign flip of the pandapower boundary: pandapower loads are consumer convention [MW].
        self._net.load.loc[self._inj_index, "p_mw"] = -p_kw / 1000.0
        self._net.load.loc[self._inj_index, "q_mvar"] = -q_kvar / 1000.0

    def _check_three_phase_data(self) -> None:
        """runpp_3ph needs zero-sequence data; a network without it is a user mistake, reported at build."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp_3ph(self._net)
        except pp.LoadflowNotConverged:
            log.warning("%s: unbalanced base case does not converge", self.info.name)
        except (KeyError, AttributeError, ValueError, UserWarning) as exc:
            raise UserError(
                f"{self.info.name}: the network has asymmetric loads or generators, but pandapower's three-phase "
                f"power flow cannot run on it ({type(exc).__name__}: {exc}); it needs zero-sequence data: "
                "ext_grid s_sc_max_mva, rx_max, r0x0_max, x0x_max; line r0_ohm_per_km, x0_ohm_per_km, "
                "c0_nf_per_km; trafo vector_group, vk0_percent, vkr0_percent, mag0_percent, mag0_rx, si0_hv_partial"
            ) from None

    def solve(self) -> Snapshot:
        if self._three_phase:
            return self._solve_three_phase()
        if self._restart_flat:
            # After a failed solve the recycled state starts from the failed voltages: start again from the
            # untouched copy with pandapower's default initialisation. (A flat start is no remedy: with the
            # 150 degree shift of a Dyn5 transformer it "converges" to ~0 pu, measured with pandapower 3.5.)
            self._rebuild()
        net = self._net
        options = _OPTIONS[self.solver]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, **options)
        except pp.LoadflowNotConverged as exc:  # raised by a full (not recycled) run only
            self._restart_flat = True
            return Snapshot.failed(self.info, f"power flow did not converge: {exc}")
        if not net._ppc["success"]:
            # A recycled run with only_v_results returns without raising; its success flag tells.
            self._restart_flat = True
            return Snapshot.failed(
                self.info,
                f"power flow did not converge: Newton-Raphson stopped after {int(net._ppc['iterations'])} "
                "iterations without reaching pandapower's mismatch tolerance",
            )
        self._restart_flat = False
        return self._snapshot_from_ppc()

    def _solve_three_phase(self) -> Snapshot:
        """Unbalanced networks: pandapower's runpp_3ph (no recycling), results from its 3-phase tables."""
        net = self._net
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp_3ph(net)
        except pp.LoadflowNotConverged as exc:
            return Snapshot.failed(self.info, f"power flow did not converge: {exc}")
        rb = net.res_bus_3ph
        phase = np.column_stack([rb.vm_a_pu, rb.vm_b_pu, rb.vm_c_pu]).astype(float)
        phases = ("a", "b", "c")
        rl, rt, re = net.res_line_3ph, net.res_trafo_3ph, net.res_ext_grid_3ph
        losses = sum(float(rl[f"pl_{x}_mw"].sum()) for x in phases)
        if len(net.trafo):
            losses += sum(float(rt[f"pl_{x}_mw"].sum()) for x in phases)
        return Snapshot(
            converged=True,
            vm_pu=phase.mean(axis=1),
            va_degree=rb.va_a_degree.to_numpy(dtype=float),
            line_loading_pct=rl.loading_percent.to_numpy(dtype=float),
            trafo_loading_pct=rt.loading_percent.to_numpy(dtype=float) if len(net.trafo) else np.zeros(0),
            losses_kw=losses * 1000.0,
            ext_grid_p_kw=sum(float(re[f"p_{x}_mw"].sum()) for x in phases) * 1000.0,
            ext_grid_q_kvar=sum(float(re[f"q_{x}_mvar"].sum()) for x in phases) * 1000.0,
            vm_pu_phase=phase,
        )

    def _rebuild(self) -> None:
        p_mw = self._net.load.loc[self._inj_index, "p_mw"].to_numpy(copy=True)
        q_mvar = self._net.load.loc[self._inj_index, "q_mvar"].to_numpy(copy=True)
        self._net = copy.deepcopy(self._pristine)
        self._net.load.loc[self._inj_index, "p_mw"] = p_mw
        self._net.load.loc[self._inj_index, "q_mvar"] = q_mvar

    def _snapshot_from_ppc(self) -> Snapshot:
        """Build the snapshot from pandapower's internal solution arrays (see module docstring)."""
        net = self._net
        ppc = net._ppc
        internal = ppc["internal"]
        bus_rows = net._pd2ppc_lookups["bus"][net.bus.index.to_numpy()]
        vm_pu = ppc["bus"][bus_rows, VM].astype(float)
        va_degree = ppc["bus"][bus_rows, VA].astype(float)
        out_of_service = ~net.bus.in_service.to_numpy(dtype=bool)
        vm_pu[out_of_service] = np.nan
        va_degree[out_of_service] = np.nan

        v = internal["V"]
        base_mva = internal["baseMVA"]
        branch = internal["branch"]
        base_kv = internal["bus"][:, BASE_KV].real
        f_bus = branch[:, F_BUS].real.astype(np.int64)
        t_bus = branch[:, T_BUS].real.astype(np.int64)
        i_f = internal["Yf"] @ v
        i_t = internal["Yt"] @ v
        s_f = v[f_bus] * np.conj(i_f) * base_mva  # [MVA] into the branch at its from end
        s_t = v[t_bus] * np.conj(i_t) * base_mva
        n_branch = ppc["branch"].shape[0]
        in_service = internal["branch_is"]
        i_f_ka = np.full(n_branch, np.nan)
        i_t_ka = np.full(n_branch, np.nan)
        i_f_ka[in_service] = np.abs(i_f) * base_mva / (np.sqrt(3) * base_kv[f_bus])
        i_t_ka[in_service] = np.abs(i_t) * base_mva / (np.sqrt(3) * base_kv[t_bus])
        loss_mw = float(np.sum((s_f + s_t).real))

        lookups = net._pd2ppc_lookups["branch"]
        line_loading = np.full(len(net.line), np.nan)
        if "line" in lookups:
            f, t = lookups["line"]
            line = net.line
            i_max = line.max_i_ka.to_numpy(float) * line.df.to_numpy(float) * line.parallel.to_numpy(float)
            line_loading = np.fmax(i_f_ka[f:t], i_t_ka[f:t]) / i_max * 100.0
        trafo_loading = np.full(len(net.trafo), np.nan)
        if "trafo" in lookups:
            f, t = lookups["trafo"]
            tr = net.trafo
            sn = tr.sn_mva.to_numpy(float)
            hv = i_f_ka[f:t] * tr.vn_hv_kv.to_numpy(float) * np.sqrt(3) / sn * 100.0
            lv = i_t_ka[f:t] * tr.vn_lv_kv.to_numpy(float) * np.sqrt(3) / sn * 100.0
            trafo_loading = np.fmax(hv, lv) / tr.parallel.to_numpy(float) / tr.df.to_numpy(float)
        if len(net.trafo3w):
            raise NotImplementedError("three-winding transformers are not supported by the fast result path")

        # Slack power: the net injection into the network at each reference bus plus that bus's own load.
        ref = internal["ref"]
        s_ref = v[ref] * np.conj(internal["Ybus"][ref, :] @ v) * base_mva + (
            internal["bus"][ref, PD] + 1j * internal["bus"][ref, QD]
        )
        return Snapshot(
            converged=True,
            vm_pu=vm_pu,
            va_degree=va_degree,
            line_loading_pct=line_loading,
            trafo_loading_pct=trafo_loading,
            losses_kw=loss_mw * 1000.0,
            ext_grid_p_kw=float(np.sum(s_ref.real)) * 1000.0,
            ext_grid_q_kvar=float(np.sum(s_ref.imag)) * 1000.0,
            iterations=int(ppc.get("iterations", 0) or 0),
        )


def is_asymmetric(net: pp.pandapowerNet) -> bool:
    """True where in-service asymmetric loads or static generators make the network unbalanced."""
    for table in ("asymmetric_load", "asymmetric_sgen"):
        if table in net and len(net[table]) and net[table].in_service.astype(bool).any():
            return True
    return False

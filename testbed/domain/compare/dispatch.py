"""Optimal schedules for batteries and EV charging over a day (pure; modelled with cvxpy, solved by HiGHS).

Two problems over the same device model (:mod:`testbed.domain.der.battery`'s losses and limits, the EV
service of :class:`~testbed.domain.compare.homes.Homes`):

- :func:`home_schedules` (``tou``): each home alone minimises its own bill against the prices it sees, with
  its own forecast (its own load and PV); the homes do not share energy, so the problem separates per home
  (one LP holds them all; the optimum is the same as solving each alone);
- :func:`community_schedule` (``central``): one operator minimises the community's cost at its connection,
  ``sum_t dt * (import_price * import - export_price * export)`` of the summed net power, subject to every
  device's limits and to the feeder's limits linearised as rows ``lower <= A @ injection_per_bus <= upper``
  (:class:`~testbed.domain.market.network.NetworkRows`).

When the feeder's rows cannot all hold, :class:`InfeasibleLimits` names each limit and by how much it would
have to give (an elastic re-solve), never a silent fallback.

Variables per step ``t`` and device: charge ``c >= 0`` and discharge ``d >= 0`` at the battery's AC terminals
(stored energy ``e[t+1] = e[t] + sqrt(eta) c dt - d / sqrt(eta) dt`` within the state-of-charge window), EV
charging ``0 <= g <= charge_kw`` while at home (car energy ``e[t+1] = e[t] - trip[t] + eta g dt`` within
``[0, capacity]``, at least the uncontrolled energy at each departure and at the end). Net power of a home
(generator convention) ``p = net + d - c - g``. There is no end-of-day value of stored energy in any strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from testbed.domain.compare.homes import Homes
from testbed.domain.compare.tariff import Prices
from testbed.domain.errors import UserError
from testbed.domain.market.network import NetworkRows

SOLVER = cp.HIGHS
_ELASTIC_PENALTY = 1e3  # per unit of a limit's row given up, in the elastic re-solve that names limits


@dataclass(frozen=True)
class Schedule:
    """Setpoints for every home and step: ``battery_kw`` (T, n) generator convention (> 0 discharges),
    ``ev_kw`` (T, n) charging power (>= 0), ``p_kw`` (T, n) the homes' net power that results, and the
    optimal objective [currency] as the optimiser saw it."""

    battery_kw: np.ndarray
    ev_kw: np.ndarray
    p_kw: np.ndarray
    objective: float
    solver: str


@dataclass(frozen=True)
class LimitShortfall:
    """A feeder limit that could not hold: its row's name, the step where it had to give most and by how much
    (in the row's unit)."""

    name: str
    step: int
    excess: float


class InfeasibleLimits(UserError):
    """No schedule of the devices keeps the feeder within its linearised limits."""

    def __init__(self, shortfalls: list[LimitShortfall]) -> None:
        self.shortfalls = shortfalls
        super().__init__(
            f"central: no schedule of the batteries and EVs keeps the feeder within {len(shortfalls)} of its "
            "limits, even with every device at its best",
            [f"{s.name}: exceeded by {s.excess:.4g} at step {s.step}" for s in shortfalls],
        )


def battery_groups(h: Homes) -> list[np.ndarray]:
    """The homes whose batteries are alike up to their size (same bus, power per kWh of capacity, efficiency,
    state-of-charge window and initial state of charge), as arrays of home positions. Where only the sum over
    a bus matters (the community problem), such a group is exactly one battery of their summed capacity and
    power: each one's set of feasible power profiles is its capacity times that of a 1 kWh battery, and a
    convex set scaled by ``c1``, ``c2``, ... and added up is that set scaled by ``c1 + c2 + ...``. So the optimum
    is the same, and each member runs at its share of the group's capacity."""
    b = h.battery
    with np.errstate(divide="ignore", invalid="ignore"):
        c_rate = np.where(h.has_battery, b["power_kw"] / np.where(h.has_battery, b["capacity_kwh"], 1.0), 0.0)
    keys = np.column_stack([h.bus, np.round(c_rate, 12), b["round_trip_efficiency"], b["soc_min"], b["soc_max"],
                            b["initial_soc"]])[h.has_battery]
    homes = np.flatnonzero(h.has_battery)
    if not len(homes):
        return []
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    return [homes[inverse.ravel() == g] for g in range(inverse.max() + 1)]


class _Devices:
    """The device variables and constraints shared by both problems. With ``aggregate``, alike batteries are
    one variable (:func:`battery_groups`); only valid where the homes' powers count summed per bus."""

    def __init__(self, h: Homes, aggregate: bool = False) -> None:
        T, dt = h.n_steps, h.dt_h
        groups = battery_groups(h) if aggregate else [np.array([i]) for i in np.flatnonzero(h.has_battery)]
        self.groups = groups
        self.bat = np.array([g[0] for g in groups], dtype=np.int64)  # a representative home of each group
        cap = h.battery["capacity_kwh"]
        self.share = [cap[g] / cap[g].sum() for g in groups]  # each member's part of its group
        self.ev = np.flatnonzero(h.has_ev)
        self.cons: list = []
        nb, ne = len(self.bat), len(self.ev)
        self.c = cp.Variable((T, nb), nonneg=True, name="charge_kw") if nb else None
        self.d = cp.Variable((T, nb), nonneg=True, name="discharge_kw") if nb else None
        self.g = cp.Variable((T, ne), nonneg=True, name="ev_kw") if ne else None
        # selection matrices: device columns -> home columns
        self.Sb = sp.csr_matrix((np.ones(nb), (np.arange(nb), self.bat)), shape=(nb, h.n))
        self.Se = sp.csr_matrix((np.ones(ne), (np.arange(ne), self.ev)), shape=(ne, h.n))
        if nb:
            b = {k: v[self.bat] for k, v in h.battery.items()}
            b["capacity_kwh"] = np.array([h.battery["capacity_kwh"][g].sum() for g in groups])
            b["power_kw"] = np.array([h.battery["power_kw"][g].sum() for g in groups])
            root = np.sqrt(b["round_trip_efficiency"])
            e0 = b["initial_soc"] * b["capacity_kwh"]
            e = cp.Variable((T, nb), name="battery_kwh")  # stored energy after each step
            gain = self.c @ sp.diags(root * dt) - self.d @ sp.diags(dt / root)
            self.cons += [
                self.c <= np.broadcast_to(b["power_kw"], (T, nb)),
                self.d <= np.broadcast_to(b["power_kw"], (T, nb)),
                e[0] == e0 + gain[0],
                e >= np.broadcast_to(b["soc_min"] * b["capacity_kwh"], (T, nb)),
                e <= np.broadcast_to(b["soc_max"] * b["capacity_kwh"], (T, nb)),
            ]
            if T > 1:
                self.cons.append(e[1:] == e[:-1] + gain[1:])
        if ne:
            home = h.ev_home[:, self.ev]
            eta = h.ev_efficiency[self.ev]
            cap = h.ev_capacity_kwh[self.ev]
            trip = h.ev_trip_kwh[:, self.ev]
            e = cp.Variable((T, ne), name="ev_kwh")  # energy in the car after each step
            gain = self.g @ sp.diags(eta * dt) - trip
            ref = h.ev_reference_kwh()[:, self.ev][1:]
            # the service: at least the uncontrolled energy before each departure and at the end of the day
            leaving = np.zeros((T, ne), dtype=bool)
            leaving[:-1] = home[:-1] & ~home[1:]
            leaving[-1] = True
            floor = np.where(leaving, ref - 1e-9, 0.0)
            self.cons += [
                self.g <= np.broadcast_to(h.ev_charge_kw[self.ev], (T, ne)) * home,
                e[0] == h.ev_initial_kwh[self.ev] + gain[0],
                e <= np.broadcast_to(cap, (T, ne)),
                e >= floor,
            ]
            if T > 1:
                self.cons.append(e[1:] == e[:-1] + gain[1:])

    def net_power(self, h: Homes, matrix=None):
        """Net power of every home (T, n) as an expression, times ``matrix`` (n, k) when given. With aggregated
        batteries a group's power sits at its representative home: valid for a ``matrix`` whose rows depend
        only on a home's bus (the community's sum, the feeder's rows), not per home."""
        M = sp.identity(h.n, format="csr") if matrix is None else sp.csr_matrix(matrix)
        expr = h.net_kw @ M.toarray() if matrix is not None else h.net_kw
        if self.c is not None:
            B = self.Sb @ M
            expr = expr + (self.d - self.c) @ B
        if self.g is not None:
            expr = expr - self.g @ (self.Se @ M)
        return expr

    def schedule(self, h: Homes, objective: float, solver: str) -> Schedule:
        battery = np.zeros((h.n_steps, h.n))
        ev = np.zeros((h.n_steps, h.n))
        if self.c is not None:
            value = self.d.value - self.c.value
            for j, members in enumerate(self.groups):
                battery[:, members] = value[:, j : j + 1] * self.share[j]
        if self.g is not None:
            ev[:, self.ev] = np.maximum(self.g.value, 0.0)
        battery[np.abs(battery) < 1e-9] = 0.0
        ev[ev < 1e-9] = 0.0
        return Schedule(battery, ev, h.net_kw + battery - ev, objective, solver)


def _solve(problem: cp.Problem) -> str:
    problem.solve(solver=SOLVER, canon_backend=cp.SCIPY_CANON_BACKEND, output_flag=False)
    return problem.status


def home_schedules(h: Homes, prices: Prices) -> Schedule:
    """Each home's own optimum against ``prices`` (no sharing between homes, no network limits)."""
    dev = _Devices(h)
    p = dev.net_power(h)
    imp = cp.Variable((h.n_steps, h.n), nonneg=True, name="import_kw")
    dt = h.dt_h
    cost = dt * cp.sum(prices.import_per_kwh @ imp - prices.export_per_kwh @ (p + imp))
    problem = cp.Problem(cp.Minimize(cost), [*dev.cons, imp >= -p])
    status = _solve(problem)
    if status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"the homes' own optimisation ended {status}; device limits alone are always feasible")
    return dev.schedule(h, float(problem.value), SOLVER)


def community_schedule(
    h: Homes, prices: Prices, rows: NetworkRows | None = None, *, aggregate: bool = True
) -> Schedule:
    """The operator's optimum: least community cost within device and (linearised) feeder limits.
    :class:`InfeasibleLimits` when the feeder's rows cannot all hold. ``aggregate`` solves batteries alike up
    to their size as one (:func:`battery_groups`; the same optimum, a smaller problem)."""
    dev = _Devices(h, aggregate=aggregate)
    dt = h.dt_h
    total = dev.net_power(h, np.ones((h.n, 1)))[:, 0]
    imp = cp.Variable(h.n_steps, nonneg=True, name="community_import_kw")
    cost = dt * (prices.import_per_kwh @ imp - prices.export_per_kwh @ (total + imp))
    cons = [*dev.cons, imp >= -total]
    flows = None
    if rows is not None and not rows.empty:
        A_home = rows.A[:, h.bus].T  # (n, R): each home's effect on each row
        flows = dev.net_power(h, A_home)  # (T, R)
        T, R = h.n_steps, len(rows.names)
        cons_rows = [flows >= np.broadcast_to(rows.lower, (T, R)), flows <= np.broadcast_to(rows.upper, (T, R))]
    else:
        cons_rows = []
    problem = cp.Problem(cp.Minimize(cost), cons + cons_rows)
    status = _solve(problem)
    if status in ("optimal", "optimal_inaccurate"):
        return dev.schedule(h, float(problem.value), SOLVER)
    if flows is None or status not in ("infeasible", "infeasible_inaccurate"):
        raise RuntimeError(f"the community optimisation ended {status}")
    raise InfeasibleLimits(_shortfalls(dev, cons, cost, flows, rows, h.n_steps))


def _shortfalls(dev: _Devices, cons: list, cost, flows, rows: NetworkRows, T: int) -> list[LimitShortfall]:
    """Solve again with every feeder row elastic; the rows that had to give, worst first."""
    R = len(rows.names)
    up = cp.Variable((T, R), nonneg=True)
    lo = cp.Variable((T, R), nonneg=True)
    problem = cp.Problem(
        cp.Minimize(cost + _ELASTIC_PENALTY * (cp.sum(up) + cp.sum(lo))),
        [*cons, flows >= np.broadcast_to(rows.lower, (T, R)) - lo, flows <= np.broadcast_to(rows.upper, (T, R)) + up],
    )
    _solve(problem)
    give = np.maximum(up.value, 0) + np.maximum(lo.value, 0)
    out = []
    for r in np.flatnonzero(give.max(axis=0) > 1e-6):
        step = int(np.argmax(give[:, r]))
        out.append(LimitShortfall(rows.names[r], step, float(give[step, r])))
    return sorted(out, key=lambda s: -s.excess)

"""Coalition selection: the least-cost set of offers that meets a contract at its confidence (pure).

Problem. Offer ``j`` (a member at a bus with sensitivity ``s_j``) counts ``a_j = s_j * capacity_kw`` at the
contract's location with forecast-error variance ``w_j = (s_j * capacity_sd_kw)^2`` and costs
``c_j = price_per_kw_h * capacity_kw * duration_h``. With ``x_j`` in {0, 1} (offers are all or nothing) and
independent forecast errors, the coalition's firm capacity at confidence ``c`` is (:mod:`.pooling`)

    F(x) = sum_j a_j x_j - z * sqrt(V(x)),    V(x) = sum_j w_j x_j,    z = Phi^-1(c)

and the selection is ``min c.x  s.t.  F(x) >= capacity_kw``: a knapsack with a square root in it.

Formulation (exact, solved by HiGHS through :func:`scipy.optimize.milp`). Because ``x_j^2 = x_j``, ``V`` is
linear in ``x``; only ``sqrt(V)`` is not. It is replaced by its piecewise-linear interpolant ``g`` through
breakpoints ``b_0 < ... < b_K`` (incremental formulation: ``V = b_0 + sum d_k (b_{k+1} - b_k)`` with
``1 >= d_0 >= y_0 >= d_1 >= ... >= y_{K-2} >= d_{K-1} >= 0`` and binary ``y``). ``sqrt`` is concave, so its
chords lie *below* it: ``g <= sqrt`` and the MILP is a relaxation of the problem (every coalition that meets
the contract is feasible in it, and its optimum is a lower bound). After each solve the chosen coalition is
checked with the exact quantile; if it falls short, its ``V`` becomes a new breakpoint (where ``g`` is then
exact, so that coalition is cut off) and the MILP is solved again (outer approximation). ``V`` takes finitely
many values, so the loop ends, with a coalition that meets the exact quantile and is least-cost within
HiGHS's relative gap ``mip_rel_gap`` (default 1e-4). A contract that no coalition can meet is ``unfilled``:
the coalition with the largest firm capacity and the shortfall are reported (never dropped silently).

Size. HiGHS copes badly with thousands of binary columns that all share one sparsity pattern (measured here:
10,000 offers took ~10 s before its first LP, most of it in parallel-column detection). Before the MILP, the
offers that cannot be in any coalition cheaper than a known one are fixed by Lagrangian bounds, as in the core
algorithms for knapsack problems (Balas and Zemel, Operations Research 28(5), 1980; Pisinger, Operations
Research 45(5), 1997): the range of ``V`` is cut into slices ``[L, R]`` (``sqrt`` grows 10 % per slice); in a
slice the chord of ``sqrt`` on ``[L, R]`` makes the problem a one-row knapsack whose LP bound ``LB`` and reduced
costs ``r_j`` are closed-form (critical-ratio dual). Any coalition in that slice that uses ``j`` against its LP
value costs at least ``LB + |r_j|``; so with an incumbent of cost ``U``, slices with ``LB >= U`` hold nothing
better and ``j`` is fixed wherever ``|r_j| > U - LB`` in every remaining slice. The incumbent is greedy
(cheapest per counted kW first), then improved by the MILP on the offers closest to their LP threshold until
the free offers are few. Only the fixing uses these bounds; the coalition is always HiGHS's.

Forecast errors of different members are taken as independent (the selection's only modelling assumption
beyond the Gaussian); :func:`~testbed.domain.fpp.pooling.firm_capacity_kw` evaluates correlated pools.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from testbed.domain.fpp.contract import Contract
from testbed.domain.fpp.offer import ServiceOffer, offer_problems
from testbed.domain.fpp.pooling import PoolingGain, pooling_gain, z_score

log = logging.getLogger(__name__)

CAPACITY_TOL_KW = 1e-5
"""A coalition meets the contract when its firm capacity is at least ``capacity_kw - CAPACITY_TOL_KW`` [kW]
(HiGHS checks rows to ~1e-6 absolute)."""
SLICE_RATIO = 1.1
"""Growth of sqrt(V) from one slice to the next for the Lagrangian bounds."""
CORE_MAX = 400
"""The MILP is solved on at most this many free offers once the bounds have fixed the rest."""
CORE_START = 150
"""Size of the first heuristic core used to improve the incumbent."""
MAX_OUTER_ITERATIONS = 60


@dataclass(frozen=True)
class Rejected:
    offer_id: str
    reason: str


@dataclass(frozen=True)
class SolverStats:
    milp_solves: int = 0
    breakpoints: int = 0
    """breakpoints of the piecewise-linear sqrt in the last MILP"""
    free_offers: int = 0
    """binary offer columns of the last MILP (after fixing)"""
    fixed_in: int = 0
    """offers fixed into the coalition by the bounds"""
    slices: int = 0
    """V slices whose bound could still hold a cheaper coalition"""


@dataclass(frozen=True)
class Selection:
    """The outcome for one contract. Capacities are counted at the contract's location [kW]."""

    contract_id: str
    status: Literal["filled", "unfilled"]
    members: tuple[str, ...]
    """offer ids of the coalition (when unfilled: of the coalition with the largest firm capacity)"""
    required_kw: float
    firm_kw: float
    """firm capacity of ``members`` at the contract's confidence"""
    shortfall_kw: float
    """``required_kw`` minus the largest firm capacity any coalition reaches (0 when filled)"""
    mean_kw: float
    sd_kw: float
    cost: float
    """sum of the members' costs [currency]"""
    cost_lower_bound: float
    """no coalition meeting the contract costs less [currency] (from the bounds and the last MILP's dual bound;
    NaN when unfilled)"""
    revenue: float
    """availability revenue of the contract [currency]"""
    pooling: PoolingGain
    """the members' firm capacity pooled against the sum of their own (uncertainty reduction)"""
    rejected: tuple[Rejected, ...] = ()
    stats: SolverStats = field(default_factory=SolverStats)

    @property
    def surplus(self) -> float:
        """Availability revenue minus the members' costs [currency]; what the members share."""
        return self.revenue - self.cost


def eligible_offers(contract: Contract, offers: Sequence[ServiceOffer]) -> tuple[list[ServiceOffer], list[Rejected]]:
    """Offers that may take part, and the others with the reason. One offer per member (the first); an id
    sent again with the same content is the same offer, with other content it is rejected."""
    kept: list[ServiceOffer] = []
    rejected: list[Rejected] = []
    by_id: dict[str, ServiceOffer] = {}
    members: set[str] = set()
    for o in offers:
        if o.id in by_id:
            if o != by_id[o.id]:
                rejected.append(Rejected(o.id, "an offer with this id and other content was received first"))
            continue
        by_id[o.id] = o
        problems = offer_problems(o, {contract.id: contract})
        if problems:
            rejected.append(Rejected(o.id, "; ".join(problems)))
        elif o.member in members:
            rejected.append(Rejected(o.id, f"member {o.member!r} already offered for this contract"))
        else:
            members.add(o.member)
            kept.append(o)
    return kept, rejected


def offer_arrays(contract: Contract, offers: Sequence[ServiceOffer]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a_kw, w_kw2, cost)``: counted mean, counted variance and cost of each offer."""
    s = np.array([contract.sensitivity_at(o.bus) for o in offers], dtype=float)
    a = s * np.array([o.capacity_kw for o in offers], dtype=float)
    w = (s * np.array([o.capacity_sd_kw for o in offers], dtype=float)) ** 2
    c = np.array([o.cost(contract) for o in offers], dtype=float)
    return a, w, c


def select_coalition(contract: Contract, offers: Sequence[ServiceOffer], *, mip_rel_gap: float = 1e-4) -> Selection:
    """The least-cost coalition of ``offers`` meeting ``contract`` (see the module docstring)."""
    kept, rejected = eligible_offers(contract, offers)
    a, w, c = offer_arrays(contract, kept)
    z = z_score(contract.confidence)
    need = contract.capacity_kw
    f_max, best = max_firm_coalition(a, w, z)
    if f_max < need - CAPACITY_TOL_KW:
        return _result(contract, kept, rejected, best, "unfilled", need - f_max, a, w, c, z,
                       lower_bound=math.inf, stats=SolverStats())
    x, lower, stats = least_cost(a, w, c, z, need, mip_rel_gap=mip_rel_gap)
    return _result(contract, kept, rejected, np.flatnonzero(x), "filled", 0.0, a, w, c, z, lower, stats)


def _result(contract: Contract, kept: list[ServiceOffer], rejected: list[Rejected], idx: np.ndarray, status: str,
            shortfall: float, a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, lower_bound: float,
            stats: SolverStats) -> Selection:
    idx = np.sort(np.asarray(idx, dtype=int))
    mean, var = float(a[idx].sum()), float(w[idx].sum())
    return Selection(
        contract_id=contract.id, status=status, members=tuple(kept[i].id for i in idx),
        required_kw=contract.capacity_kw, firm_kw=mean - z * math.sqrt(var), shortfall_kw=max(shortfall, 0.0),
        mean_kw=mean, sd_kw=math.sqrt(var), cost=float(c[idx].sum()),
        cost_lower_bound=min(float(lower_bound), float(c[idx].sum())) if status == "filled" else math.nan,
        revenue=contract.availability_revenue,
        pooling=pooling_gain(a[idx], np.sqrt(w[idx]), contract.confidence), rejected=tuple(rejected), stats=stats,
    )


def firm_kw(a: np.ndarray, w: np.ndarray, z: float, x: np.ndarray) -> float:
    """Exact firm capacity of the coalition ``x`` (0/1 vector) [kW]."""
    return float(a @ x - z * math.sqrt(max(float(w @ x), 0.0)))


def max_firm_coalition(a: np.ndarray, w: np.ndarray, z: float) -> tuple[float, np.ndarray]:
    """The largest firm capacity any coalition reaches, and one coalition reaching it (indices).

    Exact and closed-form: the tangent of sqrt at ``V0`` lies above it, so for any coalition ``x``,
    ``F(x) <= max_y [a.y - z*t_V0(w.y)]`` at ``V0 = V(x)``, a separable problem solved by taking every offer
    with ``w_j / a_j`` below a threshold; and such a set ``P`` has ``F(P)`` at least that value. So the best
    coalition is a prefix of the offers sorted by ``w_j / a_j`` (only offers with ``a_j > 0``).
    """
    pos = np.flatnonzero(a > 0)
    if pos.size == 0:
        return 0.0, np.zeros(0, dtype=int)
    order = pos[np.argsort(w[pos] / a[pos], kind="stable")]
    f = np.cumsum(a[order]) - z * np.sqrt(np.cumsum(w[order]))
    k = int(np.argmax(f))
    return (float(f[k]), order[: k + 1]) if f[k] > 0 else (0.0, np.zeros(0, dtype=int))


def least_cost(a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, need_kw: float, *,
               mip_rel_gap: float = 1e-4) -> tuple[np.ndarray, float, SolverStats]:
    """``(x, lower_bound, stats)``: the least-cost 0/1 vector with ``F(x) >= need_kw`` (which must exist)."""
    n = a.size
    x_inc = _greedy(a, w, c, z, need_kw)
    if x_inc is None:  # greedy by cost per kW can miss; the max-firm coalition cannot
        x_inc = np.zeros(n)
        x_inc[max_firm_coalition(a, w, z)[1]] = 1.0
    upper = float(c @ x_inc)
    bounds = _SliceBounds(a, w, c, z, need_kw, upper)
    solves = 0
    k_core = CORE_START
    while True:
        margin = mip_rel_gap * upper
        free, fixed_in, span = bounds.fixing(upper - margin)
        if free is None:  # no slice can hold a coalition cheaper than the incumbent by more than the gap
            return x_inc, upper - margin, SolverStats(milp_solves=solves)
        if free.size <= CORE_MAX or k_core >= n:
            break
        core, ones = bounds.heuristic_core(k_core)
        x, _, it, _ = _outer_approximation(a, w, c, z, need_kw, core, ones, bounds.breakpoints(span), mip_rel_gap)
        solves += it
        if x is not None and float(c @ x) < upper:
            x_inc, upper = x, float(c @ x)
        k_core *= 4
    x, lower, it, n_bp = _outer_approximation(a, w, c, z, need_kw, free, fixed_in, bounds.breakpoints(span),
                                              mip_rel_gap)
    solves += it
    lower = min(lower, upper - margin)  # the MILP only saw coalitions cheaper than that; the others cost more
    stats = SolverStats(milp_solves=solves, breakpoints=n_bp, free_offers=int(free.size),
                        fixed_in=int(fixed_in.size), slices=int(span[1] - span[0]))
    if x is not None and float(c @ x) < upper:
        return x, lower, stats
    return x_inc, min(lower, upper), stats


def _greedy(a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, need: float) -> np.ndarray | None:
    """Cheapest per counted kW first until the exact quantile is met, then drop members (dearest first)
    while it still is."""
    pos = np.flatnonzero(a > 0)
    order = pos[np.argsort(c[pos] / a[pos], kind="stable")]
    f = np.cumsum(a[order]) - z * np.sqrt(np.cumsum(w[order]))
    hit = np.flatnonzero(f >= need)
    if hit.size == 0:
        return None
    chosen = order[: hit[0] + 1]
    x = np.zeros(a.size)
    x[chosen] = 1.0
    sum_a, sum_w = float(a @ x), float(w @ x)
    for j in chosen[np.argsort(-c[chosen], kind="stable")]:
        if sum_a - a[j] - z * math.sqrt(max(sum_w - w[j], 0.0)) >= need:
            x[j] = 0.0
            sum_a -= a[j]
            sum_w -= w[j]
    return x


class _SliceBounds:
    """Lagrangian lower bounds and reduced costs of the problem restricted to slices of V (module docstring)."""

    def __init__(self, a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, need: float, upper: float) -> None:
        self.a, self.w, self.c, self.z, self.need = a, w, c, z, need
        total = float(w.sum())
        positive = w[w > 0]
        if total <= 0:
            self.edges = np.array([0.0, 0.0])
        else:
            lo = max(float(positive.min()), total * 1e-8)
            count = max(1, math.ceil(math.log(math.sqrt(total / lo)) / math.log(SLICE_RATIO)))
            self.edges = np.concatenate([[0.0], lo * SLICE_RATIO ** (2.0 * np.arange(count + 1))])
            self.edges[-1] = max(self.edges[-1], total)
        live = self._cheap_screen(upper)
        self.index = np.flatnonzero(live)
        self.lower = np.full(self.edges.size - 1, math.inf)
        self.rc = np.zeros((self.index.size, a.size))
        if self.index.size:
            self.lower[self.index], self.rc = self._lagrangian(self.index)

    def _cheap_screen(self, upper: float) -> np.ndarray:
        """Slices that may hold a coalition meeting the contract for less than ``upper``: V >= L needs
        ``a.x >= need + z*sqrt(L)`` (a fractional knapsack bound, increasing in L), and V <= R caps ``a.x``
        by the best fractional fill of ``w.x <= R``."""
        a, w, c, z = self.a, self.w, self.c, self.z
        lo, hi = self.edges[:-1], self.edges[1:]
        pos = np.flatnonzero(a > 0)
        by_cost = pos[np.argsort(c[pos] / a[pos], kind="stable")]
        cum_a, cum_c = np.cumsum(a[by_cost]), np.cumsum(c[by_cost])
        req = self.need + z * np.sqrt(lo)
        j = np.searchsorted(cum_a, req)
        ok = j < by_cost.size
        jj = np.minimum(j, max(by_cost.size - 1, 0))
        before_a = np.where(jj > 0, cum_a[jj - 1], 0.0)
        before_c = np.where(jj > 0, cum_c[jj - 1], 0.0)
        crit = by_cost[jj] if by_cost.size else np.zeros_like(jj)
        cheap = np.where(ok, before_c + (req - before_a) * c[crit] / np.where(a[crit] > 0, a[crit], 1.0), math.inf)
        with np.errstate(divide="ignore"):
            dens = np.where(w[pos] > 0, a[pos] / np.where(w[pos] > 0, w[pos], 1.0), math.inf)
        by_dens = pos[np.argsort(-dens, kind="stable")]
        zero_w = float(a[by_dens][w[by_dens] == 0].sum())
        wd = by_dens[w[by_dens] > 0]
        cum_w, cum_aw = np.cumsum(w[wd]), np.cumsum(a[wd])
        k = np.searchsorted(cum_w, hi, side="right")
        kk = np.minimum(k, max(wd.size - 1, 0))
        filled = np.where(k > 0, cum_aw[np.maximum(k - 1, 0)] if wd.size else 0.0, 0.0)
        room = hi - np.where(k > 0, cum_w[np.maximum(k - 1, 0)] if wd.size else 0.0, 0.0)
        partial = np.where(k < wd.size, room * (a[wd[kk]] / w[wd[kk]] if wd.size else 0.0), 0.0)
        a_max = zero_w + filled + partial
        return (cheap < upper) & (a_max - z * np.sqrt(lo) >= self.need - CAPACITY_TOL_KW)

    def _lagrangian(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LP bound and reduced costs of each slice: ``min c.x`` s.t. ``(a - z*k*w).x >= need + z*(sqrt(L) - k*L)``
        with ``k`` the slope of the chord of sqrt on ``[L, R]``, ``0 <= x <= 1``."""
        a, w, c, z = self.a, self.w, self.c, self.z
        lo, hi = self.edges[index], self.edges[index + 1]
        slope = np.where(hi > lo, (np.sqrt(hi) - np.sqrt(lo)) / np.where(hi > lo, hi - lo, 1.0), 0.0)
        gain = a[None, :] - z * slope[:, None] * w[None, :]
        req = self.need + z * (np.sqrt(lo) - slope * lo)
        useful = gain > 0
        ratio = np.where(useful, c[None, :] / np.where(useful, gain, 1.0), math.inf)
        order = np.argsort(ratio, axis=1, kind="stable")
        cum = np.cumsum(np.take_along_axis(np.where(useful, gain, 0.0), order, axis=1), axis=1)
        j = (cum < req[:, None] - 1e-12).sum(axis=1)
        feasible = j < a.size
        rows = np.arange(index.size)
        lam = np.where(feasible, np.take_along_axis(ratio, order, axis=1)[rows, np.minimum(j, a.size - 1)], 0.0)
        rc = c[None, :] - lam[:, None] * gain
        lower = np.where(feasible, lam * req + np.minimum(rc, 0.0).sum(axis=1), math.inf)
        return lower, rc

    def fixing(self, threshold: float) -> tuple[np.ndarray | None, np.ndarray, tuple[int, int]]:
        """Offers still free, offers fixed into the coalition, and the span of slices (first, last + 1)
        that can hold a coalition cheaper than ``threshold``; ``free`` is None when none can."""
        live = self.lower[self.index] < threshold
        if not live.any():
            return None, np.zeros(0, dtype=int), (0, 0)
        rc, room = self.rc[live], (threshold - self.lower[self.index][live])[:, None]
        zero = (rc > room).all(axis=0)
        one = (-rc > room).all(axis=0) & (self.a > 0)
        free = np.flatnonzero(~zero & ~one & (self.a > 0))
        slices = self.index[live]
        return free, np.flatnonzero(one), (int(slices.min()), int(slices.max()) + 1)

    def heuristic_core(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``size`` offers nearest their LP threshold in the best slice free, the others at its LP value."""
        best = int(np.argmin(self.lower[self.index]))
        rc = self.rc[best]
        order = np.argsort(np.abs(rc), kind="stable")
        core = order[:size][self.a[order[:size]] > 0]
        ones = np.setdiff1d(np.flatnonzero((rc < 0) & (self.a > 0)), core)
        return core, ones

    def breakpoints(self, span: tuple[int, int]) -> np.ndarray:
        """Breakpoints of sqrt over the slices ``span``, each slice cut in three (sqrt grows ~3 % per piece)."""
        first, last = span
        b = self.edges[first: last + 1]
        if b[-1] <= b[0]:
            return b[:1]
        pieces = [np.linspace(np.sqrt(lo), np.sqrt(hi), 4)[:-1] ** 2 for lo, hi in zip(b[:-1], b[1:], strict=True)]
        return np.unique(np.concatenate([*pieces, b[-1:]]))


def _outer_approximation(a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, need: float, free: np.ndarray,
                         fixed_in: np.ndarray, breakpoints: np.ndarray, mip_rel_gap: float,
                         ) -> tuple[np.ndarray | None, float, int, int]:
    """Solve the relaxed MILP, check the exact quantile, add the coalition's V as a breakpoint, repeat.

    Returns ``(x, lower_bound, solves, breakpoints)``; ``x`` is None when the restricted problem has no
    coalition (possible for a heuristic core)."""
    b = np.unique(np.asarray(breakpoints, dtype=float))
    lower = -math.inf
    for it in range(1, MAX_OUTER_ITERATIONS + 1):
        sol = _pwl_milp(a[free], w[free], c[free], z, need, b, a[fixed_in].sum(), w[fixed_in].sum(),
                        float(c[fixed_in].sum()), mip_rel_gap)
        if sol is None:
            return None, math.inf, it, b.size
        chosen, bound = sol
        lower = bound
        x = np.zeros(a.size)
        x[fixed_in] = 1.0
        x[free[chosen]] = 1.0
        v = float(w @ x)
        if firm_kw(a, w, z, x) >= need - CAPACITY_TOL_KW:
            return x, lower, it, b.size
        if np.isclose(b, v, rtol=1e-12, atol=0.0).any():
            log.warning("outer approximation stalled at V=%g (firm %.9g kW for %.9g kW)", v, firm_kw(a, w, z, x), need)
            return None, lower, it, b.size
        b = np.unique(np.append(b, v))
    log.warning("outer approximation did not converge in %d MILPs", MAX_OUTER_ITERATIONS)
    return None, lower, MAX_OUTER_ITERATIONS, b.size


def _pwl_milp(a: np.ndarray, w: np.ndarray, c: np.ndarray, z: float, need: float, b: np.ndarray, a0: float,
              w0: float, c0: float, mip_rel_gap: float) -> tuple[np.ndarray, float] | None:
    """``min c0 + c.x`` s.t. ``a0 + a.x - z*g(w0 + w.x) >= need`` with ``g`` the interpolant of sqrt at ``b``
    (``V`` within ``[b_0, b_K]``). The fixed-in offers are one column held at 1 so that HiGHS's gap is relative
    to the whole cost. Returns the chosen free offers (0/1) and HiGHS's dual bound, or None if infeasible."""
    from scipy import sparse  # scipy.optimize costs ~1 s to import: only when a selection is solved
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = a.size
    k = b.size - 1
    y = max(k - 1, 0)
    nv = n + 1 + k + y  # offers, the fixed-in column, increments d, order binaries y
    root = np.sqrt(b)
    rows = [np.full(n + 1 + k, 1), np.arange(y) * 2 + 2, np.arange(y) * 2 + 2, np.arange(y) * 2 + 3,
            np.arange(y) * 2 + 3]
    cols = [np.concatenate([np.arange(n + 1), n + 1 + np.arange(k)]), n + 1 + np.arange(1, k), n + 1 + k + np.arange(y),
            n + 1 + k + np.arange(y), n + 1 + np.arange(y)]
    vals = [np.concatenate([a, [a0], -z * np.diff(root)]), np.ones(y), -np.ones(y), np.ones(y), -np.ones(y)]
    lo = [-math.inf, need + z * root[0], *([-math.inf] * (2 * y))]
    hi = [math.inf, math.inf, *([0.0] * (2 * y))]
    if k > 0:  # V row: w.x + w0 - sum d (b_{k+1} - b_k) = b_0
        rows.insert(0, np.zeros(n + 1 + k, dtype=int))
        cols.insert(0, np.concatenate([np.arange(n + 1), n + 1 + np.arange(k)]))
        vals.insert(0, np.concatenate([w, [w0], -np.diff(b)]))
        lo[0] = hi[0] = b[0]
    else:  # no uncertainty range left: V is the constant b_0 (or 0)
        lo[0], hi[0] = -math.inf, math.inf
        if w.size and (w > 0).any():
            raise ValueError("a single breakpoint needs offers without uncertainty")
    matrix = sparse.csr_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(2 + 2 * y, nv))
    cost = np.concatenate([c, [c0], np.zeros(k + y)])
    integrality = np.concatenate([np.ones(n), [0], np.zeros(k), np.ones(y)])
    lower_b = np.zeros(nv)
    lower_b[n] = 1.0
    res = milp(cost, constraints=LinearConstraint(matrix, lo, hi), integrality=integrality,
               bounds=Bounds(lower_b, np.ones(nv)), options={"mip_rel_gap": mip_rel_gap})
    if res.x is None:
        return None
    bound = float(getattr(res, "mip_dual_bound", res.fun) if res.status == 0 else -math.inf)
    return np.flatnonzero(res.x[:n] > 0.5), bound

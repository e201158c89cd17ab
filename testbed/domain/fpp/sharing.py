"""Fair sharing of a coalition's value: Shapley, nucleolus, least core, proportional; core checks (pure).

Definitions (Maschler, Solan and Zamir, *Game Theory*, Cambridge University Press 2013, ch. 17-20; Shapley,
"A value for n-person games", 1953; Schmeidler, "The nucleolus of a characteristic function game", SIAM J.
Appl. Math. 17, 1969). For an allocation ``x`` with ``sum(x) = v(N)``, the *excess* of a coalition is
``e(S, x) = v(S) - x(S)``: how much ``S`` would gain by leaving.

- Shapley value: each player's marginal contribution ``v(S + i) - v(S)`` averaged over all orders in which
  the players can join. Exact from the table of all ``2^n`` values (fine to ~20 players); beyond that,
  estimated from ``samples`` random orders (Castro, Gomez and Tejada, "Polynomial calculation of the Shapley
  value based on sampling", Computers & Operations Research 36(5), 2009), with the standard error of each
  estimate (the standard deviation of its marginal contributions over the orders, divided by sqrt(samples))
  and the seed that makes it repeatable. Every sampled allocation still adds up to ``v(N)`` exactly.
- Least core: the allocations minimising the largest excess ``e*`` over all proper coalitions; one linear
  programme (HiGHS). The core (no coalition gains by leaving) is non-empty exactly when ``e* <= 0``. The
  least core is a set; the point returned is the one HiGHS's simplex ends at.
- Nucleolus: the allocation that minimises the largest excess, then the next largest, and so on
  (lexicographically); a sequence of linear programmes (HiGHS): after each, the coalitions whose dual value
  is positive are tight in every optimal solution and are fixed at that level, coalitions whose vector is
  in the span of the fixed ones drop out, until the fixed ones determine the allocation (at most ``n``
  programmes). It is taken over the imputations (``x_i >= v({i})``); when there are none
  (``sum_i v({i}) > v(N)``) the *prenucleolus* (over all efficient allocations) is returned and said so.
  It lies in the core whenever the core is non-empty.
- Proportional: ``v(N)`` split in proportion to weights (a contract's members by counted capacity; a game
  file's players by given weights or their stand-alone values): the naive baseline.

:func:`stability` says whether an allocation is efficient, in the core (largest excess and the coalition
that has it) and individually rational (nobody below its stand-alone value ``v({i})``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from testbed.domain.errors import UserError
from testbed.domain.fpp.games import MAX_TABLE_PLAYERS, Game, subset_sums

METHODS = ("shapley", "nucleolus", "least-core", "proportional")
MAX_LP_PLAYERS = 16
"""Nucleolus and least core write one LP row per coalition: 65,534 rows at 16 players."""
SAMPLE_ENTRIES_PER_BATCH = 2_000_000
"""Sampled Shapley evaluates orders in batches of about this many marginal contributions."""


@dataclass(frozen=True)
class Allocation:
    """How ``v(N)`` is split; ``shares[i]`` goes to ``players[i]`` [currency]."""

    method: str
    players: tuple[str, ...]
    shares: tuple[float, ...]
    standard_error: tuple[float, ...] | None = None
    """sampled Shapley only: standard error of each share"""
    samples: int | None = None
    seed: int | None = None
    max_excess: float | None = None
    """least core and nucleolus: the smallest possible largest excess e* (core non-empty iff e* <= 0)"""
    note: str = ""

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.players, self.shares, strict=True))


@dataclass(frozen=True)
class Stability:
    efficient: bool
    """the shares add up to v(N)"""
    in_core: bool | None
    """no coalition gains by leaving (None when the game is too large to check every coalition)"""
    max_excess: float | None
    """largest v(S) - x(S) over the proper coalitions"""
    worst_coalition: tuple[str, ...] | None
    individually_rational: bool
    below_standalone: tuple[str, ...]
    """players whose share is below v({i})"""


def shapley(game: Game) -> Allocation:
    """Exact Shapley value from the table of all coalition values."""
    v = game.table()
    n = game.n
    size = subset_sums(np.ones(n)).astype(np.int64)
    weight = np.array([1.0 / (n * math.comb(n - 1, s)) for s in range(n)])
    phi = []
    for i in range(n):
        t = v.reshape(-1, 2, 1 << i)  # axis 1 is bit i: [coalitions without i, with i]
        s = size.reshape(-1, 2, 1 << i)[:, 0, :]
        phi.append(float((weight[s] * (t[:, 1, :] - t[:, 0, :])).sum()))
    return Allocation("shapley", game.players, tuple(phi))


def shapley_sampled(game: Game, samples: int, seed: int = 0) -> Allocation:
    """Shapley value estimated from ``samples`` random orders drawn with ``seed`` (module docstring)."""
    if samples < 2:
        raise UserError("sampled Shapley needs at least 2 samples", [f"samples: got {samples}"])
    n = game.n
    rng = np.random.default_rng(seed)
    batch = max(1, min(samples, SAMPLE_ENTRIES_PER_BATCH // max(n, 1)))
    total = np.zeros(n)
    total_sq = np.zeros(n)
    done = 0
    while done < samples:
        b = min(batch, samples - done)
        orders = np.argsort(rng.random((b, n)), axis=1)
        marginal = np.diff(game.prefix_values(orders), axis=1)
        phi = np.empty_like(marginal)
        np.put_along_axis(phi, orders, marginal, axis=1)
        total += phi.sum(axis=0)
        total_sq += (phi * phi).sum(axis=0)
        done += b
    mean = total / samples
    var = np.maximum(total_sq - samples * mean * mean, 0.0) / (samples - 1)
    return Allocation("shapley", game.players, tuple(mean.tolist()),
                      standard_error=tuple(np.sqrt(var / samples).tolist()), samples=samples, seed=seed,
                      note=f"sampled from {samples} random orders (seed {seed})")


def _check_lp_size(game: Game, method: str) -> None:
    if game.n > MAX_LP_PLAYERS:
        raise UserError(f"the {method} of {game.n} players needs one LP row per coalition (2^{game.n}); "
                        f"at most {MAX_LP_PLAYERS} players", [])


def _excess_lp(n: int, members: np.ndarray, values: np.ndarray, v_grand: float, free: np.ndarray,
               fixed: list[tuple[int, float]], lower: np.ndarray | None):
    """``max eps`` s.t. ``x(S) >= v(S) + eps`` for the free coalitions, ``x(S) = v(S) + level`` for the fixed
    ones, ``x(N) = v(N)`` and ``x >= lower`` (if given). Variables ``[x_0 .. x_{n-1}, eps]``."""
    from scipy import sparse  # scipy.optimize costs ~1 s to import: only when an LP is solved
    from scipy.optimize import linprog

    rows = members[free]
    a_ub = sparse.hstack([-sparse.csr_array(rows), np.ones((rows.shape[0], 1))], format="csr")
    eq = [np.append(np.ones(n), 0.0)] + [np.append(members[r], 0.0) for r, _ in fixed]
    b_eq = [v_grand] + [values[r] + level for r, level in fixed]
    bounds = [(None if lower is None else lower[i], None) for i in range(n)] + [(None, None)]
    res = linprog(np.append(np.zeros(n), -1.0), A_ub=a_ub, b_ub=-values[free], A_eq=np.array(eq), b_eq=b_eq,
                  bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"excess LP failed: {res.message}")
    return res


def _coalitions(game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Membership rows and values of the proper non-empty coalitions (masks 1 .. 2^n - 2)."""
    n = game.n
    masks = np.arange(1, (1 << n) - 1, dtype=np.int64)
    members = ((masks[:, None] >> np.arange(n)) & 1).astype(float)
    return members, game.table()[masks]


def least_core(game: Game) -> Allocation:
    """A point of the least core and its value ``e*`` (module docstring)."""
    _check_lp_size(game, "least core")
    if game.n == 1:
        return Allocation("least-core", game.players, (game.grand_value,), max_excess=None)
    members, values = _coalitions(game)
    res = _excess_lp(game.n, members, values, game.grand_value, np.ones(len(values), bool), [], None)
    return Allocation("least-core", game.players, tuple(res.x[:-1].tolist()), max_excess=-float(res.x[-1]))


def nucleolus(game: Game) -> Allocation:
    """The nucleolus (or the prenucleolus when there are no imputations), by sequential LPs."""
    _check_lp_size(game, "nucleolus")
    n = game.n
    if n == 1:
        return Allocation("nucleolus", game.players, (game.grand_value,))
    singles = game.singleton_values()
    imputations = singles.sum() <= game.grand_value + 1e-9 * max(1.0, abs(game.grand_value))
    members, values = _coalitions(game)
    free = np.ones(len(values), dtype=bool)
    fixed: list[tuple[int, float]] = []
    first_excess = None
    x = np.zeros(n)
    for _ in range(n + 1):
        res = _excess_lp(n, members, values, game.grand_value, free, fixed, singles if imputations else None)
        eps = float(res.x[-1])
        first_excess = -eps if first_excess is None else first_excess
        x = res.x[:n]
        rows = np.flatnonzero(free)
        duals = np.asarray(res.ineqlin.marginals)
        tight = rows[duals < -1e-9]
        if tight.size == 0:
            tight = rows[[int(np.argmin(duals))]]
        fixed += [(int(r), eps) for r in tight]
        free[tight] = False
        basis = np.vstack([np.ones(n), members[[r for r, _ in fixed]]])
        _, sv, vt = np.linalg.svd(basis, full_matrices=False)
        span = vt[: int((sv > 1e-9 * sv[0]).sum())]
        if span.shape[0] >= n or not free.any():
            break
        rest = np.flatnonzero(free)
        residual = members[rest] - (members[rest] @ span.T) @ span
        free[rest[np.linalg.norm(residual, axis=1) < 1e-9]] = False
        if not free.any():
            break
    method = "nucleolus" if imputations else "prenucleolus"
    note = "" if imputations else (f"no imputation exists (stand-alone values add up to {singles.sum():g} > "
                                   f"v(N) = {game.grand_value:g}): this is the prenucleolus")
    return Allocation(method, game.players, tuple(x.tolist()), max_excess=first_excess, note=note)


def proportional(game: Game, weights: np.ndarray | dict[str, float] | None = None) -> Allocation:
    """``v(N)`` in proportion to ``weights`` (default: :meth:`Game.default_weights`)."""
    if isinstance(weights, dict):
        weights = np.array([weights[p] for p in game.players], dtype=float)
    w = game.default_weights() if weights is None else np.asarray(weights, dtype=float)
    if (w < 0).any() or not w.sum() > 0:
        raise UserError("proportional shares need weights >= 0 with a positive sum",
                        [f"weights: {dict(zip(game.players, w.tolist(), strict=True))}"])
    what = "given weights" if weights is not None else game.default_weights_name
    return Allocation("proportional", game.players, tuple((game.grand_value * w / w.sum()).tolist()),
                      note=f"in proportion to {what}")


def stability(game: Game, shares: tuple[float, ...] | np.ndarray, tol: float | None = None) -> Stability:
    """Efficiency, core membership and individual rationality of ``shares`` (module docstring)."""
    x = np.asarray(shares, dtype=float)
    tol = 1e-7 * max(1.0, abs(game.grand_value)) if tol is None else tol
    efficient = abs(x.sum() - game.grand_value) <= tol
    below = tuple(p for p, xi, vi in zip(game.players, x, game.singleton_values(), strict=True) if xi < vi - tol)
    if game.n > MAX_TABLE_PLAYERS or game.n < 2:
        return Stability(efficient, efficient if game.n < 2 else None, None, None, not below, below)
    excess = game.table()[1:-1] - subset_sums(x)[1:-1]
    k = int(np.argmax(excess))
    worst = tuple(game.players[i] for i in range(game.n) if (k + 1) >> i & 1)
    max_excess = float(excess[k])
    return Stability(efficient, efficient and max_excess <= tol, max_excess, worst, not below, below)


def share(game: Game, method: str, *, samples: int | None = None, seed: int = 0,
          weights: np.ndarray | dict[str, float] | None = None) -> Allocation:
    """Split ``v(N)`` by ``method`` (one of :data:`METHODS`); Shapley is sampled when ``samples`` is given."""
    if method == "shapley":
        return shapley_sampled(game, samples, seed) if samples is not None else shapley(game)
    if samples is not None:
        raise UserError(f"--samples applies to shapley only, not {method}", [])
    if method == "nucleolus":
        return nucleolus(game)
    if method == "least-core":
        return least_core(game)
    if method == "proportional":
        return proportional(game, weights)
    raise UserError(f"unknown sharing method {method!r}", [f"use one of {', '.join(METHODS)}"])

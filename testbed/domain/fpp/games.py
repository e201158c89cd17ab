"""Cooperative games (transferable utility): coalition values given as a table or derived from a contract.

A game has players ``0..n-1`` (named by ``players``); a coalition is a bitmask (bit ``i`` set when player
``i`` is in it) and ``v`` gives its value [currency]; ``v(empty) = 0``.

- :class:`TableGame`: every coalition's value given explicitly (a research user's game file, read by
  :func:`parse_game`). Missing coalitions are an error, never 0.
- :class:`ContractGame`: the characteristic function of a contract's coalition, from the contract and the
  members' offers. A coalition ``S`` is worth what the contract would pay it for the capacity it can promise
  firmly on its own, less its members' costs of taking part, or nothing if that is a loss (it can decline):

      v(S) = max(0, pay(F(S)) - sum_{i in S} cost_i),   v(empty) = 0
      F(S) = sum_{i in S} a_i - z * sqrt(sum_{i in S} w_i)         (firm capacity, :mod:`.pooling`)

  where ``pay(F)`` is the availability payment ``R = availability_price_per_kw_h * capacity_kw * duration_h``
  under the contract's own penalty rule for a coalition that delivers ``F`` of the ``C = capacity_kw``
  dispatched over the whole window (performance factor ``pf = min(max(F, 0), C) / C``): ``R * pf``
  (pro_rata), ``R`` if ``pf >= pf_threshold`` else 0 (threshold), ``R - penalty_price_per_kwh * (1 - pf) * C *
  duration_h`` (per_kwh). ``a_i`` is the member's counted mean capacity, ``w_i`` its counted forecast-error
  variance, ``cost_i`` its cost (its ask times its capacity times the window). ``v(N)`` of the selected
  coalition is its surplus (revenue minus costs). Pooling shows up as superadditivity (``sqrt`` is
  subadditive); firm capacity beyond ``C`` earns nothing, which can leave the core empty when the coalition
  over-covers the contract. ``v`` assumes every member of ``S`` takes part (the best sub-team of every
  coalition would need a selection per coalition). Utilisation payments and penalties for actual delivery are
  not in ``v``: they follow each member's own delivery (:mod:`.settlement`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from testbed.domain.errors import UserError
from testbed.domain.fpp.contract import Contract
from testbed.domain.fpp.offer import ServiceOffer
from testbed.domain.fpp.pooling import z_score

MAX_TABLE_PLAYERS = 22
"""A table of every coalition's value holds 2^n numbers: 4 million at 22 players."""
MAX_FILE_PLAYERS = 20
"""A game file lists every coalition: at most 2^20 - 1 of them."""


def subset_sums(x: np.ndarray) -> np.ndarray:
    """``out[mask] = sum of x[i] over the bits i of mask``, for every mask of ``len(x)`` bits."""
    out = np.zeros(1)
    for xi in np.asarray(x, dtype=float):
        out = np.concatenate([out, out + xi])
    return out


class Game:
    """A TU game: ``players`` and the value of coalitions (subclasses say how)."""

    players: tuple[str, ...]
    default_weights_name = "stand-alone values v({i})"

    @property
    def n(self) -> int:
        return len(self.players)

    def table(self) -> np.ndarray:
        """Values of all ``2^n`` coalitions indexed by bitmask (only for up to :data:`MAX_TABLE_PLAYERS`)."""
        raise NotImplementedError

    def prefix_values(self, orders: np.ndarray) -> np.ndarray:
        """For each row of ``orders`` (a permutation of the players), the values of its ``n + 1`` prefixes."""
        raise NotImplementedError

    def singleton_values(self) -> np.ndarray:
        """``v({i})`` for each player."""
        raise NotImplementedError

    def default_weights(self) -> np.ndarray:
        """Weights of the proportional rule when none are given: the players' stand-alone values (a contract
        game uses the members' counted capacities)."""
        return self.singleton_values()

    @property
    def grand_value(self) -> float:
        """``v(N)``."""
        raise NotImplementedError

    def value(self, members: Iterable[str]) -> float:
        """Value of the coalition of the named players."""
        index = {p: i for i, p in enumerate(self.players)}
        order = [index[m] for m in members]
        rest = [i for i in range(self.n) if i not in set(order)]
        return float(self.prefix_values(np.array([order + rest]))[0, len(order)])

    def _check_table_size(self) -> None:
        if self.n > MAX_TABLE_PLAYERS:
            raise UserError(f"the game has {self.n} players: listing all 2^{self.n} coalitions is too much "
                            f"(at most {MAX_TABLE_PLAYERS}); use sampled Shapley values")


class TableGame(Game):
    """A game given by the value of every coalition (``values[mask]``, ``values[0] == 0``)."""

    def __init__(self, players: Sequence[str], values: np.ndarray) -> None:
        self.players = tuple(players)
        self._check_table_size()
        self.values = np.asarray(values, dtype=float)
        if self.values.shape != (1 << self.n,):
            raise ValueError(f"need 2^{self.n} values, got {self.values.shape}")

    def table(self) -> np.ndarray:
        return self.values

    def prefix_values(self, orders: np.ndarray) -> np.ndarray:
        bits = np.left_shift(np.int64(1), np.asarray(orders, dtype=np.int64))
        masks = np.concatenate([np.zeros((bits.shape[0], 1), dtype=np.int64), np.cumsum(bits, axis=1)], axis=1)
        return self.values[masks]

    def singleton_values(self) -> np.ndarray:
        return self.values[1 << np.arange(self.n)]

    @property
    def grand_value(self) -> float:
        return float(self.values[-1])


class ContractGame(Game):
    """The characteristic function of a contract's coalition (module docstring)."""

    def __init__(self, players: Sequence[str], mean_kw: np.ndarray, var_kw2: np.ndarray, cost: np.ndarray, *,
                 contract: Contract) -> None:
        self.players = tuple(players)
        self.mean_kw = np.asarray(mean_kw, dtype=float)
        self.var_kw2 = np.asarray(var_kw2, dtype=float)
        self.cost = np.asarray(cost, dtype=float)
        self.contract = contract
        self.z = z_score(contract.confidence)

    def pay(self, firm_kw: np.ndarray) -> np.ndarray:
        """Availability payment for delivering ``firm_kw`` of the contracted capacity [currency]."""
        c = self.contract
        revenue = c.availability_revenue
        pf = np.clip(firm_kw, 0.0, c.capacity_kw) / c.capacity_kw
        rule = c.penalty
        if rule.kind == "pro_rata":
            return revenue * pf
        if rule.kind == "threshold":
            return np.where(pf >= rule.pf_threshold, revenue, 0.0)
        return revenue - rule.penalty_price_per_kwh * (1.0 - pf) * c.capacity_kw * c.duration_h

    def _value(self, mean: np.ndarray, var: np.ndarray, cost: np.ndarray, size: np.ndarray) -> np.ndarray:
        firm = mean - self.z * np.sqrt(np.maximum(var, 0.0))
        return np.where(size > 0, np.maximum(self.pay(firm) - cost, 0.0), 0.0)

    def table(self) -> np.ndarray:
        self._check_table_size()
        return self._value(subset_sums(self.mean_kw), subset_sums(self.var_kw2), subset_sums(self.cost),
                           subset_sums(np.ones(self.n)))

    def prefix_values(self, orders: np.ndarray) -> np.ndarray:
        o = np.asarray(orders, dtype=np.int64)
        pad = np.zeros((o.shape[0], 1))
        sums = [np.concatenate([pad, np.cumsum(arr[o], axis=1)], axis=1)
                for arr in (self.mean_kw, self.var_kw2, self.cost)]
        return self._value(*sums, np.arange(o.shape[1] + 1)[None, :])

    def singleton_values(self) -> np.ndarray:
        return self._value(self.mean_kw, self.var_kw2, self.cost, np.ones(self.n))

    @property
    def grand_value(self) -> float:
        return float(self._value(np.array(self.mean_kw.sum()), np.array(self.var_kw2.sum()),
                                 np.array(self.cost.sum()), np.array(self.n)))

    default_weights_name = "counted capacity [kW]"

    def default_weights(self) -> np.ndarray:
        return self.mean_kw


def contract_game(contract: Contract, offers: Sequence[ServiceOffer],
                  players: Sequence[str] | None = None) -> ContractGame:
    """The game of ``offers`` (normally the selected coalition) for ``contract``; players are named by
    ``players`` (default: the offers' members)."""
    s = np.array([contract.sensitivity_at(o.bus) for o in offers], dtype=float)
    return ContractGame(
        list(players) if players is not None else [o.member for o in offers],
        s * np.array([o.capacity_kw for o in offers]), (s * np.array([o.capacity_sd_kw for o in offers])) ** 2,
        np.array([o.cost(contract) for o in offers]), contract=contract,
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def parse_game(data: Any) -> tuple[TableGame, dict[str, float] | None]:
    """Read a game ``{"players": [...], "coalitions": [{"members": [...], "value": v}, ...]}`` (optionally
    ``"weights": {player: w}`` for the proportional rule) and return it with its weights.

    Every non-empty coalition must be listed once (a missing one is an error, not 0); the empty coalition may
    be listed with value 0. Raises one :class:`UserError` naming every problem.
    """
    if not isinstance(data, Mapping):
        raise UserError("the game is invalid", [f"(game): expected a mapping, not {type(data).__name__}"])
    problems: list[str] = [f"{k}: unknown field (a game has players, coalitions and optional weights)"
                           for k in data if k not in ("players", "coalitions", "weights", "name")]
    players = data.get("players")
    coalitions = data.get("coalitions")
    if not isinstance(players, list) or not players:
        problems.append("players: expected a non-empty list of player names")
        players = []
    bad_names = [k for k, p in enumerate(players) if not isinstance(p, str) or not p]
    problems += [f"players[{k}]: a player is named by a non-empty string, got {players[k]!r}" for k in bad_names]
    names = [p for p in players if isinstance(p, str) and p]
    for name, count in Counter(names).items():
        if count > 1:
            problems.append(f"players: duplicate player {name!r} ({count} times)")
    if len(set(names)) > MAX_FILE_PLAYERS:
        problems.append(f"players: {len(set(names))} players; a game file can list at most {MAX_FILE_PLAYERS} "
                        f"(2^{MAX_FILE_PLAYERS} - 1 coalitions)")
    if not isinstance(coalitions, list):
        problems.append("coalitions: expected a list of {members: [...], value: v}")
        coalitions = []
    index = {p: i for i, p in enumerate(dict.fromkeys(names))}
    n = len(index)
    values: dict[int, float] = {}
    seen_at: dict[int, int] = {}
    for k, entry in enumerate(coalitions):
        where = f"coalitions[{k}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: expected a mapping with members and value")
            continue
        problems += [f"{where}.{key}: unknown field" for key in entry if key not in ("members", "value")]
        members, value = entry.get("members"), entry.get("value")
        if not isinstance(members, list):
            problems.append(f"{where}.members: expected a list of players")
            members = None
        else:
            unknown = [m for m in members if m not in index]
            problems += [f"{where}.members: unknown player {m!r}" for m in unknown]
            problems += [f"{where}.members: player {m!r} listed twice" for m, c in Counter(
                m for m in members if isinstance(m, str)).items() if c > 1]
            if unknown:
                members = None
        if not _is_number(value):
            problems.append(f"{where}.value: expected a finite number, got {value!r}")
            value = None
        if members is None or value is None or n > MAX_FILE_PLAYERS:
            continue
        mask = sum(1 << index[m] for m in set(members))
        if mask in seen_at:
            problems.append(f"{where}: coalition {sorted(set(members))} is listed again (first at "
                            f"coalitions[{seen_at[mask]}])")
            continue
        seen_at[mask] = k
        if mask == 0 and value != 0:
            problems.append(f"{where}.value: the empty coalition is worth 0, got {value}")
        values[mask] = float(value)
    if n and n <= MAX_FILE_PLAYERS and not problems:
        missing = [m for m in range(1, 1 << n) if m not in values]
        if missing:
            order = list(index)
            shown = ["{" + ", ".join(order[i] for i in range(n) if m >> i & 1) + "}" for m in missing[:10]]
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            problems.append(f"coalitions: {len(missing)} of the {(1 << n) - 1} coalitions have no value "
                            f"(a missing coalition is not 0): {', '.join(shown)}{more}")
    weights = data.get("weights")
    if weights is not None:
        if not isinstance(weights, Mapping):
            problems.append("weights: expected a mapping of player to weight")
        else:
            problems += [f"weights.{p}: unknown player" for p in weights if p not in index]
            problems += [f"weights.{p}: expected a finite number >= 0, got {w!r}" for p, w in weights.items()
                         if not (_is_number(w) and w >= 0)]
            problems += [f"weights: no weight for player {p!r}" for p in index if p not in weights]
    if problems:
        raise UserError("the game is invalid", problems)
    table = np.zeros(1 << n)
    for mask, v in values.items():
        table[mask] = v
    return TableGame(list(index), table), (dict(weights) if weights is not None else None)

"""The grid engine contract: what every power-flow backend (pandapower, OpenDSS) offers the testbed.

Conventions, the same for every engine:

- Buses, lines and transformers are named by string ids (the network's own names where unique, else the
  element index as a string); arrays in a :class:`Snapshot` follow the order of :class:`NetworkInfo`.
- Injections are set **per bus in generator convention**: ``p_kw > 0`` is power flowing *into* the network
  at that bus (a prosumer exporting). Engines whose elements use the consumer convention (pandapower and
  OpenDSS loads) flip the sign exactly once, inside the engine.
- ``ext_grid_p_kw > 0`` means the feeder *imports* from the upstream grid (the slack supplies power).
- A power flow that does not converge is data, not an exception: ``converged`` is False, the arrays are
  NaN, and ``message`` says why. Mistakes in the network itself (no slack, unknown file) raise
  :class:`testbed.domain.errors.UserError` when the engine is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class NetworkInfo:
    """Static description of a loaded network."""

    name: str
    bus_ids: tuple[str, ...]
    bus_vn_kv: np.ndarray  # nominal voltage of each bus [kV]
    line_ids: tuple[str, ...]
    trafo_ids: tuple[str, ...]
    #: True where some bus or element is single- or two-phase, or loads are unequal per phase.
    unbalanced: bool = False

    def bus_index(self, bus_id: str) -> int:
        try:
            return self._bus_pos[bus_id]
        except KeyError:
            raise KeyError(bus_id) from None

    @property
    def _bus_pos(self) -> dict[str, int]:
        cache = self.__dict__.get("_bus_pos_cache")
        if cache is None:
            cache = {b: i for i, b in enumerate(self.bus_ids)}
            object.__setattr__(self, "_bus_pos_cache", cache)
        return cache


@dataclass(frozen=True)
class Snapshot:
    """Result of one power flow."""

    converged: bool
    vm_pu: np.ndarray  # (n_bus,) positive-sequence or mean phase voltage magnitude [pu]
    va_degree: np.ndarray  # (n_bus,) voltage angle [degree]
    line_loading_pct: np.ndarray  # (n_line,) loading against the line's current rating [%]
    trafo_loading_pct: np.ndarray  # (n_trafo,) loading against the transformer's rating [%]
    losses_kw: float  # total active losses of lines and transformers [kW]
    ext_grid_p_kw: float  # active power from the upstream grid, > 0 when the feeder imports [kW]
    ext_grid_q_kvar: float  # reactive power from the upstream grid [kvar]
    #: (n_bus, 3) per-phase voltage magnitudes [pu] for unbalanced solves; None for balanced ones.
    vm_pu_phase: np.ndarray | None = None
    message: str = ""
    iterations: int = field(default=0)

    @classmethod
    def failed(cls, info: NetworkInfo, message: str) -> Snapshot:
        """A non-converged snapshot: every array is NaN."""
        nan = float("nan")
        return cls(
            converged=False,
            vm_pu=np.full(len(info.bus_ids), nan),
            va_degree=np.full(len(info.bus_ids), nan),
            line_loading_pct=np.full(len(info.line_ids), nan),
            trafo_loading_pct=np.full(len(info.trafo_ids), nan),
            losses_kw=nan,
            ext_grid_p_kw=nan,
            ext_grid_q_kvar=nan,
            message=message,
        )


def checked_injections(info: NetworkInfo, p_kw, q_kvar) -> tuple[np.ndarray, np.ndarray]:
    """``p_kw`` and ``q_kvar`` as float arrays, after checking there is one value per bus of ``info``."""
    p_kw = np.asarray(p_kw, dtype=float)
    q_kvar = np.asarray(q_kvar, dtype=float)
    n = len(info.bus_ids)
    if p_kw.shape != (n,) or q_kvar.shape != (n,):
        raise ValueError(f"injections must have one value per bus ({n}), got {p_kw.shape} and {q_kvar.shape}")
    return p_kw, q_kvar


class GridEngine(Protocol):
    """A power-flow backend holding one network."""

    info: NetworkInfo

    def set_injections(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        """Set the net injection at every bus (generator convention, ``info.bus_ids`` order) [kW, kvar].

        These come on top of the network's own loads and generators if the engine was built to keep
        them, and replace the previous call's injections.
        """

    def solve(self) -> Snapshot:
        """Run one power flow with the current injections."""

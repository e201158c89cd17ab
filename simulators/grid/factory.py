"""Build a grid engine from a network reference and an engine name (the scenario's ``grid`` section).

A pandapower engine is described in the disk cache (:mod:`simulators.cache`) once it has been built for a
network: its :class:`NetworkInfo` and, after its first power flow, the solver it chose. A later build of the
same network (same SimBench grid and version, same pandapower function and version, or a JSON file with the
same bytes, with the same ``keep_elements`` and the same engine code) returns a :class:`DeferredEngine` at
once: checking a scenario against the network reads only that entry, and the network is loaded (and
pandapower imported) at the first power flow, with the cached solver choice instead of a check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators import cache
from simulators.grid.engine import GridEngine, NetworkInfo, Snapshot
from testbed.domain.errors import UserError

ENGINES = ("pandapower", "opendss")
SUMMARY_KIND = "pandapower-engine"
_ENGINE_MODULES = ("simulators.grid.engine", "simulators.grid.networks", "simulators.grid.pandapower_engine")


def resolve_path(ref: str, base_dir: Path | None) -> Path:
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def build_engine(
    ref: str, *, engine: str = "pandapower", keep_elements: bool = False, base_dir: Path | None = None
) -> GridEngine:
    """Load the network ``ref`` into the engine named ``engine``.

    ``ref`` is ``simbench:<code>``, ``pandapower:<function>``, a pandapower ``.json`` file (see
    :mod:`simulators.grid.networks`) or, for the OpenDSS engine only, an OpenDSS ``.dss`` file. pandapower
    networks run on OpenDSS through the exporter (:mod:`simulators.grid.dss_export`), with the same ids.
    """
    if engine == "pandapower":
        return _pandapower_engine(ref, keep_elements=keep_elements, base_dir=base_dir)
    if engine == "opendss":
        from simulators.grid.opendss_engine import OpenDSSEngine

        if ref.lower().endswith(".dss"):
            return OpenDSSEngine(resolve_path(ref, base_dir), keep_elements=keep_elements, name=ref)
        from simulators.grid.dss_export import export_pandapower
        from simulators.grid.networks import load_pandapower

        circuit = export_pandapower(load_pandapower(ref, base_dir=base_dir), name=ref)
        return OpenDSSEngine(circuit, keep_elements=keep_elements, name=ref)
    raise UserError(f"grid.engine: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


@dataclass(frozen=True)
class EngineSummary:
    """What the cache keeps of a built pandapower engine."""

    info: NetworkInfo
    solver: str | None  # one of pandapower_engine.SOLVERS, None until the engine has solved once


def _pandapower_engine(ref: str, *, keep_elements: bool, base_dir: Path | None) -> DeferredEngine:
    from simulators.grid.networks import network_identity

    key = {
        "network": network_identity(ref, base_dir=base_dir),
        "keep_elements": keep_elements,
        "source": cache.source_fingerprint(*_ENGINE_MODULES),
        **cache.versions("pandapower", "lightsim2grid", "numpy", "pandas"),
    }

    def build(solver: str | None) -> GridEngine:
        from simulators.grid.networks import load_pandapower
        from simulators.grid.pandapower_engine import PandapowerEngine

        net = load_pandapower(ref, base_dir=base_dir)
        return PandapowerEngine(net, keep_elements=keep_elements, name=ref, solver=solver)

    def remember(summary: EngineSummary) -> None:
        cache.store(SUMMARY_KIND, ref, key, summary)

    summary = cache.load(SUMMARY_KIND, ref, key)
    if isinstance(summary, EngineSummary) and summary.info.name == ref:
        return DeferredEngine(summary, lambda: build(summary.solver), remember)
    built = build(None)  # checks the network now (UserError), loads it once
    summary = EngineSummary(info=built.info, solver=None)
    remember(summary)
    deferred = DeferredEngine(summary, lambda: built, remember)
    deferred.engine  # noqa: B018 (holds the engine already built)
    return deferred


class DeferredEngine:
    """A pandapower engine whose network is loaded at its first power flow.

    ``info`` is known from the start (from the cache, or from the engine already built); ``set_injections``
    and ``solve`` build the engine on first use. After the first solve the engine's solver choice is written
    to the cache. Other attributes (``net``, ``solver``, ...) are those of the built engine.
    """

    def __init__(
        self, summary: EngineSummary, build: Callable[[], GridEngine], remember: Callable[[EngineSummary], None]
    ) -> None:
        self.info = summary.info
        self._summary = summary
        self._build = build
        self._remember = remember
        self._engine: GridEngine | None = None

    @property
    def engine(self) -> GridEngine:
        """The engine itself (built now if not built yet)."""
        if self._engine is None:
            engine = self._build()
            if not _same_network(engine.info, self.info):
                raise RuntimeError(
                    f"{self.info.name}: the network differs from its cache entry; delete {cache.cache_root()}"
                )
            self._engine = engine
        return self._engine

    def set_injections(self, p_kw, q_kvar) -> None:
        self.engine.set_injections(p_kw, q_kvar)

    def solve(self) -> Snapshot:
        snapshot = self.engine.solve()
        if self._summary.solver is None:
            solver = getattr(self._engine, "solver", None)
            if solver is not None:
                self._summary = EngineSummary(info=self.info, solver=solver)
                self._remember(self._summary)
        return snapshot

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.engine, name)


def _same_network(a: NetworkInfo, b: NetworkInfo) -> bool:
    return (a.name, a.bus_ids, a.line_ids, a.trafo_ids, a.unbalanced) == (
        b.name,
        b.bus_ids,
        b.line_ids,
        b.trafo_ids,
        b.unbalanced,
    ) and bool((a.bus_vn_kv == b.bus_vn_kv).all())

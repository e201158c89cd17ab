"""Build a grid engine from a network reference and an engine name (the scenario's ``grid`` section)."""

from __future__ import annotations

from pathlib import Path

from simulators.grid.engine import GridEngine
from testbed.domain.errors import UserError

ENGINES = ("pandapower", "opendss")


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
        from simulators.grid.networks import load_pandapower
        from simulators.grid.pandapower_engine import PandapowerEngine

        return PandapowerEngine(load_pandapower(ref, base_dir=base_dir), keep_elements=keep_elements, name=ref)
    if engine == "opendss":
        from simulators.grid.opendss_engine import OpenDSSEngine

        if ref.lower().endswith(".dss"):
            return OpenDSSEngine(resolve_path(ref, base_dir), keep_elements=keep_elements, name=ref)
        from simulators.grid.dss_export import export_pandapower
        from simulators.grid.networks import load_pandapower

        circuit = export_pandapower(load_pandapower(ref, base_dir=base_dir), name=ref)
        return OpenDSSEngine(circuit, keep_elements=keep_elements, name=ref)
    raise UserError(f"grid.engine: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")

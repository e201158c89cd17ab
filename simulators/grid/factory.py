"""Build a grid engine from a network reference and an engine name (the scenario's ``grid`` section)."""

from __future__ import annotations

from pathlib import Path

from simulators.grid.engine import GridEngine
from testbed.errors import UserError

ENGINES = ("pandapower",)


def build_engine(
    ref: str, *, engine: str = "pandapower", keep_elements: bool = False, base_dir: Path | None = None
) -> GridEngine:
    """Load the network ``ref`` (see :mod:`simulators.grid.networks`) into the engine named ``engine``."""
    if engine == "pandapower":
        from simulators.grid.networks import load_pandapower
        from simulators.grid.pandapower_engine import PandapowerEngine

        return PandapowerEngine(load_pandapower(ref, base_dir=base_dir), keep_elements=keep_elements, name=ref)
    raise UserError(f"grid.engine: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")

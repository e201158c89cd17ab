"""Loading pandapower networks from the sources a scenario or the CLI may name.

A network reference is one string:

- ``simbench:<code>``: a SimBench grid, e.g. ``simbench:1-LV-rural3--0-sw`` (ships offline with ``simbench``);
- ``pandapower:<function>``: a function of ``pandapower.networks`` taking no required argument,
  e.g. ``pandapower:case33bw``;
- a path to a pandapower ``.json`` file.

OpenDSS ``.dss`` files are read by the OpenDSS engine, not here.
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import warnings
from pathlib import Path

import pandapower as pp
import pandapower.networks as pn

from testbed.domain.errors import UserError

log = logging.getLogger(__name__)


def load_pandapower(ref: str, *, base_dir: Path | None = None) -> pp.pandapowerNet:
    """Return a fresh pandapower network for ``ref`` (see module docstring).

    ``base_dir`` resolves relative file paths (the scenario file's folder).
    Raises :class:`UserError` naming the reference and the reason when it cannot be loaded.
    """
    kind, _, name = ref.partition(":")
    if kind == "simbench" and name:
        net = _load_simbench(name)
    elif kind == "pandapower" and name:
        net = _load_pandapower_function(name)
    else:
        net = _load_json(ref, base_dir)
    prepare(net)
    return net


def _load_simbench(code: str) -> pp.pandapowerNet:
    # Building a SimBench grid from its CSV files takes seconds; keep each one and hand out copies.
    return copy.deepcopy(_simbench_cached(code))


@functools.lru_cache(maxsize=8)
def _simbench_cached(code: str) -> pp.pandapowerNet:
    import simbench

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return simbench.get_simbench_net(code)
    except Exception as exc:  # simbench raises bare ValueError/KeyError/AssertionError for unknown codes
        raise UserError(
            f"simbench:{code}: not a SimBench grid code ({type(exc).__name__}: {exc}). "
            "Codes look like 1-LV-rural3--0-sw or 1-MVLV-semiurb-all-0-sw."
        ) from None


def _load_pandapower_function(name: str) -> pp.pandapowerNet:
    fn = getattr(pn, name, None)
    if fn is None or not callable(fn) or name.startswith("_"):
        raise UserError(f"pandapower:{name}: pandapower.networks has no network function of that name")
    required = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        raise UserError(
            f"pandapower:{name}: the function needs arguments ({', '.join(p.name for p in required)}); "
            "save the network as a pandapower JSON file and name the file instead"
        )
    net = fn()
    if not isinstance(net, pp.pandapowerNet):
        raise UserError(f"pandapower:{name}: returned {type(net).__name__}, not a pandapower network")
    return net


def _load_json(ref: str, base_dir: Path | None) -> pp.pandapowerNet:
    path = Path(ref)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if path.suffix.lower() == ".dss":
        raise UserError(f"{ref}: an OpenDSS file needs the OpenDSS engine (grid.engine: opendss)")
    if path.suffix.lower() != ".json":
        raise UserError(
            f"{ref}: not a network reference; use simbench:<code>, pandapower:<function> "
            "or a path to a pandapower .json file"
        )
    if not path.is_file():
        raise UserError(f"{ref}: no such file ({path})")
    try:
        return pp.from_json(str(path))
    except Exception as exc:  # pandapower raises many types for a malformed file
        raise UserError(f"{ref}: not a readable pandapower JSON network ({type(exc).__name__}: {exc})") from None


def prepare(net: pp.pandapowerNet) -> None:
    """Fix known quirks of real network data in place (see DESIGN.md, known pitfalls).

    SimBench transformers arrive with ``tap_changer_type`` unset, which makes pandapower 3 ignore their
    tap position: where a transformer has a tap position, its type is set to ``"Ratio"``.
    """
    for table in ("trafo", "trafo3w"):
        df = net[table]
        if len(df) == 0 or "tap_pos" not in df:
            continue
        if "tap_changer_type" not in df:
            df["tap_changer_type"] = None
        missing = df["tap_changer_type"].isna() & df["tap_pos"].notna()
        if missing.any():
            df["tap_changer_type"] = df["tap_changer_type"].astype(object)
            df.loc[missing, "tap_changer_type"] = "Ratio"
            log.debug("set tap_changer_type='Ratio' on %d %s rows", int(missing.sum()), table)


def element_ids(df, prefix: str = "") -> tuple[str, ...]:
    """String ids for a pandapower table: its names where present and unique, else its indices."""
    names = df["name"] if "name" in df else None
    if names is not None and names.notna().all() and names.is_unique and len(names) == len(df):
        return tuple(str(n) for n in names)
    return tuple(f"{prefix}{i}" for i in df.index)


def check_supplied(net: pp.pandapowerNet, name: str) -> None:
    """Raise :class:`UserError` if an in-service bus has no path to an external grid or slack (an island).

    pandapower would silently leave such buses out of the power flow (NaN results); an injection placed there
    would vanish, so the network is refused instead, naming the buses.
    """
    import pandapower.topology as top

    dead = sorted(b for b in top.unsupplied_buses(net) if bool(net.bus.at[b, "in_service"]))
    if dead:
        ids = element_ids(net.bus, "bus ")
        pos = {b: i for i, b in enumerate(net.bus.index)}
        names = [ids[pos[b]] for b in dead]
        raise UserError(
            f"{name}: {len(names)} bus(es) are not connected to any external grid (an island without a source)",
            [f"bus {n}" for n in names[:20]] + ([f"... and {len(names) - 20} more"] if len(names) > 20 else []),
        )

"""Loading pandapower networks from the sources a scenario or the CLI may name.

A network reference is one string:

- ``simbench:<code>``: a SimBench grid, e.g. ``simbench:1-LV-rural3--0-sw`` (ships offline with ``simbench``);
- ``pandapower:<function>``: a function of ``pandapower.networks`` taking no required argument,
  e.g. ``pandapower:case33bw``;
- a path to a pandapower ``.json`` file.

OpenDSS ``.dss`` files are read by the OpenDSS engine, not here.

Building a SimBench grid from SimBench's CSV files takes seconds (~7 s on the development machine); the
result is kept in the disk cache (:mod:`simulators.cache`) under SimBench's version and the grid code, so
only the first run on a machine pays for it. pandapower itself is imported only when a network is built.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import inspect
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators import cache
from testbed.domain.errors import UserError

if TYPE_CHECKING:
    import pandapower as pp

log = logging.getLogger(__name__)

SIMBENCH_KIND = "simbench-net"


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
    # Keep each grid in memory too and hand out copies: callers change their network.
    return copy.deepcopy(simbench_net(code))


def simbench_key(code: str) -> dict[str, Any]:
    """Cache key of what is built from the SimBench grid ``code`` by this module's code and these libraries."""
    return {
        "code": code,
        "source": cache.source_fingerprint(__name__),
        **cache.versions("simbench", "pandapower", "pandas", "numpy"),
    }


@functools.lru_cache(maxsize=8)
def simbench_net(code: str) -> pp.pandapowerNet:
    """SimBench's grid ``code`` as SimBench builds it, with its profiles: shared, do not change it.

    From the disk cache when present, else from SimBench's CSV files (then cached). Raises
    :class:`UserError` for an unknown code.
    """
    return cache.get_or_build(SIMBENCH_KIND, code, simbench_key(code), lambda: _simbench_from_csv(code))


def _simbench_from_csv(code: str) -> pp.pandapowerNet:
    import simbench

    codes = simbench.collect_all_simbench_codes()
    if code not in codes:  # get_simbench_net reads codes loosely: junk after a valid code still loads it
        close = difflib.get_close_matches(code, codes, n=3)
        raise UserError(
            f"simbench:{code}: not a SimBench grid code. Codes look like 1-LV-rural3--0-sw or "
            f"1-MVLV-semiurb-all-0-sw{'; close ones: ' + ', '.join(close) if close else ''}"
        )
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
    import pandapower as pp
    import pandapower.networks as pn

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
    import pandapower as pp

    path = _json_path(ref, base_dir)
    try:
        return pp.from_json(str(path))
    except Exception as exc:  # pandapower raises many types for a malformed file
        raise UserError(f"{ref}: not a readable pandapower JSON network ({type(exc).__name__}: {exc})") from None


def _json_path(ref: str, base_dir: Path | None) -> Path:
    """The file a non-prefixed reference names; :class:`UserError` unless it is an existing ``.json`` file."""
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
    return path


def network_identity(ref: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """What the network ``ref`` is made of, for a cache key: the SimBench or pandapower version that builds it,
    or the SHA-256 of the JSON file's bytes. Raises :class:`UserError` like :func:`load_pandapower` for a
    reference that names no file."""
    kind, _, name = ref.partition(":")
    if kind == "simbench" and name:
        return {"simbench": name, **cache.versions("simbench")}
    if kind == "pandapower" and name:
        return {"pandapower": name, **cache.versions("pandapower")}
    path = _json_path(ref, base_dir)
    return {"file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


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

"""Session-wide test setup.

The disk cache of converted SimBench grids and solver choices (:mod:`simulators.cache`) goes to a temporary
folder for the session, so no test reads or writes the developer's own cache and every session starts cold;
subprocesses (``fpp`` runs) inherit the folder through the environment.

Parallel runs (pytest-xdist, ``-n 2`` in the addopts; ``-n 0`` runs everything in one process): the workers
inherit the controller's session folder and share the cache in it (written by atomic renames, documented safe
for processes that fill it at once); the controller removes it at the end. The controller hands out work
units, not single tests:

- the tests marked ``realtime`` (they pace against the wall clock) form one unit, so they run one after
  another on one worker and never two at once;
- the tests of a module that share a module- or class-scoped fixture (a run of the demo day, a Dask cluster)
  form one unit, so one worker builds that fixture once instead of each worker building it;
- every other test is a unit of its own, and the units holding a ``slow`` test are handed out first, so the
  longest tests do not end the run on one worker while the other waits.

The workers write the units they collected to the session folder and the controller's scheduler reads them
(pytest-xdist's own ``xdist_group`` mark is not used: with pytest 9.2 its ``loadgroup`` mode silently stops
grouping, pytest-dev/pytest-xdist#1386).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from simulators.cache import ENV_VAR

SESSION_ENV = "FPP_TEST_SESSION_DIR"
_session_dir: str | None = None


def pytest_configure(config):
    global _session_dir
    if hasattr(config, "workerinput") and os.environ.get(SESSION_ENV):
        return  # an xdist worker: the controller's folder and cache, inherited through the environment
    _session_dir = tempfile.mkdtemp(prefix="fpp-test-session-")
    os.environ[SESSION_ENV] = _session_dir
    os.environ[ENV_VAR] = str(Path(_session_dir) / "cache")


def pytest_unconfigure(config):
    if _session_dir is not None:
        shutil.rmtree(_session_dir, ignore_errors=True)


@pytest.fixture
def refused_port() -> int:
    """A loopback TCP port where connections are refused for the whole test: bound and never listening.
    Holding it, rather than closing a port found free, keeps another process (a broker, a Dask scheduler or a
    device emulator of another xdist worker) from taking it while the test counts on nothing answering there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def work_unit(item: pytest.Item) -> str:
    """The name of the unit of work ``item`` belongs to (its own node id when it shares nothing)."""
    if item.get_closest_marker("realtime"):
        return "realtime"
    info = getattr(item, "_fixtureinfo", None)
    wider = info is not None and any(
        defs[-1].scope in ("module", "class", "package") for defs in info.name2fixturedefs.values() if defs
    )
    return item.nodeid.split("::")[0] if wider else item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None:
        return  # one process: file order
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable; every worker alike
    units = {item.nodeid: work_unit(item) for item in items}
    path = Path(os.environ[SESSION_ENV]) / f"units-{worker}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in units.items() if k != v}))
    os.replace(tmp, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """For ``--dist load`` (what ``-n`` gives): pytest-xdist's scope scheduler over the units above, in the
    workers' collection order (``slow`` first). Any other ``--dist`` mode is pytest-xdist's own."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        _units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._units is None:  # the workers wrote their files before reporting their collections
                files = sorted(Path(os.environ[SESSION_ENV]).glob("units-*.json"))
                self._units = json.loads(files[0].read_text()) if files else {}
            return self._units.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # keep the collection order: slow units first
    return UnitScheduling(config, log)

"""Session-wide test setup.

The disk cache of converted SimBench grids and solver choices (:mod:`simulators.cache`) goes to a temporary
folder for the session, so no test reads or writes the developer's own cache and every session starts cold;
subprocesses (``fpp`` runs) inherit the folder through the environment.
"""

import os
import shutil
import tempfile

from simulators.cache import ENV_VAR

_session_cache: str | None = None


def pytest_configure(config):
    global _session_cache
    _session_cache = tempfile.mkdtemp(prefix="fpp-test-cache-")
    os.environ[ENV_VAR] = _session_cache


def pytest_unconfigure(config):
    if _session_cache is not None:
        shutil.rmtree(_session_cache, ignore_errors=True)

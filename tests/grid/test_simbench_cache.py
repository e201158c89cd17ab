"""SimBench grids, profiles and the engine's solver choice through the disk cache: a warm cache gives what a
cold one gives, and a command that runs no power flow imports no pandapower."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simulators import cache
from simulators.grid import factory, networks
from simulators.grid.pandapower_engine import PandapowerEngine
from simulators.prosumers import profiles

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"
CODE = "1-LV-rural3--0-sw"
REF = f"simbench:{CODE}"


def _assert_same_net(a, b, where="net"):
    """Every table of two pandapower networks equal bit for bit (values, dtypes, index), recursing into dicts."""
    assert sorted(a.keys()) == sorted(b.keys()), where
    for key in a.keys():
        x, y = a[key], b[key]
        if isinstance(x, pd.DataFrame):
            pd.testing.assert_frame_equal(x, y, check_exact=True, obj=f"{where}.{key}")
        elif isinstance(x, dict):
            _assert_same_net(x, y, f"{where}.{key}")
        elif key != "_ppc":  # no power flow ran on either
            assert type(x) is type(y) and (x == y or (x != x and y != y)), f"{where}.{key}"


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A cache folder filled by one cold conversion, and what the cold path returned."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(cache.ENV_VAR, str(root))
        networks.simbench_net.cache_clear()
        net = networks.load_pandapower(REF)
        prof = profiles.load_simbench_profiles(CODE)
        networks.simbench_net.cache_clear()
    return root, net, prof


@pytest.fixture
def warm(cold, monkeypatch):
    """The cold cache folder, with SimBench's CSV reader made to fail: anything read now comes from the cache."""
    root, net, prof = cold
    monkeypatch.setenv(cache.ENV_VAR, str(root))
    networks.simbench_net.cache_clear()

    def no_csv(code):
        raise AssertionError("SimBench's CSV files were read on a warm cache")

    monkeypatch.setattr(networks, "_simbench_from_csv", no_csv)
    yield root, net, prof
    networks.simbench_net.cache_clear()


def test_warm_cache_gives_the_cold_network_and_profiles_bit_for_bit(warm):
    root, cold_net, cold_prof = warm
    _assert_same_net(cold_net, networks.load_pandapower(REF))
    assert (cold_net.trafo.tap_changer_type == "Ratio").all()  # prepared after the cache, as before
    prof = profiles.load_simbench_profiles(CODE)
    assert prof.grid_loads == cold_prof.grid_loads and prof.source == cold_prof.source
    for table in ("load_p", "load_q", "pv"):
        a, b = getattr(cold_prof, table), getattr(prof, table)
        assert a.keys() == b.keys()
        assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_corrupt_profiles_entry_is_rebuilt_equal(warm):
    root, _, cold_prof = warm
    [entry] = (root / profiles.PROFILES_KIND).glob("*.pickle")
    entry.write_bytes(entry.read_bytes()[:1000])
    networks.simbench_net.cache_clear()
    # The profiles are rebuilt from the network entry (CSV reading fails in this fixture), and rewritten.
    prof = profiles.load_simbench_profiles(CODE)
    assert all(prof.load_p[k].tobytes() == cold_prof.load_p[k].tobytes() for k in cold_prof.load_p)
    assert cache.load(profiles.PROFILES_KIND, CODE, _profiles_key()) is not None


def _profiles_key():
    return {**networks.simbench_key(CODE), "profiles_source": cache.source_fingerprint(profiles.__name__)}


def test_engine_is_deferred_on_a_warm_cache_and_keeps_its_solver_choice(warm, monkeypatch):
    first = factory.build_engine(REF)  # builds the engine (no power flow yet) and caches its description
    assert first._engine is not None and first._summary.solver is None
    n = len(first.info.bus_ids)
    first.set_injections(np.zeros(n), np.zeros(n))
    reference = first.solve()  # the first solve chooses the solver and caches the choice
    assert first.solver == "lightsim2grid"

    def no_check(self):
        raise AssertionError("the solver check ran although the choice was cached")

    monkeypatch.setattr(PandapowerEngine, "_choose_solver", no_check)
    second = factory.build_engine(REF)
    assert second._engine is None  # nothing loaded: validating a scenario needs only `info`
    assert second.info.bus_ids == first.info.bus_ids and second.info.line_ids == first.info.line_ids
    second.set_injections(np.zeros(n), np.zeros(n))
    again = second.solve()
    assert second.solver == "lightsim2grid"
    np.testing.assert_array_equal(again.vm_pu, reference.vm_pu)
    # keep_elements changes the engine's base case: its own entry, built again
    assert factory.build_engine(REF, keep_elements=True)._engine is not None


def test_given_solver_matches_the_checked_one(warm):
    net = networks.load_pandapower(REF)
    snaps = {}
    for solver in ("lightsim2grid", "pandapower"):
        eng = PandapowerEngine(net, keep_elements=False, solver=solver)
        rng = np.random.default_rng(3)
        assert eng.uses_lightsim2grid is (solver == "lightsim2grid")
        n = len(eng.info.bus_ids)
        eng.set_injections(rng.normal(0, 3, n), rng.normal(0, 1, n))
        snaps[solver] = eng.solve()
    # Both stop at pandapower's 1e-8 MVA mismatch: voltages agree to well within 1e-7 pu.
    np.testing.assert_allclose(snaps["lightsim2grid"].vm_pu, snaps["pandapower"].vm_pu, atol=1e-7)
    with pytest.raises(ValueError, match="choose one of"):
        PandapowerEngine(net, keep_elements=False, solver="fast")
    with pytest.raises(ValueError, match="balanced network"):
        PandapowerEngine(net, keep_elements=False, solver="runpp_3ph")


def _run_python(code: str, root) -> str:
    env_code = f"import os; os.environ[{cache.ENV_VAR!r}] = {str(root)!r}\n" + textwrap.dedent(code)
    res = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_validate_on_a_warm_cache_imports_no_pandapower(warm):
    root, _, _ = warm
    factory.build_engine(REF)  # the engine entry (warm already holds the network and profiles)
    out = _run_python(
        f"""
        import sys
        from testbed.cli import main
        assert main(["validate", {str(DEMO)!r}]) == 0
        print(sorted(m for m in ("pandapower", "simbench", "numba", "cvxpy", "mosaik") if m in sys.modules))
        """,
        root,
    )
    assert out.strip().endswith("[]")


def test_help_imports_no_solver_or_grid_library(tmp_path):
    out = _run_python(
        """
        import sys
        from testbed.cli import build_parser
        build_parser().format_help()
        print(sorted(m for m in ("pandapower", "numba", "cvxpy", "scipy", "mosaik", "pymodbus") if m in sys.modules))
        """,
        tmp_path,
    )
    assert out.strip() == "[]"


@pytest.mark.slow
def test_two_processes_filling_an_empty_cache_both_succeed(tmp_path):
    code = f"""
        import hashlib, sys
        from simulators.prosumers.profiles import load_simbench_profiles
        p = load_simbench_profiles({CODE!r})
        print(hashlib.sha256(b"".join(p.load_p[k].tobytes() for k in sorted(p.load_p))).hexdigest())
        """
    env_code = f"import os; os.environ[{cache.ENV_VAR!r}] = {str(tmp_path)!r}\n" + textwrap.dedent(code)
    procs = [
        subprocess.Popen([sys.executable, "-c", env_code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    assert outs[0][0] == outs[1][0]  # same profiles in both
    # and the entries they left are whole: a third process reads them without SimBench's CSV files
    no_csv = "from simulators.grid import networks\nnetworks._simbench_from_csv = None  # fails if called\n"
    third = _run_python(no_csv + textwrap.dedent(code), tmp_path)
    assert third == outs[0][0]

"""The pandapower engine against pandapower's own result tables and a published base case."""

import warnings

import numpy as np
import pandapower as pp
import pytest

from simulators.grid.networks import load_pandapower
from simulators.grid.pandapower_engine import PandapowerEngine
from testbed.domain.errors import UserError


@pytest.fixture(scope="module")
def rural3():
    return load_pandapower("simbench:1-LV-rural3--0-sw")


def test_fast_results_equal_pandapower_tables(rural3):
    eng = PandapowerEngine(rural3, keep_elements=True)
    rng = np.random.default_rng(7)
    n = len(eng.info.bus_ids)
    eng.set_injections(rng.normal(0, 2, n), rng.normal(0, 0.5, n))
    snap = eng.solve()
    net = eng.net
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net)  # full result tables, no recycling
    # Both solve to pandapower's default mismatch tolerance (1e-8 MVA), hence 1e-7 and not machine precision.
    np.testing.assert_allclose(snap.vm_pu, net.res_bus.vm_pu, atol=1e-7)
    np.testing.assert_allclose(snap.line_loading_pct, net.res_line.loading_percent, atol=1e-4)
    np.testing.assert_allclose(snap.trafo_loading_pct, net.res_trafo.loading_percent, atol=1e-4)
    assert snap.losses_kw == pytest.approx(1000 * (net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()), abs=1e-3)
    assert snap.ext_grid_p_kw == pytest.approx(1000 * net.res_ext_grid.p_mw.sum(), abs=1e-3)
    assert snap.ext_grid_q_kvar == pytest.approx(1000 * net.res_ext_grid.q_mvar.sum(), abs=1e-3)


def test_sign_convention_export_raises_voltage_and_reduces_import(rural3):
    # Generator convention at the engine boundary: +p_kw is injected into the network.
    eng = PandapowerEngine(rural3, keep_elements=False)
    n = len(eng.info.bus_ids)
    far = eng.info.bus_index("LV3.101 Bus 45")
    p = np.zeros(n)
    p[far] = -10.0  # a 10 kW consumer
    eng.set_injections(p, np.zeros(n))
    consuming = eng.solve()
    p[far] = +10.0  # a 10 kW exporter
    eng.set_injections(p, np.zeros(n))
    exporting = eng.solve()
    assert consuming.vm_pu[far] < exporting.vm_pu[far]
    # Energy balance at the slack: import = consumption + losses; export = -(generation - losses).
    # Tolerance: Newton-Raphson stops at a 1e-8 MVA (1e-5 kW) mismatch per bus.
    assert consuming.ext_grid_p_kw == pytest.approx(10.0 + consuming.losses_kw, abs=1e-4)
    assert exporting.ext_grid_p_kw == pytest.approx(-10.0 + exporting.losses_kw, abs=1e-4)


def test_non_convergence_is_data_and_engine_recovers(rural3):
    eng = PandapowerEngine(rural3, keep_elements=False)
    n = len(eng.info.bus_ids)
    eng.set_injections(np.full(n, -5000.0), np.zeros(n))  # 5 MW at every LV bus: no solution exists
    snap = eng.solve()
    assert not snap.converged and "did not converge" in snap.message
    assert np.isnan(snap.vm_pu).all()
    eng.set_injections(np.zeros(n), np.zeros(n))
    again = eng.solve()
    assert again.converged and np.nanmax(np.abs(again.vm_pu - again.vm_pu[0])) < 0.05


def test_simbench_taps_are_honoured(rural3):
    assert (rural3.trafo.tap_changer_type == "Ratio").all()


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("simbench:no-such-grid", "not a SimBench grid code"),
        ("pandapower:no_such_function", "has no network function"),
        ("missing.json", "no such file"),
        ("feeder.dss", "needs the OpenDSS engine"),
        ("feeder.xlsx", "not a network reference"),
    ],
)
def test_bad_network_references(ref, fragment):
    with pytest.raises(UserError, match=fragment):
        load_pandapower(ref)


def test_non_convergence_in_a_recycled_step_is_detected(rural3):
    # After a converged step pandapower recycles; with only_v_results it returns without raising when
    # Newton-Raphson fails, so the engine must read the success flag (a silent failure gave ~0.003 pu).
    eng = PandapowerEngine(rural3, keep_elements=False)
    n = len(eng.info.bus_ids)
    far = eng.info.bus_index("LV3.101 Bus 45")
    p = np.zeros(n)
    p[far] = -5.0
    eng.set_injections(p, np.zeros(n))
    first = eng.solve()
    assert first.converged
    p[far] = -4005.0  # 4 MW at the end of an LV feeder: no solution
    eng.set_injections(p, np.zeros(n))
    failed = eng.solve()
    assert not failed.converged and "did not converge" in failed.message and np.isnan(failed.vm_pu).all()
    p[far] = -5.0
    eng.set_injections(p, np.zeros(n))
    np.testing.assert_allclose(eng.solve().vm_pu, first.vm_pu, atol=1e-9)  # recovered: the same case again

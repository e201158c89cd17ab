"""pandapower and OpenDSS solve the same networks to the same answer (OpenDSS circuits from the exporter).

Sign conventions, stated where they flip (each flip happens once, inside an engine):
- at the contract, injections are generator convention (+p_kw exported into the grid);
- pandapower loads/storage and OpenDSS loads are consumer convention: both engines write ``-p_kw``;
- pandapower static generators are generator convention: the exporter writes them as OpenDSS loads with ``-p``;
- OpenDSS reports the source power flowing *into* its terminal (< 0 when it supplies): the engine negates it,
  so ``ext_grid_p_kw > 0`` means the feeder imports on both engines.

Tolerances: the issue's acceptance limits (1e-4 pu, 1 % losses). The measured gaps are ~2e-5 pu and ~0.5 %:
OpenDSS puts a transformer's no-load branch at its HV terminal, pandapower's T model in the middle of the
series impedance (with the no-load branch removed both agree to 3e-8 pu, measured when writing the exporter).
"""

import numpy as np
import pytest

from simulators.grid.dss_export import export_pandapower
from simulators.grid.networks import load_pandapower
from simulators.grid.opendss_engine import OpenDSSEngine
from simulators.grid.pandapower_engine import PandapowerEngine

LV_GRIDS = ["simbench:1-LV-rural3--0-sw", "simbench:1-LV-semiurb4--0-sw"]
V_TOL_PU = 1e-4
LOSS_REL_TOL = 0.01


def _pair(net, name, keep=True):
    return (
        PandapowerEngine(net, keep_elements=keep, name=name),
        OpenDSSEngine(export_pandapower(net, name=name), keep_elements=keep, name=name),
    )


def _solve(engines, p, q):
    out = []
    for eng in engines:
        eng.set_injections(p, q)
        snap = eng.solve()
        assert snap.converged, snap.message
        out.append(snap)
    return out


def _assert_agree(a, b):
    assert np.nanmax(np.abs(a.vm_pu - b.vm_pu)) <= V_TOL_PU
    dva = (a.va_degree - b.va_degree + 180.0) % 360.0 - 180.0
    assert np.nanmax(np.abs(dva)) <= 0.01  # includes the 150 degree Dyn5 shift, restored by the exporter's map
    assert b.losses_kw == pytest.approx(a.losses_kw, rel=LOSS_REL_TOL)
    # The slack balance: differences only from the losses, so within the loss tolerance in kW.
    assert abs(b.ext_grid_p_kw - a.ext_grid_p_kw) <= LOSS_REL_TOL * a.losses_kw + 1e-6
    assert np.nanmax(np.abs(a.line_loading_pct - b.line_loading_pct)) <= 0.05  # percentage points
    if len(a.trafo_loading_pct):
        assert np.nanmax(np.abs(a.trafo_loading_pct - b.trafo_loading_pct)) <= 0.05


@pytest.fixture(scope="module", params=LV_GRIDS)
def lv_pair(request):
    net = load_pandapower(request.param)
    return _pair(net, request.param)


def test_same_ids_on_both_engines(lv_pair):
    pp_eng, dss_eng = lv_pair
    assert pp_eng.info.bus_ids == dss_eng.info.bus_ids
    assert pp_eng.info.line_ids == dss_eng.info.line_ids
    assert pp_eng.info.trafo_ids == dss_eng.info.trafo_ids
    np.testing.assert_array_equal(pp_eng.info.bus_vn_kv, dss_eng.info.bus_vn_kv)


def test_simbench_lv_own_loads_agree(lv_pair):
    n = len(lv_pair[0].info.bus_ids)
    a, b = _solve(lv_pair, np.zeros(n), np.zeros(n))
    _assert_agree(a, b)


def test_simbench_lv_injections_agree_in_generator_convention(lv_pair):
    n = len(lv_pair[0].info.bus_ids)
    rng = np.random.default_rng(11)
    p = rng.normal(0.0, 4.0, n)  # kW, both signs: consumers and exporters
    q = rng.normal(0.0, 1.0, n)
    base = _solve(lv_pair, np.zeros(n), np.zeros(n))
    a, b = _solve(lv_pair, p, q)
    _assert_agree(a, b)
    # Generator convention on both: injecting sum(p) more reduces the import by sum(p), up to the loss change.
    for before, after in ((base[0], a), (base[1], b)):
        expected = before.ext_grid_p_kw - p.sum() + (after.losses_kw - before.losses_kw)
        assert after.ext_grid_p_kw == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("engine", ["pandapower", "opendss"])
def test_case33bw_published_base_case(engine):
    # Baran & Wu (1989), IEEE Trans. Power Delivery 4(2): lowest voltage 0.9131 pu at bus 18 (index 17),
    # total losses 202.7 kW for the 3715 kW / 2300 kvar base load.
    from simulators.grid.factory import build_engine

    eng = build_engine("pandapower:case33bw", engine=engine, keep_elements=True)
    n = len(eng.info.bus_ids)
    eng.set_injections(np.zeros(n), np.zeros(n))
    snap = eng.solve()
    assert snap.converged
    assert int(np.argmin(snap.vm_pu)) == 17
    assert snap.vm_pu.min() == pytest.approx(0.9131, abs=5e-5)
    assert snap.losses_kw == pytest.approx(202.7, abs=0.05)
    assert snap.ext_grid_p_kw == pytest.approx(3715.0 + snap.losses_kw, abs=0.5)


def test_off_neutral_taps_agree():
    net = load_pandapower("simbench:1-LV-rural3--0-sw")
    net.trafo["tap_pos"] = 2.0  # +5 % on the HV winding: the LV voltage drops by ~5 %
    a, b = _solve(_pair(net, "tapped"), np.zeros(len(net.bus)), np.zeros(len(net.bus)))
    _assert_agree(a, b)
    lv = net.trafo.lv_bus.iloc[0]
    assert a.vm_pu[net.bus.index.get_loc(lv)] < 0.98


def test_closed_bus_bus_switch_fuses_buses():
    import pandapower as pp

    net = load_pandapower("pandapower:case33bw")
    extra = pp.create_bus(net, vn_kv=12.66, name="switched")
    pp.create_switch(net, bus=17, element=extra, et="b", closed=True)
    net.load.loc[net.load.bus == 17, "bus"] = extra  # the end load now hangs behind the switch
    engines = _pair(net, "fused")
    n = len(net.bus)
    a, b = _solve(engines, np.zeros(n), np.zeros(n))
    _assert_agree(a, b)
    k = net.bus.index.get_loc(extra)
    assert b.vm_pu[k] == pytest.approx(b.vm_pu[17], abs=1e-12)
    assert b.vm_pu[k] == pytest.approx(0.9131, abs=5e-5)


def test_exported_file_compiles_on_its_own(tmp_path):
    net = load_pandapower("simbench:1-LV-semiurb4--0-sw")
    circuit = export_pandapower(net, name="semiurb4")
    path = tmp_path / "semiurb4.dss"
    circuit.write(path)
    from_file = OpenDSSEngine(path, keep_elements=True, name="file")
    in_memory = OpenDSSEngine(circuit, keep_elements=True, name="memory")
    f_n, m_n = len(from_file.info.bus_ids), len(in_memory.info.bus_ids)
    from_file.set_injections(np.zeros(f_n), np.zeros(f_n))
    in_memory.set_injections(np.zeros(m_n), np.zeros(m_n))
    f, m = from_file.solve(), in_memory.solve()
    pos = {b: i for i, b in enumerate(from_file.info.bus_ids)}
    rows = [pos[b] for b in circuit.bus_dss]
    np.testing.assert_allclose(f.vm_pu[rows], m.vm_pu, atol=1e-9)
    assert f.losses_kw == pytest.approx(m.losses_kw, rel=1e-9)


def test_open_line_switch_leaves_the_line_charging_from_its_closed_end():
    import pandapower as pp

    net = load_pandapower("pandapower:case33bw")
    tie = net.line.index[(net.line.from_bus == 20) & (net.line.to_bus == 7)][0]  # a tie line, normally open
    net.line.loc[tie, ["in_service", "c_nf_per_km", "length_km"]] = [True, 400.0, 20.0]  # a long cable
    pp.create_switch(net, bus=20, element=tie, et="l", closed=False)  # open at bus 20: energised from bus 7 only
    n = len(net.bus)
    a, b = _solve(_pair(net, "open switch"), np.zeros(n), np.zeros(n))
    _assert_agree(a, b)
    # The charging current of 20 km of cable raises the voltage at bus 7 against the published base case.
    base = _solve(_pair(load_pandapower("pandapower:case33bw"), "base"), np.zeros(n), np.zeros(n))
    assert b.vm_pu[7] - base[1].vm_pu[7] > 1e-4


@pytest.mark.parametrize("ref", ["simbench:1-MV-rural--0-sw", "simbench:1-HV-mixed--0-sw"])
def test_simbench_mv_and_hv_grids_agree(ref):
    # The acceptance limits hold beyond LV: MV rings with open switches, HV meshes with several transformers.
    net = load_pandapower(ref)
    n = len(net.bus)
    a, b = _solve(_pair(net, ref), np.zeros(n), np.zeros(n))
    _assert_agree(a, b)

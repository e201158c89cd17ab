"""The OpenDSS engine: a hand-written unbalanced feeder against hand calculation, keep_elements, bad input."""

from pathlib import Path

import numpy as np
import pytest

from simulators.grid.factory import build_engine
from simulators.grid.opendss_engine import OpenDSSEngine
from testbed.domain.errors import UserError

FEEDER = Path(__file__).resolve().parents[2] / "simulators" / "grid" / "feeders" / "unbalanced_lv.dss"
V_PHASE = 400.0 / np.sqrt(3.0)  # source phase voltage [V]
Z_MAIN = 0.25 * (0.4 + 0.2j)  # Line.main, per phase (self impedance only) [ohm]
Z_LAT = 0.1 * (0.8 + 0.1j)  # Line.lateral [ohm]
Z_SRC = 1e-7 + 1e-6j  # the Vsource's own impedance (Z1 = Z0, so per phase too) [ohm]


def _two_bus(s_va: complex, z: complex, v_source: float = V_PHASE) -> float:
    """|V| at the end of impedance z feeding a constant power s_va from a stiff source (closed form).

    From |Vs|^2 |V|^2 = (|V|^2 + P R + Q X)^2 + (X P - R Q)^2:
    |V|^4 - (|Vs|^2 - 2(PR + QX)) |V|^2 + |S|^2 |Z|^2 = 0, the upper root.
    """
    p, q, r, x = s_va.real, s_va.imag, z.real, z.imag
    b = v_source**2 - 2.0 * (p * r + q * x)
    v2 = (b + np.sqrt(b * b - 4.0 * abs(s_va) ** 2 * abs(z) ** 2)) / 2.0
    return float(np.sqrt(v2))


def _phase_a() -> tuple[float, float, float]:
    """Phase a: source - Z_MAIN - n1 (12 kW + 3 kvar) - Z_LAT - n2 (6 kW), solved by fixed-point iteration."""
    v1 = v2 = complex(V_PHASE)
    for _ in range(200):
        i_lat = np.conj(6000.0 / v2)
        i_main = np.conj((12000.0 + 3000.0j) / v1) + i_lat
        v1 = V_PHASE - (Z_SRC + Z_MAIN) * i_main
        v2 = v1 - Z_LAT * i_lat
    loss_w = abs(i_main) ** 2 * Z_MAIN.real + abs(i_lat) ** 2 * Z_LAT.real
    return abs(v1) / V_PHASE, abs(v2) / V_PHASE, loss_w


@pytest.fixture(scope="module")
def feeder():
    return OpenDSSEngine(FEEDER, keep_elements=True, name="unbalanced_lv")


def test_unbalanced_feeder_per_phase_against_hand_calculation(feeder):
    info = feeder.info
    assert info.unbalanced
    assert info.bus_ids == ("src", "n1", "n2")
    assert info.line_ids == ("main", "lateral")
    feeder.set_injections(np.zeros(3), np.zeros(3))
    snap = feeder.solve()
    assert snap.converged
    ph = snap.vm_pu_phase
    assert ph.shape == (3, 3)
    v1a, v2a, loss_a = _phase_a()
    v1b = _two_bus(5000.0 + 1000.0j, Z_SRC + Z_MAIN) / V_PHASE
    # OpenDSS iterates to a 1e-8 voltage change (set by the engine); the hand results are exact: 1e-7 pu.
    assert ph[1, 0] == pytest.approx(v1a, abs=1e-7)
    assert ph[1, 1] == pytest.approx(v1b, abs=1e-7)
    assert ph[1, 2] == pytest.approx(1.0, abs=1e-7)  # no load on phase c
    assert ph[2, 0] == pytest.approx(v2a, abs=1e-7)
    assert np.isnan(ph[2, 1]) and np.isnan(ph[2, 2])  # n2 is single-phase
    assert snap.vm_pu[1] == pytest.approx((v1a + v1b + 1.0) / 3.0, abs=1e-7)  # mean over the bus's phases
    assert snap.vm_pu[2] == pytest.approx(v2a, abs=1e-7)
    # Losses: |I|^2 R on phase a's two lines plus phase b's main line (the source's own R is not a loss).
    i_b = abs(np.conj((5000.0 + 1000.0j) / (v1b * V_PHASE)))
    loss_b = i_b**2 * Z_MAIN.real
    assert snap.losses_kw == pytest.approx((loss_a + loss_b) / 1000.0, rel=1e-6)
    assert snap.ext_grid_p_kw == pytest.approx(23.0 + snap.losses_kw, abs=1e-6)


def test_injection_is_split_over_the_bus_phases_in_generator_convention():
    eng = OpenDSSEngine(FEEDER, keep_elements=False, name="unbalanced_lv")
    p = np.array([0.0, -3.0, 0.0])  # a 3 kW consumer at n1: 1 kW on each phase
    eng.set_injections(p, np.zeros(3))
    consuming = eng.solve()
    expected = _two_bus(1000.0 + 0.0j, Z_SRC + Z_MAIN) / V_PHASE
    np.testing.assert_allclose(consuming.vm_pu_phase[1], expected, atol=1e-7)
    eng.set_injections(-p, np.zeros(3))  # now exporting 3 kW
    exporting = eng.solve()
    assert (exporting.vm_pu_phase[1] > 1.0).all()
    assert exporting.ext_grid_p_kw == pytest.approx(-3.0 + exporting.losses_kw, abs=1e-6)
    assert consuming.ext_grid_p_kw == pytest.approx(3.0 + consuming.losses_kw, abs=1e-6)


def test_keep_elements_false_disables_the_files_own_loads():
    eng = OpenDSSEngine(FEEDER, keep_elements=False, name="unbalanced_lv")
    eng.set_injections(np.zeros(3), np.zeros(3))
    snap = eng.solve()
    np.testing.assert_allclose(snap.vm_pu_phase[~np.isnan(snap.vm_pu_phase)], 1.0, atol=1e-9)
    assert snap.ext_grid_p_kw == pytest.approx(0.0, abs=1e-6)  # 12 + 5 + 6 kW when kept


def test_non_convergence_is_a_flagged_step_and_the_engine_recovers():
    eng = build_engine("simbench:1-LV-rural3--0-sw", engine="opendss")
    n = len(eng.info.bus_ids)
    eng.set_injections(np.full(n, -50.0), np.zeros(n))  # 50 kW at each of 129 buses on a 400 kVA transformer
    snap = eng.solve()
    assert not snap.converged and "did not converge" in snap.message
    assert np.isnan(snap.vm_pu).all() and np.isnan(snap.losses_kw)
    eng.set_injections(np.zeros(n), np.zeros(n))
    again = eng.solve()
    assert again.converged
    assert again.vm_pu == pytest.approx(np.full(n, 1.025), abs=1e-4)  # no load: the source voltage everywhere


def _write(tmp_path, text, name="feeder.dss"):
    path = tmp_path / name
    path.write_text(text)
    return path


HEAD = "Clear\nNew Circuit.t bus1=s basekv=0.4 phases=3\n"


@pytest.mark.parametrize(
    "text, fragment",
    [
        (HEAD + "New Frobnicator.x bus1=s\n", "could not compile"),
        (HEAD + "Redirect no_such_file.dss\n", "could not compile"),
        (HEAD + "New Line.l bus1=s bus2=a length=0.1 units=km r1=0.1 x1=0.1\n", "without a voltage base"),
        (
            HEAD + "New Line.l bus1=s bus2=a length=0.1 units=km r1=0.1 x1=0.1\n"
            "New Load.far bus1=island phases=3 kV=0.4 kW=1\nSet VoltageBases=[0.4]\nCalcVoltageBases\n"
            "SetkVBase bus=island kVLL=0.4\n",
            "island without a source",
        ),
    ],
)
def test_bad_dss_files(tmp_path, text, fragment):
    with pytest.raises(UserError, match=fragment):
        OpenDSSEngine(_write(tmp_path, text), keep_elements=True, name="bad")


@pytest.mark.parametrize(
    "ref, fragment",
    [
        ("missing.dss", "no such file"),
        ("simbench:no-such-grid", "not a SimBench grid code"),
        ("feeder.xlsx", "not a network reference"),
    ],
)
def test_bad_references_on_the_opendss_engine(ref, fragment):
    with pytest.raises(UserError, match=fragment):
        build_engine(ref, engine="opendss")


@pytest.mark.parametrize("engine", ["pandapower", "opendss"])
def test_island_without_source_is_refused_on_both_engines(tmp_path, engine):
    import pandapower as pp

    from simulators.grid.networks import load_pandapower

    net = load_pandapower("pandapower:case33bw")
    net.line.loc[(net.line.from_bus == 16) & (net.line.to_bus == 17), "in_service"] = False  # cuts off bus 17
    path = tmp_path / "islanded.json"
    pp.to_json(net, str(path))
    with pytest.raises(UserError, match=r"island without a source(.|\n)*bus 17"):
        build_engine(str(path), engine=engine)


def test_unknown_engine():
    with pytest.raises(UserError, match="unknown engine"):
        build_engine("pandapower:case33bw", engine="powerfactory")


def test_grid_simulator_outputs_phase_voltages_of_an_opendss_feeder():
    from simulators.grid.mosaik_sim import GridSimulator

    sim = GridSimulator()
    sim.init("Grid-0", engine=OpenDSSEngine(FEEDER, keep_elements=True, name="unbalanced_lv"))
    sim.create(1, "Grid")
    # A 3 kW exporter at n2 (generator convention), sent the way the prosumer simulator sends it.
    assert sim.step(0, {"grid": {"p_kw_by_bus": {"Fleet-0.fleet": {"n2": 3.0}}}}, 10) == 1
    data = sim.get_data({"grid": ["vm_pu_phase", "converged", "ext_grid_p_kw"]})["grid"]
    assert data["converged"]
    assert data["vm_pu_phase"].shape == (3, 3)
    # The barn at n2 (6 kW) now takes 3 kW from the grid: the source supplies 23 - 3 kW plus losses.
    assert 20.0 < data["ext_grid_p_kw"] < 20.0 + 0.789


def _stepped_and_fresh(ref, first, second):
    """Solve ``second`` (p, q) on an engine that solved ``first`` before, and on a fresh engine."""
    eng = build_engine(ref, engine="opendss")
    eng.set_injections(*first)
    eng.solve()
    eng.set_injections(*second)
    fresh = build_engine(ref, engine="opendss")
    fresh.set_injections(*second)
    return eng, eng.solve(), fresh, fresh.solve()


def test_injections_written_only_when_changed_stay_exact():
    # set_injections skips unchanged arrays: q must survive a step that changes p alone, and the other way round.
    rng = np.random.default_rng(3)
    n = 33
    p1, p2, q = rng.normal(-50, 20, n), rng.normal(-50, 20, n), rng.normal(-20, 5, n)
    eng, stepped, fresh, direct = _stepped_and_fresh("pandapower:case33bw", (p1, q), (p2, q))
    np.testing.assert_allclose(stepped.vm_pu, direct.vm_pu, atol=1e-8)
    assert stepped.ext_grid_q_kvar == pytest.approx(direct.ext_grid_q_kvar, abs=1e-4)
    # And q only: the new kvar is applied, kW stays.
    q2 = q + 5.0
    eng.set_injections(p2, q2)
    fresh.set_injections(p2, q2)
    np.testing.assert_allclose(eng.solve().vm_pu, fresh.solve().vm_pu, atol=1e-8)


@pytest.mark.parametrize("ref", ["simbench:1-LV-rural3--0-sw", str(FEEDER)])
def test_losses_from_terminal_powers_equal_opendss_circuit_losses(ref):
    # The engine sums V * conj(I) over all power-delivery terminals itself; OpenDSS's Circuit.Losses is the
    # reference (same sum, computed by OpenDSS). Tolerance: floating-point summation order.
    eng = build_engine(ref, engine="opendss", keep_elements=True)
    n = len(eng.info.bus_ids)
    eng.set_injections(np.random.default_rng(5).normal(0.0, 2.0, n), np.zeros(n))
    snap = eng.solve()
    assert snap.converged
    assert snap.losses_kw == pytest.approx(eng._dss.Circuit.Losses()[0] / 1000.0, rel=1e-9)


REGULATED = """Clear
Set DefaultBaseFrequency=50
New Circuit.regulated bus1=src basekv=11 pu=1.0 phases=3
New Line.mv bus1=src bus2=a phases=3 length=4 units=km r1=0.3 x1=0.35 r0=0.3 x0=0.35 c1=0 c0=0 normamps=300
New Transformer.reg phases=3 windings=2 buses=[a, b] conns=[wye, wye] kvs=[11, 11] kvas=[5000, 5000] XHL=0.1 %loadloss=0.01
New RegControl.reg transformer=reg winding=2 vreg=126 band=1 ptratio=50
New Line.feeder bus1=b bus2=c phases=3 length=3 units=km r1=0.3 x1=0.35 r0=0.3 x0=0.35 c1=0 c0=0 normamps=300
New Load.big bus1=c phases=3 kV=11 kW=3000 kvar=900
Set VoltageBases=[11]
CalcVoltageBases
"""


def _reference_results(eng) -> tuple[np.ndarray, np.ndarray]:
    """Bus voltages [pu] and line loadings [%] read element by element through OpenDSS's own interfaces."""
    d = eng._dss
    vm = []
    for bus in eng.info.bus_ids:
        d.Circuit.SetActiveBus(bus)
        vm.append(np.mean(d.Bus.puVmagAngle()[0::2]))
    loading = []
    for line in eng.info.line_ids:
        d.Circuit.SetActiveElement(f"Line.{line}")
        amps = np.asarray(d.CktElement.CurrentsMagAng()[0::2])
        d.Lines.Name(line)
        loading.append(100.0 * amps.max() / d.Lines.NormAmps())
    return np.asarray(vm), np.asarray(loading)


@pytest.mark.parametrize("source", ["file", "regulated"])
def test_results_equal_what_opendss_reports_element_by_element(tmp_path, source):
    # The engine reads voltages from OpenDSS's solution array and computes terminal currents as YPrim * V in one
    # sparse product; the regulated feeder has a RegControl, whose tap changes alter a YPrim inside the solve, so
    # there the engine reads OpenDSS's currents instead. Both must give what OpenDSS reports per bus and line
    # (tolerance: floating-point order of operations).
    if source == "file":
        eng = OpenDSSEngine(FEEDER, keep_elements=True)
        p = np.array([0.0, 4.0, -9.0])
    else:
        path = tmp_path / "regulated.dss"
        path.write_text(REGULATED)
        eng = OpenDSSEngine(path, keep_elements=True)
        p = np.zeros(len(eng.info.bus_ids))
        p[eng.info.bus_index("c")] = -1500.0  # 1.5 MW more each step: the regulator moves its tap every step
    assert (eng._y_branch is None) == (source == "regulated")
    n = len(eng.info.bus_ids)
    taps = []
    for step in range(3):
        eng.set_injections(p * (step + 1), np.zeros(n))
        snap = eng.solve()
        assert snap.converged
        vm, loading = _reference_results(eng)
        np.testing.assert_allclose(snap.vm_pu, vm, rtol=0, atol=1e-9)
        np.testing.assert_allclose(snap.line_loading_pct, loading, rtol=1e-9)
        assert snap.losses_kw == pytest.approx(eng._dss.Circuit.Losses()[0] / 1000.0, rel=1e-9)
        if source == "regulated":
            eng._dss.Transformers.Name("reg")
            eng._dss.Transformers.Wdg(2)
            taps.append(eng._dss.Transformers.Tap())
    if source == "regulated":
        assert taps[0] < taps[1] < taps[2]  # the regulator acted inside each solve (the case the fallback is for)


def test_partial_injection_updates_stay_exact():
    # Only the loads whose value changed are written: a step that changes a few buses must solve exactly as a
    # fresh engine given the same injections.
    rng = np.random.default_rng(4)
    n = 129
    p, q = rng.normal(-2, 1, n), rng.normal(-0.5, 0.2, n)
    p2, q2 = p.copy(), q.copy()
    p2[[3, 40, 77]] += 5.0
    q2[[40, 90]] -= 1.0
    _, stepped, _, direct = _stepped_and_fresh("simbench:1-LV-rural3--0-sw", (p, q), (p2, q2))
    np.testing.assert_allclose(stepped.vm_pu, direct.vm_pu, atol=1e-8)
    assert stepped.ext_grid_p_kw == pytest.approx(direct.ext_grid_p_kw, abs=1e-4)
    assert stepped.ext_grid_q_kvar == pytest.approx(direct.ext_grid_q_kvar, abs=1e-4)

"""Unbalanced networks on both engines: pandapower's runpp_3ph and OpenDSS per phase, against a closed form.

The network: a stiff 400 V source, one 3-phase cable (self impedance only, r0 = r1, x0 = x1, no capacitance,
so the phases are uncoupled) and single-phase loads at its end: phase a 12 kW + 3 kvar, phase b 5 kW + 1 kvar,
phase c none. Each phase is then a two-bus circuit with the closed-form solution of ``_two_bus``.
"""

import numpy as np
import pandapower as pp
import pytest

from simulators.grid.opendss_engine import OpenDSSEngine
from simulators.grid.pandapower_engine import PandapowerEngine
from testbed.domain.errors import UserError

V_PHASE = 400.0 / np.sqrt(3.0)
Z = 0.25 * (0.4 + 0.2j)  # [ohm] per phase
LOADS = {"a": 12000.0 + 3000.0j, "b": 5000.0 + 1000.0j, "c": 0.0j}  # [VA]


def _two_bus(s_va: complex, z: complex) -> float:
    """|V| [pu] at the end of z feeding constant power s_va from a stiff source: the upper root of
    |V|^4 - (|Vs|^2 - 2(PR + QX)) |V|^2 + |S|^2 |Z|^2 = 0."""
    p, q, r, x = s_va.real, s_va.imag, z.real, z.imag
    b = V_PHASE**2 - 2.0 * (p * r + q * x)
    return float(np.sqrt((b + np.sqrt(b * b - 4.0 * abs(s_va) ** 2 * abs(z) ** 2)) / 2.0)) / V_PHASE


def _pandapower_net(with_zero_sequence: bool = True) -> pp.pandapowerNet:
    net = pp.create_empty_network(f_hz=50.0)
    src = pp.create_bus(net, vn_kv=0.4, name="src")
    n1 = pp.create_bus(net, vn_kv=0.4, name="n1")
    pp.create_ext_grid(net, src, vm_pu=1.0, s_sc_max_mva=1e6, rx_max=0.1, r0x0_max=0.1, x0x_max=1.0)
    zero = {"r0_ohm_per_km": 0.4, "x0_ohm_per_km": 0.2, "c0_nf_per_km": 0.0} if with_zero_sequence else {}
    pp.create_line_from_parameters(
        net, src, n1, length_km=0.25, r_ohm_per_km=0.4, x_ohm_per_km=0.2, c_nf_per_km=0.0, max_i_ka=0.15,
        name="main", **zero,
    )
    pp.create_asymmetric_load(
        net, n1, p_a_mw=0.012, q_a_mvar=0.003, p_b_mw=0.005, q_b_mvar=0.001, p_c_mw=0.0, q_c_mvar=0.0,
        type="wye", name="houses",
    )
    return net


FEEDER = """Clear
Set DefaultBaseFrequency=50
New Circuit.three_phase bus1=src basekv=0.4 pu=1.0 phases=3 MVAsc3=1e9 MVAsc1=1e9
New Line.main bus1=src bus2=n1 phases=3 length=0.25 units=km r1=0.4 x1=0.2 r0=0.4 x0=0.2 c1=0 c0=0 normamps=150
New Load.a bus1=n1.1 phases=1 kV=0.23094 kW=12 kvar=3 model=1 vminpu=0.5 vmaxpu=1.5
New Load.b bus1=n1.2 phases=1 kV=0.23094 kW=5 kvar=1 model=1 vminpu=0.5 vmaxpu=1.5
Set VoltageBases=[0.4]
CalcVoltageBases
"""


def _solve(eng):
    n = len(eng.info.bus_ids)
    eng.set_injections(np.zeros(n), np.zeros(n))
    snap = eng.solve()
    assert snap.converged, snap.message
    return snap


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    path = tmp_path_factory.mktemp("feeder") / "three_phase.dss"
    path.write_text(FEEDER)
    pp_eng = PandapowerEngine(_pandapower_net(), keep_elements=True, name="three_phase")
    dss_eng = OpenDSSEngine(path, keep_elements=True, name="three_phase")
    assert pp_eng.info.unbalanced and dss_eng.info.unbalanced
    return _solve(pp_eng), _solve(dss_eng)


def test_per_phase_voltages_match_the_closed_form_on_both_engines(snaps):
    expected = [_two_bus(LOADS[x], Z) for x in "abc"]
    for snap in snaps:
        # Source impedance: s_sc 1e6 MVA (pandapower) / 1e9 MVA (OpenDSS) -> < 1e-7 pu; solvers to 1e-8.
        np.testing.assert_allclose(snap.vm_pu_phase[1], expected, atol=2e-6)
        np.testing.assert_allclose(snap.vm_pu_phase[0], 1.0, atol=2e-6)
        assert snap.vm_pu[1] == pytest.approx(np.mean(expected), abs=2e-6)


def test_losses_and_source_power_agree_between_engines(snaps):
    pp_snap, dss_snap = snaps
    # |I|^2 R per phase, from the closed-form voltages.
    loss_w = sum(abs(LOADS[x] / (_two_bus(LOADS[x], Z) * V_PHASE)) ** 2 * Z.real for x in "ab")
    for snap in snaps:
        assert snap.losses_kw == pytest.approx(loss_w / 1000.0, rel=1e-4)
        assert snap.ext_grid_p_kw == pytest.approx(17.0 + snap.losses_kw, abs=1e-3)
    assert pp_snap.line_loading_pct[0] == pytest.approx(dss_snap.line_loading_pct[0], rel=1e-4)


def test_three_phase_without_zero_sequence_data_is_a_user_error():
    with pytest.raises(UserError, match="zero-sequence data"):
        PandapowerEngine(_pandapower_net(with_zero_sequence=False), keep_elements=True, name="no_zero_sequence")

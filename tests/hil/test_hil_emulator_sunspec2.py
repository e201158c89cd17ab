"""Emulated devices read and written by an independent client: pysunspec2's own Modbus client
(``sunspec2.modbus.client.SunSpecModbusClientDeviceTCP``, which does not use pymodbus).

The emulator's clock is manual here: the test advances device time, so "within its response time" is checked
in device time, never against the wall clock.
"""

from __future__ import annotations

import pytest
import sunspec2.modbus.client as ss_client
import sunspec2.modbus.modbus as ss_modbus
from pymodbus.client import ModbusTcpClient

from hil.behaviour import DerBehaviour, DerControls, DerRating, GridInputs
from hil.emulator import GRID_CHANNEL_STRIDE, DeviceSpec, EmulatorThread

DT = 0.05


def _scan(port: int, unit: int = 1) -> ss_client.SunSpecModbusClientDeviceTCP:
    dev = ss_client.SunSpecModbusClientDeviceTCP(slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=2)
    dev.scan()
    return dev


@pytest.fixture
def emu():
    specs = [
        DeviceSpec(DerRating("pv", 10.0, active_power_response_s=1.0), serial="PV-1"),
        DeviceSpec(DerRating("battery", 5.0, capacity_kwh=10.0, soc_init=0.5), serial="BAT-1"),
    ]
    with EmulatorThread(specs, dt_s=DT, clock="manual") as e:
        e.call(lambda h: h.advance(20))
        yield e


def test_scan_finds_models_with_lengths_and_scaled_values(emu):
    pv_port, bat_port = emu.ports
    pv = _scan(pv_port)
    try:
        lengths = {mid: pv.models[mid][0].len for mid in (1, 701, 702, 704, 705, 706, 711)}
        # 1/701/702 from grid-services.md; 704 from pysunspec2 1.3.7's definition; 705 with one curve of
        # 4 points = 13 + 10 + 4·2 = 31; 706 with one curve of 2 points = 13 + 5 + 2·2 = 22 (its header
        # as 705's; a curve is ActPt, DeptRef, RspTms (32 bit), ReadOnly); 711 with one control = 12 + 10 = 22.
        assert lengths == {1: 66, 701: 153, 702: 50, 704: 65, 705: 31, 706: 22, 711: 22}
        assert 713 not in pv.models
        common = pv.models[1][0]
        assert common.SN.value == "PV-1"
        m = pv.models[701][0]
        # 10 kW of PV at 100 % available power, 400 V, 50 Hz as set by the emulated grid simulator.
        assert m.W.cvalue == pytest.approx(10000, abs=1)
        assert m.Hz.cvalue == pytest.approx(50.0, abs=1e-3)
        assert m.LLV.cvalue == pytest.approx(400.0, abs=0.1)
        assert m.LNV.cvalue == pytest.approx(400.0 / 3**0.5, abs=0.1)
        cap = pv.models[702][0]
        assert cap.WMaxRtg.cvalue == 10000 and cap.VAMaxRtg.cvalue == 10000
        assert cap.VarMaxInjRtg.cvalue == pytest.approx(4400)  # Category B: 44 % of rated kVA
    finally:
        pv.close()
    bat = _scan(bat_port)
    try:
        assert bat.models[713][0].len == 7
        st = bat.models[713][0]
        assert st.WHRtg.cvalue == 10000 and st.SoC.cvalue == pytest.approx(50.0, abs=0.1)
        assert bat.models[1][0].SN.value == "BAT-1"
        assert 706 not in bat.models  # a storage unit without Volt-Watt (service tests refuse it)
    finally:
        bat.close()


def test_volt_watt_written_over_706_curtails_the_inverter(emu):
    """An independent client programs 706 (IEEE 1547-2018 Table 10 default, 1.06 pu/100 % to 1.10 pu/20 %);
    at 1.08 pu the linear curve gives 60 % of rated power: 6 kW after a few response times (device time).
    A curve whose V2 is not above V1 is refused with exception 3."""
    pv = _scan(emu.ports[0])
    try:
        vw = pv.models[706][0]
        pts = vw.Crv[0].Pt
        pts[0].V.cvalue, pts[0].W.cvalue, pts[1].V.cvalue, pts[1].W.cvalue = 106.0, 100.0, 110.0, 20.0
        vw.Crv[0].RspTms.cvalue = 2
        vw.Crv[0].write()
        vw.Ena.value = 1
        vw.write()
        emu.call(lambda h: h.device(1).behaviour.grid.__setattr__("vm_pu", 1.08))
        emu.call(lambda h: h.advance(round(10 / DT)))
        m = pv.models[701][0]
        m.read()
        assert m.W.cvalue == pytest.approx(6000, abs=100)  # ±1 % of rating: OpenDER's filter after 5 Tr
        pts[0].V.cvalue, pts[1].V.cvalue = 110.0, 106.0
        with pytest.raises(ss_modbus.ModbusClientException, match="exception: 3"):
            vw.Crv[0].write()
    finally:
        pv.close()


def test_wmaxlimpct_write_is_answered_within_the_response_time(emu):
    pv = _scan(emu.ports[0])
    try:
        ctl = pv.models[704][0]
        ctl.WMaxLimPctEna.value = 1
        ctl.WMaxLimPct.cvalue = 50.0
        ctl.write()
        m = pv.models[701][0]
        m.read()
        assert m.W.cvalue == pytest.approx(10000, abs=1)  # no device time has passed: nothing moved yet
        emu.call(lambda h: h.advance(round(1.0 / DT)))  # one response time (active_power_response_s = 1 s)
        m.read()
        assert m.W.cvalue <= 10000 - 0.9 * 5000  # at least 90 % of the change made
        emu.call(lambda h: h.advance(round(5.0 / DT)))
        m.read()
        assert m.W.cvalue == pytest.approx(5000, abs=10)
        ctl.read()
        assert ctl.WMaxLimPct.cvalue == pytest.approx(50.0) and ctl.WMaxLimPctEna.value == 1
    finally:
        pv.close()


def test_volt_var_on_the_emulator_matches_opender_category_b(emu):
    # The grid simulator (its own Modbus interface) applies 1.05 pu to channel 1; Volt-VAR is enabled over
    # SunSpec 705. Category B gives −22 % of 10 kVA = −2200 var (grid-services.md: OpenDER gives −0.22 pu at
    # 1.05 pu); the same OpenDER run without Modbus must agree to one register step (1 var).
    emu.call(lambda h: h.devices[0].behaviour.grid.__setattr__("available_pct", 50.0))
    grid = ModbusTcpClient("127.0.0.1", port=emu.host.grid_port, timeout=2)
    assert grid.connect()
    try:
        reply = grid.write_registers(GRID_CHANNEL_STRIDE * 1, [10500, 50000], device_id=1)
        assert not reply.isError()
        regs = grid.read_holding_registers(GRID_CHANNEL_STRIDE * 1, count=4, device_id=1).registers
        assert regs == [10500, 50000, 500, 50]
    finally:
        grid.close()
    pv = _scan(emu.ports[0])
    try:
        vv = pv.models[705][0]
        assert [vv.Crv[0].Pt[i].V.cvalue for i in range(4)] == [92.0, 98.0, 102.0, 108.0]
        assert [vv.Crv[0].Pt[i].Var.cvalue for i in range(4)] == [44.0, 0.0, 0.0, -44.0]
        vv.Ena.value = 1
        vv.write()
        emu.call(lambda h: h.advance(round(40.0 / DT)))
        m = pv.models[701][0]
        m.read()
        assert m.Var.cvalue == pytest.approx(-2200, abs=0.005 * 10000)
        ref = DerBehaviour(
            DerRating("pv", 10.0, active_power_response_s=1.0),
            DerControls(volt_var_enabled=True),
            GridInputs(vm_pu=1.0, available_pct=50.0),
        )
        for _ in range(20):  # same history as the emulated device: 20 steps at 1.0 pu ...
            ref.step(DT)
        ref.grid.vm_pu = 1.05
        for _ in range(round(40.0 / DT)):
            state = ref.step(DT)
        assert m.Var.cvalue == pytest.approx(round(state.q_kvar * 1000), abs=1)
    finally:
        pv.close()


def test_invalid_and_read_only_writes_are_refused(emu):
    pv = _scan(emu.ports[0])
    try:
        ctl = pv.models[704][0]
        ctl.WMaxLimPctEna.value = 1
        ctl.WMaxLimPct.cvalue = 150.0  # beyond 100 %: the device answers ILLEGAL_VALUE
        with pytest.raises(ss_modbus.ModbusClientException, match="exception: 3"):
            ctl.write()
    finally:
        pv.close()
    client = ModbusTcpClient("127.0.0.1", port=emu.ports[0], timeout=2)
    assert client.connect()
    try:
        w_address = emu.call(lambda h: h.devices[0].profile.point_address(701, "W"))
        reply = client.write_register(w_address, 1, device_id=1)  # 701.W is read-only
        assert reply.isError() and reply.exception_code == 2
    finally:
        client.close()


def test_several_devices_in_one_process_by_port_and_unit():
    specs = [
        DeviceSpec(DerRating("pv", 4.0), port_group="a", unit=1, serial="A-1"),
        DeviceSpec(DerRating("pv", 6.0), port_group="a", unit=2, serial="A-2"),
        DeviceSpec(DerRating("battery", 3.0, capacity_kwh=6.0), serial="B-1"),
    ]
    with EmulatorThread(specs, dt_s=DT, clock="manual") as e:
        e.call(lambda h: h.advance(10))
        ports = e.ports
        assert ports[0] == ports[1] != ports[2]
        seen = {}
        for port, unit in ((ports[0], 1), (ports[0], 2), (ports[2], 1)):
            dev = _scan(port, unit)
            try:
                seen[dev.models[1][0].SN.value] = dev.models[702][0].WMaxRtg.cvalue
            finally:
                dev.close()
        assert seen == {"A-1": 4000, "A-2": 6000, "B-1": 3000}

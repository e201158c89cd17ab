"""Property-based fuzzing of Modbus writes to an emulated inverter and battery (hypothesis, real Modbus/TCP).

Any write of any registers anywhere in the control models (sentinels, enumerations out of range, partial
points, long runs) gets an answer: success, or exception 2 (a read-only or unmapped register) or 3 (a bad
value), never silence; a refused write changes nothing; an accepted one leaves controls the device can
honour; and the device still answers afterwards. The long run is ``benchmarks/fuzz_long.py``.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.client import ModbusTcpClient

from hil.behaviour import DerRating
from hil.emulator import DeviceSpec, EmulatorThread

SCALE = int(os.environ.get("FPP_FUZZ_SCALE", "1"))
RATED_KW = {"pv": 10.0, "battery": 5.0}


@pytest.fixture(scope="module")
def devices():
    specs = [
        DeviceSpec(DerRating("pv", RATED_KW["pv"]), serial="PV-F"),
        DeviceSpec(DerRating("battery", RATED_KW["battery"], capacity_kwh=10.0), serial="BAT-F"),
    ]
    with EmulatorThread(specs, dt_s=0.05, clock="manual") as emu:
        clients = []
        for port in emu.ports:
            c = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
            assert c.connect()
            clients.append(c)
        spans = emu.call(lambda h: [
            {m: (d.profile.address[m], d.profile.layouts[m].total_registers) for m in (704, 705, 711)}
            for d in h.devices
        ])
        try:
            yield emu, clients, spans
        finally:
            for c in clients:
                c.close()


registers = st.lists(
    st.sampled_from([0, 1, 2, 7, 100, 1000, 0x7FFF, 0x8000, 0xFFFF]) | st.integers(0, 0xFFFF), min_size=1, max_size=12
)


def controls_are_honourable(c, rated_kw: float) -> None:
    assert 0.0 <= c.limit_pct <= 100.0
    assert abs(c.p_set_kw) <= rated_kw * 1.0000001
    assert 0.01 <= c.droop_k <= 0.10 and c.droop_db_hz >= 0 and math.isfinite(c.droop_response_s)
    volts = [v for v, _ in c.volt_var]
    assert volts == sorted(volts) and all(abs(q) <= 0.44 + 1e-9 for _, q in c.volt_var)
    assert all(isinstance(x, bool) for x in (c.limit_enabled, c.p_set_enabled, c.volt_var_enabled, c.droop_enabled))


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([0, 1]), st.sampled_from([704, 705, 711]), st.integers(-2, 80), registers)
def test_any_write_is_answered_and_never_leaves_bad_controls(devices, which, model, offset, values):
    emu, clients, spans = devices
    start, length = spans[which][model]
    address = start + max(0, min(offset, length - 1))
    before = emu.call(lambda h: h.devices[which].behaviour.controls)
    reply = clients[which].write_registers(address, values, device_id=1)
    assert not getattr(reply, "function_code", 0) == 0, reply  # an answer, not a timeout
    after = emu.call(lambda h: h.devices[which].behaviour.controls)
    if reply.isError():
        assert reply.exception_code in (2, 3), reply
        assert after == before
    else:  # accepted: the registers hold what the device acts on (not a value it ignores)
        readback = clients[which].read_holding_registers(address, count=len(values), device_id=1).registers

        def acted_on(h):
            d = h.devices[which]
            first = address - (d.profile.entries[0].address - 2)
            return d.image[first : first + len(values)]

        assert readback == values == emu.call(acted_on)
    controls_are_honourable(after, RATED_KW["pv" if which == 0 else "battery"])
    head = clients[which].read_holding_registers(40000, count=2, device_id=1)
    assert not head.isError() and head.registers == [0x5375, 0x6E53]  # "SunS": still answering

"""Bad writes to an emulated inverter over real Modbus/TCP: each is answered with exception 3 (ILLEGAL DATA
VALUE) and changes nothing. Before this test the device acknowledged them and silently ignored them (the
"not implemented" sentinels, enumerations outside the model's symbols, a mode it does not implement)."""

from __future__ import annotations

import pytest
from pymodbus.client import ModbusTcpClient

from hil.behaviour import DerRating
from hil.emulator import DeviceSpec, EmulatorThread


@pytest.fixture(scope="module")
def pv():
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0), serial="PV-1")], dt_s=0.05, clock="manual") as emu:
        client = ModbusTcpClient("127.0.0.1", port=emu.ports[0], timeout=2)
        assert client.connect()
        try:
            yield emu, client
        finally:
            client.close()


def addr(emu, point: str, model: int = 704) -> int:
    return emu.call(lambda h: h.devices[0].profile.point_address(model, point))


def controls(emu):
    return emu.call(lambda h: h.devices[0].behaviour.controls)


@pytest.mark.parametrize(
    "point, registers",
    [
        ("WMaxLimPct", [0xFFFF]),  # uint16 "not implemented"
        ("WMaxLimPctEna", [7]),  # enum16: DISABLED 0, ENABLED 1
        ("WMaxLimPctEna", [0xFFFF]),
        ("WSetEna", [2]),
        ("WSetMod", [9]),  # not a symbol of model 704
        ("WSetMod", [0]),  # W_MAX_PCT: defined, but this device implements only WATTS
        ("WSet", [0x8000, 0x0000]),  # int32 "not implemented"
        ("WMaxLimPct", [1001]),  # 100.1 %: out of range (scale factor -1)
        ("WMaxLimPctRvrtTms", [0, 60]),  # a point the device does not act on (no reversion timer)
    ],
)
def test_bad_write_is_exception_3_and_changes_nothing(pv, point, registers):
    emu, client = pv
    before = controls(emu)
    reply = client.write_registers(addr(emu, point), registers, device_id=1)
    assert reply.isError() and reply.exception_code == 3, reply
    assert controls(emu) == before


def test_good_writes_are_applied_and_rewriting_a_whole_model_is_accepted(pv):
    emu, client = pv
    reply = client.write_registers(addr(emu, "WMaxLimPctEna"), [1], device_id=1)
    assert not reply.isError()
    assert not client.write_registers(addr(emu, "WMaxLimPct"), [455], device_id=1).isError()  # 45.5 %
    c = controls(emu)
    assert c.limit_enabled and c.limit_pct == pytest.approx(45.5)
    start = addr(emu, "WMaxLimPctEna")  # the run of RW registers WMaxLimPctEna .. WMaxLimPctRvrtTms
    block = client.read_holding_registers(start, count=6, device_id=1).registers
    assert not client.write_registers(start, block, device_id=1).isError()  # the same values back: fine
    assert controls(emu) == c
    assert not client.write_registers(addr(emu, "WMaxLimPctEna"), [0], device_id=1).isError()

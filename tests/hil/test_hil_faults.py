"""Each fault of the issue injected for real: refused connection (nothing listening), timeout (a server that
accepts and never answers: a stand-in, the only way to produce a silent device), Modbus exception (read of an
unmapped register; write of a value the device refuses), "not implemented" sentinel and out-of-range value
(device registers forced by the emulator's fault injection). None of them may hang: every wait below is
bounded, and the client's own timeouts end each call.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from hil.behaviour import DerRating
from hil.client import SunSpecClient
from hil.emulator import DeviceSpec, EmulatorHost, EmulatorThread
from hil.errors import HilAbort, HilConnectionError, HilModbusException, HilTimeout, HilValueError
from hil.link import DeviceLink, LinkConfig, LinkRunner
from hil.policy import Measurement, resolve


class SilentServer:
    """Accepts TCP connections and reads forever without answering (stand-in for a hung device)."""

    async def __aenter__(self):
        async def handle(reader, writer):
            try:
                while await reader.read(1024):
                    pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


def test_refused_connection_is_a_typed_error(refused_port):
    port = refused_port

    async def go():
        async with SunSpecClient(f"127.0.0.1:{port}", 3, connect_timeout_s=0.5):
            pass

    with pytest.raises(HilConnectionError) as err:
        asyncio.run(go())
    assert err.value.kind == "refused" and err.value.unit == 3 and err.value.operation == "connect"
    assert f"127.0.0.1:{port}" in str(err.value)


def test_silent_device_times_out():
    async def go():
        async with SilentServer() as silent:
            client = SunSpecClient(f"127.0.0.1:{silent.port}", 1, timeout_s=0.2)
            await client.connect()
            try:
                await client.read_registers(40000, 2)
            finally:
                await client.close()

    with pytest.raises(HilTimeout) as err:
        asyncio.run(go())
    assert err.value.kind == "timeout" and err.value.register == 40000 and err.value.operation == "read"


def test_unmapped_register_gives_modbus_exception():
    async def go():
        async with EmulatorHost([DeviceSpec(DerRating("pv", 5.0))], clock="manual") as host:
            async with SunSpecClient(f"127.0.0.1:{host.devices[0].port}") as dev:
                await dev.read_registers(30000, 4)

    with pytest.raises(HilModbusException) as err:
        asyncio.run(go())
    assert err.value.code == 2 and err.value.register == 30000  # 2 = ILLEGAL DATA ADDRESS


def test_sentinel_reads_as_not_implemented():
    async def go():
        async with EmulatorHost([DeviceSpec(DerRating("pv", 5.0))], clock="manual") as host:
            host.override(1, 701, "W", 0x8000)  # int16 "not implemented"
            async with SunSpecClient(f"127.0.0.1:{host.devices[0].port}") as dev:
                return await dev.read_model(701)

    values = asyncio.run(go())
    assert values["W"] is None and values["Hz"] == pytest.approx(50.0)


def _wait_for(pred, timeout_s=5.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def battery_emu():
    with EmulatorThread([DeviceSpec(DerRating("battery", 5.0, capacity_kwh=10.0))], dt_s=0.05) as emu:
        yield emu


def _link(port: int, rated_kw: float = 5.0, name: str = "bat") -> DeviceLink:
    return DeviceLink(
        LinkConfig(name, f"127.0.0.1:{port}", 1, "battery", rated_kw, timeout_s=0.2, connect_timeout_s=0.3)
    )


@pytest.mark.parametrize(("raw", "why"), [(0x8000, "not implemented"), (30000, "outside")])
def test_link_marks_sentinel_and_out_of_range_samples_invalid(battery_emu, raw, why):
    # 30000 W on a 5 kW battery (W_SF = 0) is 6 × its rating: outside the ±1.2 × rating a sample may take.
    link = _link(battery_emu.ports[0])
    runner = LinkRunner([link], period_s=0.05).start()
    try:
        assert _wait_for(lambda: link.latest is not None and link.latest.valid)
        battery_emu.call(lambda h: h.override(1, 701, "W", raw))
        assert _wait_for(lambda: link.latest is not None and not link.latest.valid)
        assert link.latest.fault == "invalid-value"
        battery_emu.call(lambda h: h.override(1, 701, "W", None))
        assert _wait_for(lambda: link.latest.valid)
    finally:
        runner.stop()
    kinds = [e.kind for e in link.events]
    assert kinds == ["invalid-value", "recovered"]
    assert why in link.events[0].detail


def test_link_records_refused_and_timeout_and_modbus_exception(battery_emu, refused_port):
    dead = _link(refused_port, name="dead")
    refusing = _link(battery_emu.ports[0], rated_kw=8.0, name="refusing")  # asks 8 kW of a 5 kW device
    refusing.set_targets(p_set_kw=8.0)

    async def silent_forever(stop: asyncio.Event, ports: list[int]):
        async with SilentServer() as s:
            ports.append(s.port)
            await stop.wait()

    import threading

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ports: list[int] = []
    t = threading.Thread(target=loop.run_until_complete, args=(silent_forever(stop, ports),), daemon=True)
    t.start()
    assert _wait_for(lambda: ports)
    hung = _link(ports[0], name="hung")
    runner = LinkRunner([dead, refusing, hung], period_s=0.05).start()
    try:
        assert _wait_for(lambda: all(len(x.samples) >= 3 for x in (dead, refusing, hung)))
    finally:
        runner.stop()
        loop.call_soon_threadsafe(stop.set)
        t.join(5)
    assert {s.fault for s in dead.samples} == {"refused"}
    assert {s.fault for s in hung.samples} == {"timeout"}
    assert "modbus-exception" in {s.fault for s in refusing.samples}
    assert not any(s.valid for s in dead.samples + hung.samples)
    assert dead.events[0].kind == "refused" and hung.events[0].kind == "timeout"


def test_policies():
    last = Measurement(2.0, 0.5, 0.4, True)
    model = Measurement(1.0, 0.0, 0.3, False)
    bad = Measurement(0.0, 0.0, None, False)
    ok = Measurement(3.0, 0.1, 0.5, True)
    assert resolve("hold", ok, last, model) is ok
    assert resolve("hold", bad, last, model) == Measurement(2.0, 0.5, 0.4, False)
    assert resolve("hold", None, None, model) == Measurement(0.0, 0.0, None, False)
    assert resolve("fallback-to-model", bad, last, model) == Measurement(1.0, 0.0, 0.3, False)
    with pytest.raises(HilAbort, match="timeout"):
        resolve("abort", bad, last, model, reason="timeout")


def test_value_error_carries_point():
    err = HilValueError("bad", point="701.W", value=5, address="h:1", unit=2, operation="read")
    assert err.point == "701.W" and err.kind == "invalid-value" and "h:1 unit 2 read" in str(err)


def test_link_reconnects_when_the_device_comes_back():
    # The device goes away (its server stops) and comes back on the same port: the link reports the loss,
    # keeps ticking without hanging, and recovers by itself.
    spec = [DeviceSpec(DerRating("battery", 5.0, capacity_kwh=10.0))]
    emu = EmulatorThread(spec, dt_s=0.05).start()
    port = emu.ports[0]
    link = _link(port)
    runner = LinkRunner([link], period_s=0.05).start()
    try:
        assert _wait_for(lambda: link.latest is not None and link.latest.valid)
        emu.stop()
        assert _wait_for(lambda: not link.latest.valid)
        emu = EmulatorThread([DeviceSpec(spec[0].rating, port=port)], dt_s=0.05).start()
        assert _wait_for(lambda: link.latest.valid)
    finally:
        runner.stop()
        emu.stop()
    kinds = [e.kind for e in link.events]
    assert kinds[0] in ("disconnected", "refused", "timeout") and kinds[-1] == "recovered"

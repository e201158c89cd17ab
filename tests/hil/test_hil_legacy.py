"""Reading the legacy SunSpec family (103 inverter, 120–124 nameplate/settings/status/controls/storage).

The legacy device is a static register map served by pymodbus' SimDevice (a server under the test's control);
its registers are encoded by our codec and read back both by our adapter and by pysunspec2's own client, so an
error in the codec cannot hide behind itself.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import sunspec2.modbus.client as ss_client
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hil.client import SunSpecClient
from hil.codec import device_map, encode_model, layout_model, map_registers
from hil.link import DeviceLink, LinkConfig, LinkRunner

LEGACY = {
    1: ({"Mn": "Legacy", "Md": "Inv-3ph", "SN": "L-1"}, {}),
    103: (
        {
            "A": 14.4,
            "PhVphA": 230.1,
            "PhVphB": 230.2,
            "PhVphC": 229.9,
            "W": -3200,
            "Hz": 50.01,
            "VAr": 150,
            "WH": 123456,
            "TmpCab": 35.5,
            "St": 4,
            "Evt1": 0,
            "Evt2": 0,
        },
        {"A_SF": -1, "V_SF": -1, "W_SF": 0, "Hz_SF": -2, "VAr_SF": 0, "WH_SF": 0, "Tmp_SF": -1},
    ),
    120: ({"DERTyp": 82, "WRtg": 5000, "VARtg": 5000}, {"WRtg_SF": 0, "VARtg_SF": 0}),
    121: ({"WMax": 5000, "VRef": 230, "VRefOfs": 0}, {"WMax_SF": 0, "VRef_SF": 0, "VRefOfs_SF": 0}),
    122: ({"PVConn": 0, "StorConn": 1, "ECPConn": 1}, {}),
    123: (
        {"Conn": 1, "WMaxLimPct": 100, "WMaxLim_Ena": 0, "OutPFSet": 1.0, "OutPFSet_Ena": 0, "VArPct_Ena": 0},
        {"WMaxLimPct_SF": 0, "OutPFSet_SF": -3},
    ),
    124: (
        {"WChaMax": 5000, "WChaGra": 100, "WDisChaGra": 100, "StorCtl_Mod": 0, "ChaState": 64.5},
        {"WChaMax_SF": 0, "WChaDisChaGra_SF": 0, "ChaState_SF": -1},
    ),
}


@pytest.fixture(scope="module")
def legacy_port():
    layouts = [layout_model(m) for m in LEGACY]
    entries = device_map(layouts)
    image = map_registers(entries, [encode_model(x, *LEGACY[x.model_id]) for x in layouts])
    ready = threading.Event()
    state = {}

    async def serve():
        server = ModbusTcpServer(
            SimDevice(id=1, simdata=[SimData(40000, values=image, datatype=DataType.REGISTERS)]),
            address=("127.0.0.1", 0),
        )
        await server.serve_forever(background=True)
        state["port"] = server.transport.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await state["stop"].wait()
        await server.shutdown()

    t = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    t.start()
    assert ready.wait(10)
    yield state["port"]
    state["loop"].call_soon_threadsafe(state["stop"].set)
    t.join(10)


def test_our_client_reads_legacy_models(legacy_port):
    async def go():
        async with SunSpecClient(f"127.0.0.1:{legacy_port}") as dev:
            return (
                {m: e.layout.length for m, e in dev.models.items()},
                await dev.read_model(103),
                await dev.read_model(124),
            )

    lengths, inv, storage = asyncio.run(go())
    assert lengths == {1: 66, 103: 50, 120: 26, 121: 30, 122: 44, 123: 24, 124: 24}
    assert inv["W"] == -3200 and inv["Hz"] == pytest.approx(50.01) and inv["PhVphA"] == pytest.approx(230.1)
    assert inv["VA"] is None  # not implemented on this device
    assert storage["ChaState"] == pytest.approx(64.5)


def test_pysunspec2_reads_the_same_values(legacy_port):
    dev = ss_client.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=legacy_port, timeout=2)
    dev.scan()
    try:
        inv = dev.models[103][0]
        assert inv.W.cvalue == -3200 and inv.Hz.cvalue == pytest.approx(50.01)
        assert inv.TmpCab.cvalue == pytest.approx(35.5) and inv.WH.cvalue == 123456
        assert dev.models[124][0].ChaState.cvalue == pytest.approx(64.5)
        assert dev.models[1][0].SN.value == "L-1"
    finally:
        dev.close()


def test_link_reads_a_legacy_battery(legacy_port):
    # Measurements come from 103 (W, VAr) and SoC from 124 ChaState when 701/713 are absent.
    link = DeviceLink(LinkConfig("legacy", f"127.0.0.1:{legacy_port}", 1, "battery", 5.0))
    runner = LinkRunner([link], period_s=0.05).start()
    try:
        end = time.monotonic() + 5
        while time.monotonic() < end and not (link.latest and link.latest.valid):
            time.sleep(0.02)
    finally:
        runner.stop()
    s = link.latest
    assert s.valid and s.p_kw == pytest.approx(-3.2) and s.q_kvar == pytest.approx(0.15)
    assert s.soc == pytest.approx(0.645)

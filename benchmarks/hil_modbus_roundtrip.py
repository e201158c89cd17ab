"""Round trip of a SunSpec 701 read through the adapter against a bare pymodbus read, on loopback.

Both read the same 155 registers (ID, L and the 153 points of model 701) from the same emulated inverter, in
the same two requests (125 + 30 registers, the Modbus limit being 125); the adapter also decodes and scales
every point. Prints median and p99 per read and the ratio of the medians.

Run: .venv/bin/python benchmarks/hil_modbus_roundtrip.py [--reads 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np
from pymodbus.client import AsyncModbusTcpClient

from hil.behaviour import DerRating
from hil.client import SunSpecClient
from hil.emulator import DeviceSpec, EmulatorThread


async def measure(port: int, reads: int) -> tuple[list[float], list[float]]:
    adapter_s: list[float] = []
    bare_s: list[float] = []
    async with SunSpecClient(f"127.0.0.1:{port}", 1, timeout_s=2.0) as dev:
        address = dev.models[701].address
        bare = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0)
        await bare.connect()
        try:
            for _ in range(50):  # warm-up
                await dev.read_model(701)
                await bare.read_holding_registers(address, count=125, device_id=1)
            for _ in range(reads):  # interleaved so both see the same machine load
                t = time.perf_counter()
                await dev.read_model(701)
                adapter_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                r1 = await bare.read_holding_registers(address, count=125, device_id=1)
                r2 = await bare.read_holding_registers(address + 125, count=30, device_id=1)
                bare_s.append(time.perf_counter() - t)
                assert not r1.isError() and not r2.isError()
        finally:
            bare.close()
    return adapter_s, bare_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args()
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0))], dt_s=0.05) as emu:
        adapter_s, bare_s = asyncio.run(measure(emu.ports[0], args.reads))
    a_med, b_med = statistics.median(adapter_s), statistics.median(bare_s)
    a_p99, b_p99 = np.percentile(adapter_s, 99), np.percentile(bare_s, 99)
    print(f"701 read, {args.reads} reads each, loopback, emulator clock at 20 Hz in its own thread")
    print(f"adapter (read + decode): median {a_med * 1e3:.3f} ms, p99 {a_p99 * 1e3:.3f} ms")
    print(f"bare pymodbus (2 reads): median {b_med * 1e3:.3f} ms, p99 {b_p99 * 1e3:.3f} ms")
    print(f"ratio adapter / bare (medians): {a_med / b_med:.2f}")


if __name__ == "__main__":
    main()

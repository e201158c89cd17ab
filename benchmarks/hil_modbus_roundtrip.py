"""Round trip of a SunSpec 701 read through the adapter against a bare pymodbus read, on loopback.

All three read the same 155 registers (ID, L and the 153 points of model 701) from the same emulated inverter,
in the same two requests (125 + 30 registers, the Modbus limit being 125):

- bare: pymodbus ``AsyncModbusTcpClient``, no decoding;
- adapter, the link's read: ``read_model(701, points=("W", "Var"))``, what the HIL link asks for each tick;
- adapter, every point: ``read_model(701)``, all 72 points decoded and scaled.

Reads are interleaved so that all three see the same machine load. Prints median and p99 per read and the
ratios of the medians to the bare read (target for the link's read: <= 1.1), and the CPU time of the decoding
alone (``decode_model`` on one 701 image, best of 7 repeats of 5,000 calls, ``time.process_time``).

Run: .venv/bin/python benchmarks/hil_modbus_roundtrip.py [--reads 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit

import numpy as np
from pymodbus.client import AsyncModbusTcpClient

from hil.behaviour import DerRating
from hil.client import SunSpecClient
from hil.codec import decode_model, encode_model, layout_model
from hil.emulator import DeviceSpec, EmulatorThread

LINK_POINTS = ("W", "Var")


async def measure(port: int, reads: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"bare": [], "link": [], "all": []}
    async with SunSpecClient(f"127.0.0.1:{port}", 1, timeout_s=2.0) as dev:
        address = dev.models[701].address
        bare = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0)
        await bare.connect()

        async def bare_read() -> None:
            r1 = await bare.read_holding_registers(address, count=125, device_id=1)
            r2 = await bare.read_holding_registers(address + 125, count=30, device_id=1)
            if r1.isError() or r2.isError():
                raise RuntimeError("bare read failed")

        reads_by_name = {
            "bare": bare_read,
            "link": lambda: dev.read_model(701, points=LINK_POINTS),
            "all": lambda: dev.read_model(701),
        }
        try:
            for _ in range(50):  # warm-up
                for fn in reads_by_name.values():
                    await fn()
            for i in range(reads):
                # rotate the order so that no variant always follows another
                names = list(reads_by_name)[i % 3 :] + list(reads_by_name)[: i % 3]
                for name in names:
                    t = time.perf_counter()
                    await reads_by_name[name]()
                    times[name].append(time.perf_counter() - t)
        finally:
            bare.close()
    return times


def decode_cpu_us() -> dict[str, float]:
    """CPU time of decoding one 701 image [us]: every point, and the link's points."""
    layout = layout_model(701)
    regs = encode_model(layout, {"W": 5000.0, "Var": 100.0, "Hz": 50.0}, {"W_SF": 0, "Var_SF": 0, "Hz_SF": -2})
    calls = {"all": lambda: decode_model(layout, regs), "link": lambda: decode_model(layout, regs, points=LINK_POINTS)}
    return {k: min(timeit.Timer(fn, timer=time.process_time).repeat(7, 5000)) / 5000 * 1e6 for k, fn in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args()
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0))], dt_s=0.05) as emu:
        times = asyncio.run(measure(emu.ports[0], args.reads))
    med = {k: statistics.median(v) for k, v in times.items()}
    p99 = {k: float(np.percentile(v, 99)) for k, v in times.items()}
    labels = {
        "bare": "bare pymodbus (2 requests)",
        "link": f"adapter, the link's read {LINK_POINTS}",
        "all": "adapter, every point decoded",
    }
    print(f"701 read, {args.reads} reads each, interleaved, loopback, emulator clock at 20 Hz in its own thread")
    for k, label in labels.items():
        print(f"{label:45s} median {med[k] * 1e3:.3f} ms, p99 {p99[k] * 1e3:.3f} ms")
    print(f"ratio adapter / bare (medians): link's read {med['link'] / med['bare']:.3f} (target <= 1.1), "
          f"every point {med['all'] / med['bare']:.3f}")
    cpu = decode_cpu_us()
    print(f"decode CPU per read: link's points {cpu['link']:.1f} us, every point {cpu['all']:.1f} us")


if __name__ == "__main__":
    main()

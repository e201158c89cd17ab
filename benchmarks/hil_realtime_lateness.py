"""Lateness of a real-time run with 10 emulated devices polled and written at 20 Hz.

A mosaik world paced at wall-clock speed (``rt_factor=1.0``, 50 ms steps) holds the HIL simulator with 10
emulated devices (5 PV inverters and 5 batteries, served by two ``fpp hil emulate`` processes as a lab's
devices would be separate from the co-simulation) and a driver that sends new setpoints every step. The
adapter's own 20 Hz tick reads 701 (and 713 for batteries) and writes setpoints; prints the lateness of those
ticks (p50/p99/max, missed deadlines) and of the mosaik steps.

Run: .venv/bin/python benchmarks/hil_realtime_lateness.py [--seconds 30] [--devices 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
from contextlib import ExitStack

import mosaik
import mosaik_api_v3
from mosaik.starters import PythonStarter


class Driver(mosaik_api_v3.Simulator):
    def __init__(self, n: int):
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {"D": {"public": True, "params": [], "attrs": ["p_set_kw", "p_limit_pct", "vm_pu", "f_hz"]}},
            }
        )
        self.n = n
        self.t = 0

    def create(self, num, model):
        return [{"eid": f"d{i}", "type": "D"} for i in range(num)]

    def step(self, time, inputs, max_advance):
        self.t = time
        return time + 1

    def get_data(self, outputs):
        s = math.sin(self.t / 20.0)
        return {
            eid: {"p_set_kw": 2.0 * s, "p_limit_pct": 60.0 + 40.0 * s, "vm_pu": 1.0 + 0.02 * s, "f_hz": 50.0}
            for eid in outputs
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--devices", type=int, default=10)
    args = parser.parse_args()
    logging.getLogger("mosaik").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    n = args.devices
    steps = round(args.seconds / 0.05)
    with ExitStack() as stack:
        devices = []  # (kind, address, unit, grid address, grid channel)
        for kind, extra in (("inverter", []), ("battery", ["--capacity-kwh", "10"])):
            count = n // 2 if kind == "inverter" else n - n // 2
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "testbed",
                    "hil",
                    "emulate",
                    "--kind",
                    kind,
                    "--port",
                    "0",
                    "--count",
                    str(count),
                    "--rated-kw",
                    "5",
                    *extra,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(proc.wait, 10)
            stack.callback(proc.terminate)
            info = json.loads(proc.stdout.readline())
            for d in info["devices"]:
                devices.append(
                    (
                        "pv" if kind == "inverter" else "battery",
                        d["address"],
                        d["unit"],
                        info["grid_simulator"],
                        d["grid_channel"],
                    )
                )
        world = mosaik.World(
            {"HIL": {"python": "hil.mosaik_sim:HilSimulator"}, "Drv": PythonStarter(Driver, kwargs={"n": n})},
            time_resolution=0.05,
            debug=False,
        )
        hil = world.start("HIL", step_size=1, period_s=0.05, rt_factor=1.0)
        drivers = world.start("Drv").D.create(n)
        for i, ((kind, address, unit, grid, channel), drv) in enumerate(zip(devices, drivers, strict=True)):
            dev = hil.Device(
                kind=kind,
                address=address,
                unit=unit,
                prosumer_id=f"p{i}",
                bus=f"b{i}",
                rated_kw=5.0,
                fault_policy="hold",
                grid_address=grid,
                grid_channel=channel,
            )
            attrs = ["p_set_kw", "vm_pu", "f_hz"] if kind == "battery" else ["p_limit_pct", "vm_pu", "f_hz"]
            world.connect(drv, dev, *attrs)
        world.run(until=steps, rt_factor=1.0, shutdown=False, print_progress=False)
        kpis = hil.kpis()
        world.shutdown()
    # Baseline: the same pacing with no device at all (mosaik's own real-time scheduling jitter).
    world = mosaik.World({"HIL": {"python": "hil.mosaik_sim:HilSimulator"}}, time_resolution=0.05, debug=False)
    base = world.start("HIL", step_size=1, period_s=0.05, rt_factor=1.0)
    world.run(until=steps, rt_factor=1.0, shutdown=False, print_progress=False)
    baseline = base.kpis()
    world.shutdown()
    print(f"{n} emulated devices, 20 Hz adapter tick, {steps} mosaik steps of 50 ms at rt_factor 1.0")
    print(
        json.dumps({k: (round(v * 1e3, 3) if k.endswith("_s") else v) for k, v in kpis.items()}, indent=1).replace(
            '_s":', '_ms":'
        )
    )

    print(
        "baseline, mosaik alone (no device): "
        + ", ".join(
            f"{k[:-2]} {v * 1e3:.3f} ms" if k.endswith("_s") else f"{k} {v}"
            for k, v in baseline.items()
            if k.startswith("step_")
        )
    )


if __name__ == "__main__":
    main()

"""Lateness of a real-time run with 10 emulated devices polled and written at 20 Hz.

A mosaik world paced at wall-clock speed (50 ms steps; ``--pacing clock``: every simulator paced by the run's
wall clock as ``fpp run --real-time`` does, ``--pacing mosaik``: mosaik's ``rt_factor`` alone) holds the HIL
simulator with 10 emulated devices (5 PV inverters and 5 batteries, served by two ``fpp hil emulate`` processes
as a lab's devices would be separate from the co-simulation) and a driver that sends new setpoints every step. The
adapter's own 20 Hz tick reads 701 (and 713 for batteries) and writes setpoints; prints the lateness of those
ticks (p50/p99/max, missed deadlines) and of the mosaik steps.

Run: .venv/bin/python benchmarks/hil_realtime_lateness.py [--seconds 600] [--devices 10] [--step-s 0.05]
     [--pacing clock|mosaik]     (the issue's targets: --seconds 600 at 20 Hz; --seconds 3600 --step-s 1)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import warnings
from contextlib import ExitStack
from functools import partial

import mosaik
import mosaik_api_v3
from mosaik.starters import PythonStarter

from hil.mosaik_sim import HilSimulator
from simulators.pacing import Paced, WallClock

ARGS: argparse.Namespace


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
    parser.add_argument("--step-s", type=float, default=0.05, help="mosaik step [s] (0.05: 20 Hz; 1: a lab run)")
    parser.add_argument("--pacing", choices=("clock", "mosaik"), default="clock",
                        help="clock: the runner's pacing (simulators/pacing.py); mosaik: rt_factor alone")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the second run of the same length without devices")
    global ARGS
    ARGS = args = parser.parse_args()
    logging.getLogger("mosaik").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    n = args.devices
    steps = round(args.seconds / args.step_s)
    with ExitStack() as stack:
        devices = []  # (kind, address, unit, grid address, grid channel)
        for kind, extra in (("inverter", []), ("battery", ["--capacity-kwh", "10"])):
            count = n // 2 if kind == "inverter" else n - n // 2
            if count == 0:
                continue
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
        kpis, clock = _run_world(devices, n, steps, args.step_s)
    # Baseline: the same pacing with no device at all.
    base_kpis, base_clock = _run_world([], 0, steps, args.step_s) if args.baseline else ({}, None)
    load = os.getloadavg()
    print(f"{n} emulated devices, 20 Hz adapter tick, {steps} mosaik steps of {args.step_s * 1000:g} ms, "
          f"pacing: {args.pacing}; load average before/after {load[0]:.2f}")
    io = {k: v for k, v in kpis.items() if k.startswith("hil_io")}
    print("adapter I/O ticks: " + ", ".join(
        f"{k[7:-2]} {v * 1e3:.3f} ms" if k.endswith("_s") else f"{k[7:]} {v}" for k, v in io.items()))
    runs = [("with devices", (kpis, clock))] + ([("no device", (base_kpis, base_clock))] if args.baseline else [])
    for label, (k, c) in runs:
        if c is not None:
            st = c.kpis()
            print(f"steps ({label}, by the run's clock): p50 {st['lateness_p50_ms']:.3f} ms, "
                  f"p99 {st['lateness_p99_ms']:.3f} ms, max {st['lateness_max_ms']:.3f} ms, "
                  f"last {st['lateness_last_ms']:.3f} ms, missed {st['missed_deadlines']} of {st['steps']}")
        else:
            print(f"steps ({label}, mosaik alone, measured by the HIL adapter): " + ", ".join(
                f"{key[5:-2]} {v * 1e3:.3f} ms" if key.endswith("_s") else f"{key} {v}"
                for key, v in k.items() if key.startswith("step_")))


def _run_world(devices, n, steps, step_s):
    """One real-time world: the HIL simulator with ``devices`` and a driver; returns (HIL KPIs, clock)."""
    clock = WallClock(step_s) if ARGS.pacing == "clock" else None

    def starter(cls, **kwargs):
        if clock is None:
            return PythonStarter(cls, kwargs=kwargs)
        return PythonStarter(Paced, kwargs={"inner": partial(cls, **kwargs), "clock": clock})

    world = mosaik.World({}, time_resolution=step_s, skip_greetings=True, configure_logging=False)
    hil = world.start(starter(HilSimulator), sim_id="HIL", step_size=1, period_s=0.05, rt_factor=1.0)
    drivers = world.start(starter(Driver, n=n), sim_id="Drv").D.create(n) if n else []
    for i, ((kind, address, unit, grid, channel), drv) in enumerate(zip(devices, drivers, strict=True)):
        dev = hil.Device(kind=kind, address=address, unit=unit, prosumer_id=f"p{i}", bus=f"b{i}", rated_kw=5.0,
                         fault_policy="hold", grid_address=grid, grid_channel=channel)
        attrs = ["p_set_kw", "vm_pu", "f_hz"] if kind == "battery" else ["p_limit_pct", "vm_pu", "f_hz"]
        world.connect(drv, dev, *attrs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
        world.run(until=steps, rt_factor=1.0, shutdown=False, print_progress=False)
    kpis = hil.kpis()
    world.shutdown()
    return kpis, clock


if __name__ == "__main__":
    main()

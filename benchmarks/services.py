"""Service-validation benchmarks (figures in BENCHMARKS.md).

1. ``dc-sim``: a 15-minute Dynamic Containment test in simulation (0.05 s steps, 18,000 steps), simulated
   battery (OpenDER in-process), whole `run_service_test` (world, device, scoring). Target < 30 s.
2. ``scoring``: scoring a 24-hour 20 Hz record (1,728,000 samples) against DC. Target < 5 s.
3. ``realtime``: a 20 Hz real-time DC test against N emulated batteries (``--devices 10``, ``--minutes 10``), each
   in its own HIL link on one I/O thread; I/O lateness p99 (target < 5 ms) and missed deadlines (target 0).

Usage: ``python benchmarks/services.py dc-sim|scoring|realtime [--minutes M] [--devices N]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

from testbed.domain.services.frequency import FREQUENCY_SERVICES
from testbed.domain.services.scoring import Record, score_frequency_service
from testbed.domain.services.testfile import build_signal, parse_test
from testbed.orchestration.service_test import run_service_test

DC_TEST = """
name: DC 15 min
service: gb-dc-low
contracted_kw: 10
signal: {{kind: steps, points: [{{t_s: 0, f_hz: 50}}, {{t_s: 5, f_hz: 49.5}}, {{t_s: {hold}, f_hz: 49.8}},
  {{t_s: {back}, f_hz: 50}}], duration_s: {dur}}}
device: {{kind: {kind}, type: battery, rated_kw: 10, capacity_kwh: 40, response_s: 0.3}}
"""


def dc_test(minutes: float, kind: str):
    dur = minutes * 60.0
    test = parse_test(DC_TEST.format(hold=dur * 0.5, back=dur * 0.9, dur=dur, kind=kind), "bench")
    return test, build_signal(test)


def bench_dc_sim(minutes: float) -> None:
    test, signal = dc_test(minutes, "simulated")
    t0 = time.perf_counter()
    r = run_service_test(test, signal)
    wall = time.perf_counter() - t0
    print(
        f"dc-sim: {len(r.record)} steps in {wall:.1f} s ({1000 * wall / len(r.record):.2f} ms/step); "
        f"verdict {r.verdict.status}"
    )


def bench_scoring() -> None:
    n = 24 * 3600 * 20
    t = np.arange(n) * 0.05
    rng = np.random.default_rng(0)
    f = 50.0 + np.cumsum(rng.normal(0, 0.0005, n)).clip(-0.6, 0.6)
    p = 10.0 * FREQUENCY_SERVICES["gb-dc-low"].fraction(f)
    events = tuple(t[:: 20 * 600])
    rec = Record.from_arrays(t, f, p, period_s=0.05)
    t0 = time.perf_counter()
    v = score_frequency_service(FREQUENCY_SERVICES["gb-dc-low"], rec, 10.0, events)
    print(f"scoring: {n} samples in {time.perf_counter() - t0:.2f} s; verdict {v.status}")


def bench_realtime(minutes: float, devices: int) -> None:
    """N emulated batteries on the wall clock, each driven by the HIL adapter at 20 Hz from one I/O thread."""
    import mosaik
    from mosaik.starters import PythonStarter

    from hil.behaviour import DerRating
    from hil.emulator import DeviceSpec, EmulatorThread
    from hil.misbehaviour import Misbehaviour
    from hil.mosaik_sim import HilSimulator
    from simulators.frequency.mosaik_sim import FrequencySimulator
    from simulators.pacing import Paced, WallClock

    clock = WallClock(0.05)  # every simulator paced by the run's clock, as `fpp test --real-time` does

    def paced(cls):
        return PythonStarter(Paced, kwargs={"inner": cls, "clock": clock})

    test, signal = dc_test(minutes, "simulated")
    rating = DerRating("battery", 10.0, capacity_kwh=40.0, active_power_response_s=0.3)
    specs = [DeviceSpec(rating, misbehaviour=Misbehaviour(), port_group="bench", unit=i + 1) for i in range(devices)]
    with EmulatorThread(specs, dt_s=0.05, clock="wall") as emu:
        world = mosaik.World({}, time_resolution=0.05, skip_greetings=True, configure_logging=False)
        fsim = world.start(paced(FrequencySimulator), sim_id="F", step_size=1)
        rsim = world.start(paced(FrequencySimulator), sim_id="R", step_size=1)
        src = fsim.Signal(signal=signal)
        resp = rsim.Responder(service=test.frequency_service(), contracted_kw=10.0)
        world.connect(src, resp, "f_hz")
        sink: dict = {}
        hsim = world.start(
            paced(HilSimulator), sim_id="HIL", step_size=1, period_s=0.05, rt_factor=1.0, report_sink=sink
        )
        for i, d in enumerate(emu.host.devices):
            dev = hsim.Device(
                kind="battery",
                address=f"127.0.0.1:{d.port}",
                unit=d.spec.unit,
                prosumer_id=f"b{i}",
                bus="x",
                rated_kw=10.0,
                grid_address=f"127.0.0.1:{emu.host.grid_port}",
                grid_channel=d.channel,
            )
            world.connect(src, dev, "f_hz")
            world.connect(resp, dev, "p_set_kw")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
            world.run(until=int(signal.duration_s / 0.05), rt_factor=1.0, print_progress=False)
        world.shutdown()
    io = sink["report"]["io_lateness"]
    st = clock.kpis()
    print(
        f"realtime: {devices} devices, {minutes:g} min in {time.perf_counter() - t0:.0f} s; I/O ticks {io['ticks']}, "
        f"lateness p50/p99/max {1000 * io['p50_s']:.2f}/{1000 * io['p99_s']:.2f}/{1000 * io['max_s']:.2f} ms, "
        f"missed {io['missed']}; steps (run's clock) lateness p50/p99/max {st['lateness_p50_ms']:.2f}/"
        f"{st['lateness_p99_ms']:.2f}/{st['lateness_max_ms']:.2f} ms, missed {st['missed_deadlines']}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("dc-sim", "scoring", "realtime"))
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--devices", type=int, default=10)
    a = ap.parse_args()
    if a.what == "dc-sim":
        bench_dc_sim(a.minutes or 15.0)
    elif a.what == "scoring":
        bench_scoring()
    else:
        bench_realtime(a.minutes or 10.0, a.devices)

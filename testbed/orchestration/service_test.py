"""``fpp test``: one service test in its own mosaik world: signal -> (service response) -> device -> samples ->
scoring -> verdict (orchestration).

Devices:

- ``simulated``: OpenDER in-process (:class:`hil.misbehaviour.TestedDer`), stepped in simulated time;
- ``emulated``: an emulated SunSpec device (:mod:`hil.emulator`) started for the test. Without ``--real-time``
  its clock is driven step by step over real Modbus I/O (:class:`hil.lockstep.LockStepDevice`): fast and
  deterministic. With ``--real-time`` it runs on the wall clock and is driven like a device in the loop;
- ``hil``: a device at ``address`` (real, or ``fpp hil emulate`` elsewhere), with a grid simulator at
  ``grid_simulator.address``: only in real time, through the HIL adapter's own 20 Hz I/O tick
  (:class:`hil.mosaik_sim.HilSimulator`), whose samples carry their own timestamps and lateness.

The control mode decides who answers the frequency or voltage: ``setpoints`` (the test computes the service
response from the applied frequency each step and writes it as 704 ``WSet``), ``droop`` (the device's own
711), ``volt-var`` (its own 705). A device that stops answering ends the test as ``fault`` (exit 3) with the
criteria judged on what was measured until then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mosaik
import numpy as np
from mosaik.starters import PythonStarter

from hil.behaviour import DerControls, DerRating
from hil.client import SunSpecClient, parse_address
from hil.errors import HilError
from hil.grid_map import GridMap
from hil.lockstep import LockStepDevice
from hil.misbehaviour import Misbehaviour, TestedDer
from hil.program import MissingModels, program
from simulators.devices.mosaik_sim import DeviceSimulator, DeviceStopped, OpenDerDriver
from simulators.frequency.mosaik_sim import FrequencySimulator
from simulators.pacing import Paced, WallClock
from testbed.domain.errors import UserError
from testbed.domain.services.frequency import ResponseController
from testbed.domain.services.scoring import Record, score_frequency_service
from testbed.domain.services.scoring_1547 import score_droop, score_volt_var, score_volt_watt
from testbed.domain.services.signals import HeldStep, TestSignal
from testbed.domain.services.testfile import ServiceTest, build_signal, parse_test
from testbed.domain.verdict import Verdict

log = logging.getLogger(__name__)

FAULT_AFTER_S = 1.0  # a device silent this long has stopped answering
DROOP_DB_HZ_60 = 0.036  # IEEE 1547-2018 Table 24 default deadband, on the 60 Hz basis devices are programmed in


@dataclass
class ServiceTestResult:
    test: ServiceTest
    signal: TestSignal
    record: Record
    verdict: Verdict
    events_s: tuple[float, ...] = ()
    steps: tuple[HeldStep, ...] = ()
    lateness: dict | None = None
    wall_s: float = 0.0
    info: dict = field(default_factory=dict)


def load_test(path: str | Path) -> tuple[ServiceTest, TestSignal]:
    """Read and check a test file, and build its signal (a recorded series read from its CSV)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the test file", [str(exc)]) from None
    test = parse_test(text, str(path))
    recorded = None
    if test.signal.kind == "recorded":
        from simulators.frequency.recorded import read_frequency_csv

        recorded = read_frequency_csv(path.parent / test.signal.file)
    return test, build_signal(test, recorded)


# --- devices -----------------------------------------------------------------------------------------------


def _rating(test: ServiceTest) -> DerRating:
    d = test.device
    return DerRating(
        kind=d.type,
        rated_kw=d.rated_kw,
        rated_kva=d.rated_kva,
        capacity_kwh=d.capacity_kwh,
        soc_init=d.soc_init,
        f_nom_hz=test.f_nom_hz,
        active_power_response_s=d.response_s,
    )


def _droop_settings(test: ServiceTest) -> tuple[float, float, float]:
    """(deadband [Hz, 60 Hz basis], droop [pu], open-loop response time [s]) to program for ``droop``."""
    svc = test.frequency_service()
    db = svc.curve[0][0] * 60.0 / test.f_nom_hz
    k = (svc.curve[-1][0] - svc.curve[0][0]) / test.f_nom_hz
    return db, k, svc.full_delivery_s


def _controls(test: ServiceTest) -> DerControls:
    mode = test.control_mode
    if mode == "setpoints":
        return DerControls(p_set_enabled=True, droop_enabled=False)
    if mode == "droop":
        db, k, olrt = _droop_settings(test)
        return DerControls(droop_enabled=True, droop_db_hz=db, droop_k=k, droop_response_s=olrt)
    if mode == "volt-var":
        c = test.characteristic()
        return DerControls(volt_var_enabled=True, volt_var=c.points, volt_var_response_s=c.tr_s, droop_enabled=False)
    c = test.characteristic()
    return DerControls(volt_watt_enabled=True, volt_watt=c.points, volt_watt_response_s=c.tr_s, droop_enabled=False)


async def _program(client: SunSpecClient, test: ServiceTest) -> None:
    mode = test.control_mode
    c = test.characteristic()
    try:
        await program(
            client,
            mode,
            droop=_droop_settings(test) if mode == "droop" else None,
            curve=c.points if c is not None else None,
            curve_response_s=c.tr_s if c is not None else None,
        )
    except MissingModels as exc:
        raise UserError("the device cannot run this test", [str(exc)]) from None
    except NotImplementedError as exc:
        raise UserError(f"control {mode}: not available", [str(exc)]) from None


def _misbehaviour(test: ServiceTest) -> Misbehaviour:
    m = test.device.misbehave
    return Misbehaviour(**m.model_dump()) if m is not None else Misbehaviour()


# --- worlds ------------------------------------------------------------------------------------------------


def _world(step_s: float) -> mosaik.World:
    return mosaik.World({}, time_resolution=step_s, skip_greetings=True, configure_logging=False)


def _starter(cls: type, clock: WallClock | None) -> PythonStarter:
    """Start ``cls`` as it is, or paced by the wall clock of a real-time test (simulators.pacing)."""
    return PythonStarter(cls) if clock is None else PythonStarter(Paced, kwargs={"inner": cls, "clock": clock})


def _add_source(world: mosaik.World, test: ServiceTest, signal: TestSignal, clock: WallClock | None = None):
    fsim = world.start(_starter(FrequencySimulator, clock), sim_id="Frequency", step_size=1)
    source = fsim.Signal(signal=signal, rated_kw=test.device.rated_kw)
    responder = None
    if test.control_mode == "setpoints":
        rsim = world.start(_starter(FrequencySimulator, clock), sim_id="Response", step_size=1)
        responder = rsim.Responder(
            service=test.frequency_service(), contracted_kw=test.contracted, baseline_kw=test.baseline_kw
        )
        world.connect(source, responder, "f_hz")
    return source, responder


def _run_sim_time(test: ServiceTest, signal: TestSignal, driver) -> tuple[list[dict], str | None]:
    """Run in simulated time (two simulators: the signal, and the device with the service response and the
    record of every step); (rows, fault or None)."""
    world = _world(test.step_s)
    fsim = world.start(PythonStarter(FrequencySimulator), sim_id="Frequency", step_size=1)
    source = fsim.Signal(signal=signal, rated_kw=test.device.rated_kw)
    controller = None
    if test.control_mode == "setpoints":
        controller = ResponseController(test.frequency_service(), test.contracted, test.baseline_kw)
    dsim = world.start(PythonStarter(DeviceSimulator), sim_id="Device", step_size=1)
    rows: list[dict] = []
    der = dsim.Der(
        driver=driver,
        controller=controller,
        sink=rows,
        stop_after_invalid=max(1, math.ceil(FAULT_AFTER_S / test.step_s)),
    )
    world.connect(source, der, "f_hz", "vm_pu", "available_pct")
    n = int(round(signal.duration_s / test.step_s))
    fault = None
    try:
        world.run(until=n, print_progress=False)
    except DeviceStopped as exc:
        fault = f"device stopped answering: {exc}"
    finally:
        world.shutdown()
    return rows, fault


def _record_from_rows(rows: list[dict], step_s: float) -> Record:
    """Probe rows -> a record: each reading is taken at the end of its step (``t_s + step_s``) with the inputs
    applied during that step."""

    def col(name, fill=np.nan):
        return np.array([fill if r.get(name) is None else r[name] for r in rows], dtype=float)

    valid = np.array([bool(r.get("valid")) for r in rows])
    return Record.from_arrays(
        col("t_s") + step_s,
        col("f_applied_hz"),
        col("p_kw"),
        period_s=step_s,
        valid=valid,
        q_kvar=col("q_kvar"),
        vm_pu=col("vm_applied_pu"),
    )


def _run_simulated(test: ServiceTest, signal: TestSignal) -> tuple[Record, str | None, dict]:
    der = TestedDer(_rating(test), _misbehaviour(test))
    rows, fault = _run_sim_time(test, signal, OpenDerDriver(der, _controls(test)))
    return _record_from_rows(rows, test.step_s), fault, {"device": "simulated (OpenDER in-process)"}


def _run_emulated_lockstep(test: ServiceTest, signal: TestSignal) -> tuple[Record, str | None, dict]:
    from hil.emulator import DeviceSpec, EmulatorThread

    spec = DeviceSpec(_rating(test), misbehaviour=_misbehaviour(test))
    with EmulatorThread([spec], dt_s=test.step_s, clock="manual") as emu:
        address = f"127.0.0.1:{emu.ports[0]}"
        grid = f"127.0.0.1:{emu.host.grid_port}"
        dev = LockStepDevice(
            "dut",
            address,
            1,
            kind=test.device.type,
            rated_kw=test.device.rated_kw,
            grid_address=grid,
            grid_channel=1,
            advance=lambda dt: emu.call(lambda h: h.advance(1)),
            timeout_s=0.3,
        )
        try:
            try:
                dev.open()
            except HilError as exc:
                raise UserError(f"emulated device at {address}: cannot connect", [str(exc)]) from None
            dev.run(_program(dev.client, test))
            rows, fault = _run_sim_time(test, signal, dev)
        finally:
            dev.close()
    return _record_from_rows(rows, test.step_s), fault, {"device": f"emulated, lock-step over Modbus at {address}"}


def _run_real_time(
    test: ServiceTest,
    signal: TestSignal,
    address: str,
    unit: int,
    grid_address: str | None,
    grid_channel: int | None,
    grid_map: GridMap,
) -> tuple[Record, str | None, dict]:
    from hil.mosaik_sim import HilSimulator

    async def setup() -> None:
        async with SunSpecClient(address, unit, connect_timeout_s=2.0, timeout_s=1.0) as client:
            await _program(client, test)

    try:
        asyncio.run(setup())
    except HilError as exc:
        raise UserError(f"device {address} unit {unit}: cannot set it up for the test", [str(exc)]) from None
    world = _world(test.step_s)
    clock = WallClock(test.step_s)
    source, responder = _add_source(world, test, signal, clock)
    sink: dict = {}
    hsim = world.start(
        _starter(HilSimulator, clock),
        sim_id="HIL",
        step_size=1,
        period_s=test.step_s,
        rt_factor=1.0,
        report_sink=sink,
        timeout_s=min(0.2, 4 * test.step_s),
    )
    dev = hsim.Device(
        kind=test.device.type,
        address=address,
        unit=unit,
        prosumer_id="dut",
        bus="test",
        rated_kw=test.device.rated_kw,
        fault_policy="hold",
        battery=(
            {"capacity_kwh": test.device.capacity_kwh, "power_kw": test.device.rated_kw}
            if test.device.capacity_kwh else None
        ),
        grid_address=grid_address,
        grid_channel=grid_channel,
        grid_map=grid_map,
    )
    world.connect(source, dev, "f_hz", "vm_pu", ("p_available_kw", "p_model_kw"))
    if responder is not None:
        world.connect(responder, dev, "p_set_kw")
    psim = world.start(_starter(DeviceSimulator, clock), sim_id="Probe", step_size=1)
    probe = psim.Probe(stop_after_invalid=max(1, math.ceil(FAULT_AFTER_S / test.step_s)))
    world.connect(dev, probe, "valid", "fault")
    n = int(round(signal.duration_s / test.step_s))
    fault = None
    try:
        with warnings.catch_warnings():  # paced by the clock; its lateness replaces mosaik's per-step warning
            warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
            world.run(until=n, print_progress=False, rt_factor=1.0)
    except DeviceStopped as exc:
        fault = f"device stopped answering: {exc}"
    finally:
        world.shutdown()
    rows = sink.get("samples", [])
    report = sink.get("report", {})
    return (
        _record_from_samples(rows, test.step_s),
        fault,
        {
            "device": f"in the loop at {address} unit {unit}",
            "io_lateness": report.get("io_lateness"),
            "step_lateness": report.get("step_lateness"),
            "clock": clock.kpis(),
            "events": report.get("events", [])[:50],
        },
    )


def _record_from_samples(rows: list[dict], period_s: float) -> Record:
    """HIL samples -> a record on their own wall-clock timestamps (from the first sample)."""
    if not rows:
        return Record.from_arrays([], [], [], period_s=period_s)

    def col(name):
        return np.array([np.nan if r.get(name) is None else r[name] for r in rows], dtype=float)

    t = col("t_wall")
    return Record.from_arrays(
        t - t[0],
        col("f_hz"),
        col("p_kw"),
        period_s=period_s,
        valid=np.array([bool(r["valid"]) for r in rows]),
        lateness_s=col("lateness_s"),
        q_kvar=col("q_kvar"),
        vm_pu=col("vm_pu"),
    )


def _until_fault(rec: Record) -> Record:
    """The samples before the last run of invalid ones (what was measured until the device stopped)."""
    bad = np.flatnonzero(~rec.valid)
    if bad.size == 0:
        return rec
    start = bad[-1]
    while start > 0 and not rec.valid[start - 1]:
        start -= 1
    keep = slice(0, start)

    def cut(a):
        return None if a is None else a[keep]

    return Record(rec.t_s[keep], rec.f_hz[keep], rec.p_kw[keep], rec.valid[keep], rec.lateness_s[keep], rec.period_s,
                  cut(rec.q_kvar), cut(rec.vm_pu), cut(rec.available_pct))


# --- scoring -----------------------------------------------------------------------------------------------


def transitions(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Times of the samples at which an applied value changed (the first sample showing the new value)."""
    x = np.asarray(x, dtype=float)
    ch = np.flatnonzero(np.isfinite(x[1:]) & np.isfinite(x[:-1]) & (np.abs(np.diff(x)) > 1e-9)) + 1
    return t[ch]


def retime_steps(
    steps: tuple[HeldStep, ...], signal_events: tuple[float, ...], observed: np.ndarray
) -> tuple[HeldStep, ...]:
    """Move each step to when its change was observed in the record (real-time runs), keeping the offset of
    the latest observed change for steps whose change left no trace (the same value held on)."""
    mapping: dict[float, float] = {}
    j = 0
    for te in signal_events:
        if j < observed.size and abs(observed[j] - te) < max(1.0, 0.2 * te):
            mapping[te] = float(observed[j])
            j += 1
    out, shift = [], 0.0
    for st in steps:
        if st.t_start_s in mapping:
            shift = mapping[st.t_start_s] - st.t_start_s
        out.append(HeldStep(st.t_start_s + shift, st.t_end_s + shift, st.x, st.level, st.label))
    for i in range(len(out) - 1):
        if out[i].t_end_s > out[i + 1].t_start_s:
            st = out[i]
            out[i] = HeldStep(st.t_start_s, out[i + 1].t_start_s, st.x, st.level, st.label)
    return tuple(out)


def score(test: ServiceTest, signal: TestSignal, rec: Record, real_time: bool) -> tuple[Verdict, tuple, tuple]:
    svc, c = test.frequency_service(), test.characteristic()
    steps = signal.steps
    events = signal.events_s
    if real_time:
        observed = transitions(rec.t_s, rec.vm_pu if c is not None else rec.f_hz) if len(rec) else np.zeros(0)
        steps = retime_steps(steps, events, observed)
        events = tuple(float(x) for x in observed)
    d = test.device
    if c is not None:
        if c.quantity == "q":
            return score_volt_var(c, steps, rec, d.kva), events, steps
        return score_volt_watt(c, steps, rec, d.rated_kw, d.kva), events, steps
    if test.control_mode == "droop" and steps:
        return score_droop(svc, steps, rec, d.rated_kw, d.kva), events, steps
    return (
        score_frequency_service(
            svc, rec, test.contracted, events, baseline_kw=test.baseline_kw, acceptance=test.acceptance.acceptance()
        ),
        events,
        steps,
    )


def run_service_test(test: ServiceTest, signal: TestSignal, *, real_time: bool = False) -> ServiceTestResult:
    """Run ``test`` and score it. Real time is needed for a device in the loop (``hil``)."""
    d = test.device
    t0 = time.perf_counter()
    if test.signal.kind == "closed-loop":  # a coalition in the single-area system model
        from testbed.orchestration.closed_loop import run_closed_loop

        return run_closed_loop(test, signal)
    if d.kind == "hil" and not real_time:
        raise UserError("a device in the loop runs on the wall clock", ["add --real-time"])
    if d.kind == "simulated":
        rec, fault, info = _run_simulated(test, signal)
    elif d.kind == "emulated" and not real_time:
        rec, fault, info = _run_emulated_lockstep(test, signal)
    elif d.kind == "emulated":
        from hil.emulator import DeviceSpec, EmulatorThread

        spec = DeviceSpec(_rating(test), misbehaviour=_misbehaviour(test))
        with EmulatorThread([spec], dt_s=test.step_s, clock="wall") as emu:
            rec, fault, info = _run_real_time(
                test, signal, f"127.0.0.1:{emu.ports[0]}", 1, f"127.0.0.1:{emu.host.grid_port}", 1, GridMap()
            )
    else:
        parse_address(d.address)
        g = d.grid_simulator
        rec, fault, info = _run_real_time(
            test,
            signal,
            d.address,
            d.unit,
            g.address if g else None,
            g.channel if g else None,
            GridMap(**g.map.model_dump()) if g else GridMap(),
        )
    if fault is not None:
        rec = _until_fault(rec)
    verdict, events, steps = score(test, signal, rec, real_time)
    if fault is not None:
        verdict = Verdict(verdict.criteria, fault=fault, inconclusive=verdict.inconclusive, notes=verdict.notes)
    if len(rec):
        lat = rec.lateness_s
        info["sample_lateness"] = {
            "p50_s": float(np.percentile(lat, 50)),
            "p99_s": float(np.percentile(lat, 99)),
            "max_s": float(lat.max()),
            "samples": len(rec),
            "invalid": int(len(rec) - rec.valid.sum()),
        }
    return ServiceTestResult(
        test, signal, rec, verdict, events, steps, info.get("io_lateness"), time.perf_counter() - t0, info
    )


def write_results(result: ServiceTestResult, out_dir: str | Path) -> Path:
    """``verdict.json`` and ``report.html`` in ``out_dir`` (created)."""
    from testbed.orchestration.service_report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.verdict.as_dict() | {
        "test": result.test.name,
        "service": result.test.service,
        "device": result.info.get("device"),
        "sample_lateness": result.info.get("sample_lateness"),
        "io_lateness": result.info.get("io_lateness"),
        "wall_s": round(result.wall_s, 3),
    }
    if "closed_loop" in result.info:
        data["closed_loop"] = result.info["closed_loop"]
    (out / "verdict.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    write_report(result, out / "report.html")
    return out

"""A coalition's frequency response in the closed-loop model: how much does the federation lift the nadir?

A test file with ``signal: {kind: closed-loop, ...}`` and ``device: {kind: simulated, count: N}`` runs here: a
mosaik world of the single-area system (``simulators.frequency``: swing equation, loss of infeed) and N
simulated devices (OpenDER in-process, each following the service's curve from the frequency it measures by
setpoints). Each device's power goes back to the system one step later (time-shifted), so the frequency
answers the coalition. The same system is run once without the coalition for the nadir it lifts.

The verdict is the service's own scoring of the coalition's summed response (contracted: N × contracted_kw)
against the frequency it saw, plus, when the test names ``f_min_hz``, that the nadir stayed above it.
"""

from __future__ import annotations

import time

import mosaik
import numpy as np
from mosaik.starters import PythonStarter

from hil.misbehaviour import TestedDer
from simulators.devices.mosaik_sim import DeviceSimulator, OpenDerDriver
from simulators.frequency.model import SingleAreaModel
from simulators.frequency.mosaik_sim import FrequencySimulator
from testbed.domain.services.frequency import ResponseController
from testbed.domain.services.scoring import Record, score_frequency_service
from testbed.domain.services.signals import TestSignal
from testbed.domain.services.testfile import ServiceTest
from testbed.domain.verdict import Criterion
from testbed.orchestration.service_test import ServiceTestResult, _controls, _misbehaviour, _rating


def _coalition(test: ServiceTest) -> list[list[dict]]:
    """Run the system with the coalition; the rows each member recorded at each step."""
    s = test.signal
    world = mosaik.World({}, time_resolution=test.step_s, skip_greetings=True, configure_logging=False)
    fsim = world.start(PythonStarter(FrequencySimulator), sim_id="System", step_size=1)
    area = fsim.SingleArea(f_nom_hz=test.f_nom_hz, s_base_mw=s.s_base_mw, h_s=s.h_s, d_pu=s.d_pu,
                           loss_mw=s.loss_mw, t_loss_s=s.t_loss_s)
    dsim = world.start(PythonStarter(DeviceSimulator), sim_id="Coalition", step_size=1)
    rows: list[list[dict]] = []
    for _ in range(test.device.count):
        sink: list[dict] = []
        der = dsim.Der(
            driver=OpenDerDriver(TestedDer(_rating(test), _misbehaviour(test)), _controls(test)), sink=sink,
            controller=ResponseController(test.frequency_service(), test.contracted, test.baseline_kw),
        )
        world.connect(area, der, "f_hz")
        world.connect(der, area, ("p_kw", "p_response_kw"), time_shifted=True, initial_data={"p_kw": 0.0})
        rows.append(sink)
    try:
        world.run(until=int(round(s.duration_s / test.step_s)), print_progress=False)
    finally:
        world.shutdown()
    return rows


def _nadir_alone(test: ServiceTest) -> float:
    """The system's nadir without any response, from the same model with nothing connected."""
    s = test.signal
    m = SingleAreaModel(f_nom_hz=test.f_nom_hz, s_base_mw=s.s_base_mw, h_s=s.h_s, d_pu=s.d_pu, loss_mw=s.loss_mw,
                        t_loss_s=s.t_loss_s)
    return m.nadir_without_response_hz(s.duration_s, test.step_s)


def run_closed_loop(test: ServiceTest, signal: TestSignal) -> ServiceTestResult:
    """Run the coalition in the closed loop and score its summed response (module docstring)."""
    t0 = time.perf_counter()
    d, s = test.device, test.signal
    rows = _coalition(test)
    t = np.array([r["t_s"] for r in rows[0]], dtype=float) + test.step_s
    f = np.array([r["f_applied_hz"] for r in rows[0]], dtype=float)
    p = np.sum([[r["p_kw"] for r in member] for member in rows], axis=0)
    valid = np.all([[bool(r["valid"]) for r in member] for member in rows], axis=0)
    rec = Record.from_arrays(t, f, p, period_s=test.step_s, valid=valid)
    nadir, alone = float(np.nanmin(f)), _nadir_alone(test)
    contracted = d.count * test.contracted
    verdict = score_frequency_service(
        test.frequency_service(), rec, contracted, signal.events_s, baseline_kw=d.count * test.baseline_kw,
        acceptance=test.acceptance.acceptance(),
    )
    if s.f_min_hz is not None:
        verdict = verdict.with_criteria([Criterion(
            "frequency nadir", nadir >= s.f_min_hz, nadir, s.f_min_hz, "Hz",
            f"lowest system frequency with the coalition's response; without it {alone:.3f} Hz, so the coalition "
            f"lifted it by {(nadir - alone) * 1000:.0f} mHz",
            group="system",
        )])
    info = {
        "device": f"a coalition of {d.count} simulated {d.type} devices of {d.rated_kw:g} kW (OpenDER in-process)",
        "closed_loop": {"nadir_hz": nadir, "nadir_without_coalition_hz": alone, "nadir_lift_hz": nadir - alone,
                        "members": d.count, "contracted_kw": contracted},
    }
    return ServiceTestResult(test, signal, rec, verdict, signal.events_s, signal.steps, None,
                             time.perf_counter() - t0, info)

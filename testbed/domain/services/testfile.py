"""The service test file (``fpp test TEST.yaml``): which service, which signal, which device. Pure data.

Parsing reports every problem at once with its field path and line, as for scenarios; :func:`check_test`
adds the checks that span fields (a signal outside the device's rating, a control mode the service cannot use,
options that belong to another kind of device). :func:`build_signal` turns the ``signal`` block into a
:class:`~testbed.domain.services.signals.TestSignal` (a recorded series is read by the caller and passed in).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import load_yaml_mapping, validation_problems
from testbed.domain.services import signals as sg
from testbed.domain.services.frequency import FREQUENCY_SERVICES, FrequencyService, ieee1547_droop
from testbed.domain.services.signal_spec import (
    F_RANGE,
    V_RANGE,
    AcceptanceSpec,
    ClosedLoopSignal,
    LossOfInfeedSignal,
    RampSignal,
    RecordedSignal,
    SineSignal,
    StepsSignal,
    frequency_signal,
)
from testbed.domain.services.voltage import CHARACTERISTICS, Characteristic

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Control = Literal["setpoints", "droop", "volt-var", "volt-watt"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ieee1547Signal(_Model):
    kind: Literal["ieee1547-steps"]
    levels: list[Fraction] = Field(default=list(sg.POWER_LEVELS), min_length=1)
    hold_s: PositiveFloat | None = Field(None, description="Hold of each step [s]; default 2 × response time.")
    side: Literal["high", "low"] = "high"


Signal = Annotated[
    StepsSignal | RampSignal | SineSignal | LossOfInfeedSignal | RecordedSignal | Ieee1547Signal | ClosedLoopSignal,
    Field(discriminator="kind"),
]


class GridMap(_Model):
    """Holding registers of a grid simulator channel: ``stride·channel + offset``, value = raw × scale."""

    unit: int = Field(1, ge=0, le=247)
    stride: int = Field(100, ge=0)
    v_offset: int = Field(0, ge=0)
    f_offset: int = Field(1, ge=0)
    available_offset: int | None = Field(2, ge=0)
    v_scale: PositiveFloat = 1e-4
    f_scale: PositiveFloat = 1e-3
    available_scale: PositiveFloat = 0.1


class GridSimulator(_Model):
    address: str
    channel: int = Field(1, ge=1)
    map: GridMap = GridMap()


class Misbehave(_Model):
    """Ways an emulated device fails on purpose (see ``hil.noncompliance``)."""

    p_response_s: PositiveFloat | None = None
    q_response_s: PositiveFloat | None = None
    deadband_hz: Annotated[float, Field(ge=0)] | None = None
    droop: PositiveFloat | None = None
    volt_var_offset_pu: Finite | None = None
    volt_watt_offset_pu: Finite | None = None
    stop_following_after_s: Annotated[float, Field(ge=0)] | None = None
    stop_answering_after_s: Annotated[float, Field(ge=0)] | None = None


class Device(_Model):
    kind: Literal["simulated", "emulated", "hil"]
    type: Literal["battery", "pv"]
    rated_kw: PositiveFloat
    rated_kva: PositiveFloat | None = None
    capacity_kwh: PositiveFloat | None = None
    soc_init: Fraction = 0.5
    response_s: PositiveFloat = Field(
        1.0, description="Active-power response time of a simulated or emulated device [s]."
    )
    misbehave: Misbehave | None = None
    count: int = Field(1, ge=1, le=1000, description="A coalition of this many identical devices, each contracted "
                       "for contracted_kw (closed-loop signals only); the verdict judges their sum.")
    address: str | None = Field(None, description="host:port of a device in the loop (kind hil).")
    unit: int = Field(1, ge=0, le=247)
    grid_simulator: GridSimulator | None = None

    @property
    def kva(self) -> float:
        return self.rated_kva or self.rated_kw


KNOWN = tuple(sorted(FREQUENCY_SERVICES)) + tuple(CHARACTERISTICS)


class ServiceTest(_Model):
    name: str
    service: str = Field(description="A frequency service key or an IEEE 1547.1 characteristic.")
    f_nom_hz: Literal[50.0, 60.0] = 50.0
    contracted_kw: PositiveFloat | None = Field(None, description="Contracted response [kW]; default the rating.")
    baseline_kw: Finite = 0.0
    control: Control | None = None
    step_s: PositiveFloat = Field(0.05, description="Sampling and control period [s] (20 Hz).")
    signal: Signal
    device: Device
    acceptance: AcceptanceSpec = AcceptanceSpec()

    __test__ = False

    @field_validator("service")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in KNOWN:
            raise ValueError(f"unknown service {v!r}; known: {', '.join(KNOWN)}")
        return v

    # --- derived ----------------------------------------------------------------------------------

    @property
    def is_1547(self) -> bool:
        return self.service in CHARACTERISTICS or self.service.startswith("ieee1547-droop")

    def frequency_service(self) -> FrequencyService | None:
        if self.service in CHARACTERISTICS:
            return None
        if self.service.startswith("ieee1547-droop"):
            return ieee1547_droop(self.f_nom_hz)
        svc = FREQUENCY_SERVICES[self.service]
        return svc if svc.trigger_hz is not None else svc.with_nominal(self.f_nom_hz)

    def characteristic(self) -> Characteristic | None:
        return CHARACTERISTICS.get(self.service)

    @property
    def control_mode(self) -> Control:
        if self.control is not None:
            return self.control
        c = self.characteristic()
        if c is not None:
            return "volt-var" if c.quantity == "q" else "volt-watt"
        return "droop" if self.service.startswith("ieee1547-droop") else "setpoints"

    @property
    def contracted(self) -> float:
        return self.contracted_kw or self.device.rated_kw


def check_test(t: ServiceTest, source: str) -> None:
    """The checks that span fields; a :class:`UserError` listing every problem."""
    problems = []
    d, mode = t.device, t.control_mode
    svc, c = t.frequency_service(), t.characteristic()
    if d.kind == "hil" and not d.address:
        problems.append("device.address: a device in the loop (kind hil) needs host:port")
    if d.kind != "hil" and (d.address or d.grid_simulator):
        problems.append("device.address/grid_simulator: only for kind hil")
    if d.misbehave is not None and d.kind != "emulated":
        problems.append("device.misbehave: only an emulated device can misbehave on purpose")
    if t.signal.kind == "closed-loop":
        if d.kind != "simulated" or mode != "setpoints" or svc is None:
            problems.append("signal closed-loop: a coalition of simulated devices following a frequency service's "
                            "curve by setpoints (device.kind simulated, control setpoints)")
    elif d.count != 1:
        problems.append(f"device.count {d.count}: a coalition of devices is tested with a closed-loop signal")
    if d.type == "battery" and d.capacity_kwh is None:
        problems.append("device.capacity_kwh: a battery needs its capacity")
    if d.rated_kva is not None and d.rated_kva < d.rated_kw:
        problems.append(f"device.rated_kva {d.rated_kva}: must be >= rated_kw {d.rated_kw}")
    if t.contracted > d.rated_kw:
        problems.append(f"contracted_kw {t.contracted:g}: beyond the device's rating of {d.rated_kw:g} kW")
    if abs(t.baseline_kw) + t.contracted > d.rated_kw * (1 + 1e-9) and mode == "setpoints":
        problems.append(f"baseline_kw {t.baseline_kw:g} + contracted {t.contracted:g} kW: beyond the rating")
    if c is not None and mode not in ("volt-var", "volt-watt"):
        problems.append(f"control {mode}: an IEEE 1547.1 characteristic is tested with control volt-var or volt-watt")
    if c is not None and t.signal.kind != "ieee1547-steps":
        problems.append(f"signal.kind {t.signal.kind}: an IEEE 1547.1 characteristic needs kind ieee1547-steps")
    if svc is not None and not t.service.startswith("ieee1547-droop") and t.signal.kind == "ieee1547-steps":
        problems.append("signal.kind ieee1547-steps: only for IEEE 1547 characteristics and droop")
    if svc is not None and mode in ("volt-var", "volt-watt"):
        problems.append(f"control {mode}: a frequency service is tested with setpoints or droop")
    if mode == "setpoints" and svc is not None and d.type == "pv" and svc.side != "high":
        problems.append(f"device.type pv: a PV device cannot raise its output for {svc.name}; use a battery")
    if d.kind == "hil" and mode in ("droop", "volt-var", "volt-watt") and d.grid_simulator is None:
        problems.append(f"device.grid_simulator: control {mode} needs a grid simulator to apply f and V")
    if t.signal.kind == "steps":
        last = max(p.t_s for p in t.signal.points)
        if t.signal.points[0].t_s != 0:
            problems.append("signal.points[0].t_s: the first point is at 0")
        if last >= t.signal.duration_s:
            problems.append(f"signal.duration_s {t.signal.duration_s:g}: must be after the last point ({last:g} s)")
    if t.signal.kind != "recorded" and not problems:
        sig = build_signal(t)
        lo, hi = sig.f_range()
        f_lo, f_hi = F_RANGE[0] * t.f_nom_hz, F_RANGE[1] * t.f_nom_hz
        if lo < f_lo or hi > f_hi:
            problems.append(f"signal: frequency {lo:g}..{hi:g} Hz outside {f_lo:g}..{f_hi:g} Hz that a test may apply")
        vlo, vhi = sig.v_range()
        if vlo < V_RANGE[0] or vhi > V_RANGE[1]:
            problems.append(f"signal: voltage {vlo:g}..{vhi:g} pu outside {V_RANGE[0]}..{V_RANGE[1]} pu")
    if problems:
        raise UserError(f"{source}: {len(problems)} problem(s) in the test", problems)


def build_signal(t: ServiceTest, recorded: tuple[list[float], list[float]] | None = None) -> sg.TestSignal:
    """The test's signal; ``recorded`` (times [s], frequencies [Hz]) for a recorded one."""
    s, f0 = t.signal, t.f_nom_hz
    if s.kind != "ieee1547-steps":
        return frequency_signal(s, f0, recorded)
    c = t.characteristic()
    if c is not None:
        return sg.ieee1547_voltage_steps(c, levels=s.levels, hold_s=s.hold_s)
    svc = t.frequency_service()
    db, full = svc.curve[0][0], svc.curve[-1][0]
    hold = s.hold_s if s.hold_s is not None else 2.0 * svc.full_delivery_s
    sig = sg.ieee1547_frequency_steps(f0, db, (full - db) / f0, hold_s=hold, levels=s.levels, side=s.side)
    return sig


def parse_test(text: str, source: str = "<test>") -> ServiceTest:
    """Parse and validate a test file's YAML text; a :class:`UserError` listing every problem."""
    root, data = load_yaml_mapping(text, source, "a test is a YAML mapping (name:, service:, signal:, device:)")
    try:
        test = ServiceTest.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, root)
        raise UserError(f"{source}: {len(problems)} problem(s) in the test", problems) from None
    check_test(test, source)
    return test

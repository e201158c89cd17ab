"""Frequency signal blocks of test files and scenarios (``signal:``), their acceptance thresholds and the range a
test may apply. Pure data: :func:`frequency_signal` turns a block into a
:class:`~testbed.domain.services.signals.TestSignal`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from testbed.domain.services import signals as sg

if TYPE_CHECKING:  # scoring needs scipy: not imported by reading a scenario or by `fpp --help`
    from testbed.domain.services.scoring import Acceptance

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

#: The range a test may apply: frequency within ±6 % of nominal (wider than any service's full deviation,
#: narrower than the emulated grid simulator's ±10 %); voltage 0.5–1.2 pu (IEEE 1547-2018 Table 3 range).
F_RANGE = (0.94, 1.06)
V_RANGE = (0.5, 1.2)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrequencyPoint(_Model):
    t_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    f_hz: PositiveFloat


class StepsSignal(_Model):
    kind: Literal["steps"]
    points: list[FrequencyPoint] = Field(min_length=1, description="Held frequencies from t_s on; the first at 0.")
    duration_s: PositiveFloat


class RampSignal(_Model):
    kind: Literal["ramp"]
    f_start_hz: PositiveFloat
    f_end_hz: PositiveFloat
    t_start_s: Annotated[float, Field(ge=0)] = 1.0
    ramp_s: PositiveFloat
    duration_s: PositiveFloat


class SineSignal(_Model):
    kind: Literal["sine"]
    amplitude_hz: PositiveFloat
    period_s: PositiveFloat
    cycles: PositiveFloat
    t_start_s: Annotated[float, Field(ge=0)] = 1.0
    duration_s: PositiveFloat


class LossOfInfeedSignal(_Model):
    kind: Literal["loss-of-infeed"]
    t_event_s: Annotated[float, Field(ge=0)] = 1.0
    rocof_hz_per_s: PositiveFloat
    nadir_hz: PositiveFloat
    settle_hz: PositiveFloat
    recovery_s: PositiveFloat
    duration_s: PositiveFloat


class RecordedSignal(_Model):
    kind: Literal["recorded"]
    file: str = Field(description="CSV file with columns t_s and f_hz (relative to the test file).")


class ClosedLoopSignal(_Model):
    """The frequency of a single-area system (swing equation, simulators/frequency/model.py) that loses
    ``loss_mw`` at ``t_loss_s`` and answers the power the devices deliver: the devices' response lifts the
    nadir. ``f_min_hz``: the lowest frequency the system may reach (a criterion)."""

    kind: Literal["closed-loop"]
    s_base_mw: PositiveFloat = Field(description="System base (its size) [MW].")
    h_s: PositiveFloat = Field(description="Inertia constant [s].")
    d_pu: Annotated[float, Field(ge=0)] = Field(1.0, description="Load damping [pu power per pu frequency].")
    loss_mw: PositiveFloat = Field(description="Infeed lost [MW].")
    t_loss_s: Annotated[float, Field(ge=0)] = 1.0
    duration_s: PositiveFloat
    f_min_hz: PositiveFloat | None = Field(None, description="The nadir must stay above this [Hz].")


#: A frequency signal block on its own (test files add the IEEE 1547.1 step sequences).
FrequencySignal = Annotated[
    StepsSignal | RampSignal | SineSignal | LossOfInfeedSignal | RecordedSignal | ClosedLoopSignal,
    Field(discriminator="kind"),
]


class AcceptanceSpec(_Model):
    min_in_band_pct: Annotated[float, Field(ge=0, le=100)] = 95.0
    min_energy_pct: Annotated[float, Field(ge=0)] = 95.0
    min_performance_pct: Annotated[float, Field(le=100)] = 95.0

    def acceptance(self) -> Acceptance:
        from testbed.domain.services.scoring import Acceptance

        return Acceptance(self.min_in_band_pct, self.min_energy_pct, self.min_performance_pct)



def frequency_signal(s: FrequencySignal, f_nom_hz: float,
                     recorded: tuple[list[float], list[float]] | None = None) -> sg.TestSignal:
    """A frequency signal block (any kind but ``ieee1547-steps``, which needs the service or characteristic)
    as a :class:`~testbed.domain.services.signals.TestSignal`; ``recorded`` (times [s], frequencies [Hz]) for
    a recorded one."""
    f0 = f_nom_hz
    if s.kind == "steps":
        return sg.frequency_steps([(p.t_s, p.f_hz) for p in s.points], s.duration_s)
    if s.kind == "ramp":
        return sg.frequency_ramp(s.f_start_hz, s.f_end_hz, s.t_start_s, s.ramp_s, s.duration_s)
    if s.kind == "sine":
        return sg.frequency_sine(f0, s.amplitude_hz, s.period_s, s.t_start_s, s.cycles, s.duration_s)
    if s.kind == "loss-of-infeed":
        return sg.loss_of_infeed(f0, s.t_event_s, s.rocof_hz_per_s, s.nadir_hz, s.settle_hz, s.recovery_s, s.duration_s)
    if s.kind == "closed-loop":  # what the system does without any response; the run answers the devices
        return sg.swing_no_response(f0, s.s_base_mw, s.h_s, s.d_pu, s.loss_mw, s.t_loss_s, s.duration_s)
    if s.kind == "recorded":
        if recorded is None:
            raise ValueError("a recorded signal needs its series")
        return sg.recorded(*recorded, name=f"recorded ({s.file})")
    raise ValueError(f"signal kind {s.kind}: not a frequency signal on its own")

"""The scenario's ``frequency_response:`` section: prosumers' batteries answer a frequency at a fast step (20 Hz
by default) while the grid, the fleet and the market keep the scenario's own step (mixed rates in one world).

Pure data. The frequency is a test signal (steps, ramp, sine, a loss of infeed) or the closed-loop single-area
system (``kind: closed-loop``), whose frequency answers the members' response. Each member contracts a share
of its battery's power for the service; it holds the rest for its home (its baseline, declared for a
settlement period and held through it, as GB Dynamic Containment baselines are) and adds the service's
response to it. docs/services.md describes the run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed.domain.services.frequency import FREQUENCY_SERVICES, FrequencyService
from testbed.domain.services.signal_spec import (
    F_RANGE,
    AcceptanceSpec,
    ClosedLoopSignal,
    LossOfInfeedSignal,
    RampSignal,
    SineSignal,
    StepsSignal,
    frequency_signal,
)

#: Signals a scenario may play: any frequency signal of a test file but a recorded series (a file of the
#: test's folder) and the IEEE 1547.1 step sequences (a device test, not a fleet's).
ScenarioSignal = Annotated[
    StepsSignal | RampSignal | SineSignal | LossOfInfeedSignal | ClosedLoopSignal, Field(discriminator="kind")
]


class FrequencyResponse(BaseModel):
    """Fast frequency response by the prosumers' batteries (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field(description="A frequency service of the catalogue (docs/services.md), e.g. gb-dc-low.")
    f_nom_hz: Literal[50.0, 60.0] = 50.0
    step_s: Annotated[float, Field(ge=0.01, le=1.0, allow_inf_nan=False)] = Field(
        0.05, description="Step of the frequency and the responders [s]; time.resolution_s is a whole number of them."
    )
    signal: ScenarioSignal = Field(description="The frequency, from the start of the run.")
    members: list[str] | None = Field(
        None, description="Prosumer ids whose batteries respond; default every prosumer with a battery."
    )
    contracted_share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.5, description="Each member's contracted response, as a share of its battery's power rating."
    )
    baseline_period_s: Annotated[int, Field(gt=0)] = Field(
        1800, description="A member's baseline (its home's battery power, within what the contract leaves) is "
        "declared at the start of each such period and held through it [s] (GB: a 30-minute settlement period)."
    )
    response_s: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = Field(
        0.3, description="Active-power response time of the members' battery inverters [s] (OpenDER)."
    )
    acceptance: AcceptanceSpec = AcceptanceSpec()

    @field_validator("service")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in FREQUENCY_SERVICES:
            raise ValueError(f"unknown frequency service {v!r}; known: {', '.join(sorted(FREQUENCY_SERVICES))}")
        return v

    def frequency_service(self) -> FrequencyService:
        svc = FREQUENCY_SERVICES[self.service]
        return svc if svc.trigger_hz is not None else svc.with_nominal(self.f_nom_hz)

    def problems(self, resolution_s: int, duration_s: float) -> list[str]:
        """What does not fit the run's step and length, as ``frequency_response.<field>: <reason>`` lines."""
        out = []
        ticks = resolution_s / self.step_s
        if abs(ticks - round(ticks)) > 1e-9 * ticks:
            out.append(f"frequency_response.step_s: {self.step_s:g} s does not divide time.resolution_s "
                       f"({resolution_s} s) into whole steps")
        if self.baseline_period_s % resolution_s:
            out.append(f"frequency_response.baseline_period_s: {self.baseline_period_s} s is not a multiple of "
                       f"time.resolution_s ({resolution_s} s)")
        if self.signal.duration_s > duration_s + 1e-9:
            out.append(f"frequency_response.signal.duration_s: {self.signal.duration_s:g} s is longer than the run "
                       f"({duration_s:g} s)")
        sig = frequency_signal(self.signal, self.f_nom_hz)
        lo, hi = sig.f_range()
        f_lo, f_hi = F_RANGE[0] * self.f_nom_hz, F_RANGE[1] * self.f_nom_hz
        if lo < f_lo or hi > f_hi:
            out.append(f"frequency_response.signal: frequency {lo:g}..{hi:g} Hz outside {f_lo:g}..{f_hi:g} Hz")
        return out

    @model_validator(mode="after")
    def _unique_members(self) -> FrequencyResponse:
        if self.members is not None:
            if not self.members:
                raise ValueError("members: give at least one prosumer id, or leave it out for every battery")
            dupes = sorted({m for m in self.members if self.members.count(m) > 1})
            if dupes:
                raise ValueError(f"members: repeated {', '.join(dupes)}")
        return self

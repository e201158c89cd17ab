"""The campaign file's schema (pure data): a test description in the ERIGrid holistic test description form.

ERIGrid's holistic test description (HTD; van der Meer et al., "Cyber-physical energy systems modeling, test
specification, and co-simulation based testing", 2017; ERIGrid deliverable D-JRA2.2) splits a test in three:

- the **test case** (why): purpose, system under test, functions and domains under investigation, target
  metrics (here KPIs of ``kpis.json`` or criteria of a service test, each with an optional pass limit);
- the **test specification** (what): the test system (a scenario or a service test file, the *base*), the
  inputs that vary (dotted paths of the base with their values), the outputs recorded, and the design
  (full grid or Latin hypercube, seeds as the source of uncertainty);
- the **experiment specification** (how): the research infrastructure: simulation, emulated devices, or lab
  devices reached by a worker with a resource label.

Every model forbids unknown fields; problems are reported all at once, with their line, as for scenarios.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetMetric(_Model):
    """One figure the test is judged or compared by."""

    kpi: str = Field(
        min_length=1,
        description="Dotted path into kpis.json (e.g. minutes_outside_voltage_limits, market.traded_kwh), or "
        "for a service test the name of a criterion of its verdict (its figure) or 'verdict'.",
    )
    name: str | None = Field(None, description="Label in the report (default: the kpi path).")
    unit: str = Field("", description="Unit shown on the chart's value axis.")
    max: Finite | None = Field(None, description="The limit is exceeded when the figure is above this.")
    min: Finite | None = Field(None, description="The limit is exceeded when the figure is below this.")

    @property
    def label(self) -> str:
        return self.name or self.kpi


class TestCase(_Model):
    """HTD test case: the purpose of the test and what it is judged by."""

    purpose: str = Field(min_length=1, description="Why the test is run, in a sentence.")
    system_under_test: str = Field(min_length=1, description="The system as a whole that is tested.")
    functions_under_investigation: list[str] = Field(
        min_length=1, description="Functions of the system that the test looks at."
    )
    domain_under_investigation: list[str] = Field(
        min_length=1, description="Domains involved (electric power, ICT, market, ...)."
    )
    target_metrics: list[TargetMetric] = Field(min_length=1, description="Figures the experiments are judged by.")


class RangeSpec(_Model):
    """``start`` to ``stop`` (both included when on the step) in steps of ``step``; without ``step`` a
    continuous interval, which only a Latin hypercube can sample."""

    start: Finite
    stop: Finite
    step: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.stop < self.start:
            raise ValueError(f"stop {self.stop:g} is below start {self.start:g}")
        return self


class SeedSpec(_Model):
    first: int = Field(0, ge=0, description="First seed.")
    count: int = Field(ge=1, description="How many seeds, first, first + 1, ...")


class Design(_Model):
    kind: Literal["full-grid", "latin-hypercube"] = Field(
        "full-grid", description="Every combination of the inputs' values, or a Latin hypercube of `samples`."
    )
    samples: int | None = Field(None, ge=1, description="Latin hypercube: how many points.")
    seed: int = Field(0, ge=0, description="Latin hypercube: seed of the sampling, so a campaign repeats exactly.")

    @model_validator(mode="after")
    def _samples(self) -> Design:
        if self.kind == "latin-hypercube" and self.samples is None:
            raise ValueError("samples: a Latin hypercube needs the number of samples")
        if self.kind == "full-grid" and self.samples is not None:
            raise ValueError("samples: only for kind latin-hypercube (a full grid has every combination)")
        return self


class Base(_Model):
    """The test system: a scenario file (``fpp run``) or a service test file (``fpp test``), relative to the
    campaign file."""

    scenario: str | None = Field(None, description="Scenario YAML file, relative to the campaign file.")
    test: str | None = Field(None, description="Service test YAML file, relative to the campaign file.")

    @model_validator(mode="after")
    def _one(self) -> Base:
        if (self.scenario is None) == (self.test is None):
            raise ValueError("give exactly one of scenario or test")
        return self


class HostingCapacity(_Model):
    """The largest value of ``parameter`` below the first one at which any target metric's limit is exceeded
    (in any experiment of the group: any season, any seed), per combination of ``per`` (a strategy)."""

    parameter: str = Field(description="The swept input that measures penetration, e.g. fleet.pv.share.")
    per: list[str] = Field(default_factory=list, description="Inputs that name a strategy (e.g. market).")


class TestSpecification(_Model):
    """HTD test specification: the test system, the inputs varied, the outputs kept and the test design."""

    test_system: str = Field(min_length=1, description="The test system in words (feeder, devices, market).")
    base: Base
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Inputs to vary, by the dotted path of `fpp run --set` (or of the test file): a list of "
        "values, or a range {start, stop, step} ({start, stop} without step: Latin hypercube only).",
    )
    seeds: list[Annotated[int, Field(ge=0)]] | SeedSpec | None = Field(
        None, description="Seeds (the scenario's `seed`): a list, or {first, count}; every design point runs with each."
    )
    outputs: list[str] = Field(default_factory=list, description="KPIs kept in summary.parquet besides the targets.")
    design: Design = Field(default_factory=Design)
    hosting_capacity: HostingCapacity | None = None


class ExperimentSpecification(_Model):
    """HTD experiment specification: where the experiments run."""

    setup: Literal["simulation", "emulated", "lab"] = Field(
        "simulation", description="Pure simulation, emulated devices, or devices in a lab (in the loop)."
    )
    device_resource: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Dask worker resource label of the worker that reaches the lab device (default hil); "
        "experiments with a device in the loop run one at a time there.",
    )
    description: str = ""


class Campaign(_Model):
    """A test campaign: one test description and the experiments it expands to."""

    schema_version: Literal[1] = Field(description="Version of this file format (1).")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Name of the campaign's folder.")
    description: str = ""
    test_case: TestCase
    test_specification: TestSpecification
    experiment_specification: ExperimentSpecification = Field(default_factory=ExperimentSpecification)
    output_dir: str = Field("results/campaigns", description="Folder under which the campaign's folder is made.")

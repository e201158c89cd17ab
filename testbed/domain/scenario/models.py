"""The scenario file's schema: pydantic models with units in the field names.

A scenario says what to simulate (the grid, the prosumers and their devices), over which window and at
which resolution, with which seed, and where results go. These models are pure data: reading the YAML file
and checking references against the grid (bus names, profile names) live in :mod:`testbed.domain.scenario.load`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from testbed.domain.der.battery import BatterySpec
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM, MECHANISM_NAMES
from testbed.domain.prosumer import Tariff
from testbed.domain.scenario.response import FrequencyResponse

SCHEMA_VERSION = 1
PROFILE_SLOT_S = 900  # SimBench profiles have one value per 15 minutes
MAX_STEPS = 1_100_000
"""Most simulation steps of one run: two years at 60 s, twelve days at 1 s (memory grows with steps)."""
LEDGER_SCHEMES = ("sqlite:///", "sqlite://:memory:", "postgresql://", "postgres://")
"""URL prefixes the platform's ledger supports (testbed/platform/ledger.py)."""

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Hour = Annotated[float, Field(ge=0, lt=24, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeWindow(_Model):
    """The simulated window. Profiles are indexed by time of year, so any year may be named."""

    start: datetime = Field(description="First instant simulated (local time of the profiles, no time zone).")
    duration_h: PositiveFloat = Field(description="Length of the run [h].")
    resolution_s: int = Field(
        gt=0,
        description="Length of one simulation step [s]; must divide 900 s or be a multiple of it "
        "(the 15-minute SimBench profile slot).",
    )
    max_lateness_ms: PositiveFloat | None = Field(
        None,
        description="Real-time runs only: the lateness budget of a step [ms]. A step that starts later than this "
        "ends the run as a fault (exit 3), keeping what was recorded. None: no budget (lateness is still "
        "measured and reported).",
    )

    @field_validator("resolution_s")
    @classmethod
    def _fits_profile_slot(cls, v: int) -> int:
        if PROFILE_SLOT_S % v != 0 and v % PROFILE_SLOT_S != 0:
            raise ValueError(f"must divide {PROFILE_SLOT_S} s or be a multiple of it, got {v} s")
        return v

    @field_validator("start")
    @classmethod
    def _naive(cls, v: datetime) -> datetime:
        if v.tzinfo is not None:
            raise ValueError("give a local time without a time zone (profiles are in local time)")
        return v

    @model_validator(mode="after")
    def _whole_steps(self) -> TimeWindow:
        total_s = self.duration_h * 3600.0
        steps = total_s / self.resolution_s
        if steps > MAX_STEPS:
            raise ValueError(
                f"duration_h ({self.duration_h:g} h) at resolution_s {self.resolution_s} s is {steps:.3g} steps; "
                f"a run has at most {MAX_STEPS:,} (split it, or use a coarser resolution)"
            )
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"duration_h ({self.duration_h} h) is not a whole number of {self.resolution_s} s steps")
        if round(steps) < 1:
            raise ValueError(f"duration_h ({self.duration_h:g} h) is shorter than one {self.resolution_s} s step")
        try:
            self.start + timedelta(seconds=total_s)
        except OverflowError:
            raise ValueError(
                f"the window from {self.start.isoformat()} for {self.duration_h:g} h ends after "
                "the year 9999, the last date the calendar holds"
            ) from None
        return self

    @property
    def n_steps(self) -> int:
        """Number of simulation steps in the window."""
        return round(self.duration_h * 3600.0 / self.resolution_s)


class Grid(_Model):
    network: str = Field(
        description="simbench:<code>, pandapower:<function of pandapower.networks>, or a path to a pandapower "
        ".json file (relative to the scenario file)."
    )
    engine: Literal["pandapower", "opendss"] = Field("pandapower", description="Power-flow engine.")
    keep_elements: bool = Field(
        False,
        description="Keep the network's own loads and generators (true) or replace them by the prosumers (false).",
    )
    v_min_pu: PositiveFloat = Field(0.9, description="Lower voltage limit for the KPIs [pu] (EN 50160: 0.9).")
    v_max_pu: PositiveFloat = Field(1.1, description="Upper voltage limit for the KPIs [pu] (EN 50160: 1.1).")

    @model_validator(mode="after")
    def _limits_ordered(self) -> Grid:
        if self.v_min_pu >= self.v_max_pu:
            raise ValueError(f"v_min_pu ({self.v_min_pu}) must be below v_max_pu ({self.v_max_pu})")
        return self


class Load(_Model):
    """Household demand from a SimBench profile.

    Either ``grid_load`` (a load of a SimBench grid: its profile and its peak power, as SimBench scales it),
    or ``profile`` with ``annual_kwh`` (the profile scaled so that a year of it is that energy).
    """

    grid_load: str | None = Field(None, description="Name of a load in the SimBench grid.")
    profile: str | None = Field(None, description="SimBench load profile, e.g. H0-A, H0-G, G1-C.")
    annual_kwh: PositiveFloat | None = Field(None, description="Yearly energy of this load [kWh].")
    power_factor: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.93,
        description="With profile: power factor of the load's rating, which scales the reactive profile "
        "(SimBench rates its loads at q/p = 0.395, i.e. 0.93).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Load:
        if self.grid_load is not None and (self.profile is not None or self.annual_kwh is not None):
            raise ValueError("give either grid_load, or profile with annual_kwh, not both")
        if self.grid_load is None and (self.profile is None or self.annual_kwh is None):
            raise ValueError("give grid_load, or both profile and annual_kwh")
        return self


class HilDevice(_Model):
    """A real or emulated device on Modbus TCP (SunSpec) that takes the simulated PV's or battery's place.

    The simulated model keeps running beside it: it decides the battery's setpoint (the home's controller),
    feeds an emulated PV's DC source, and stands in for the device under ``fallback-to-model``.
    """

    address: str = Field(
        pattern=r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}$", description="host:port of the device's Modbus TCP server."
    )
    unit: int = Field(1, ge=0, le=247, description="Modbus unit id of the device.")
    fault_policy: Literal["hold", "fallback-to-model", "abort"] = Field(
        "hold",
        description="What the run uses when a sample is invalid (timeout, refused connection, Modbus exception, "
        "sentinel or out-of-range value): hold the last valid one, the simulated model's value, or abort.",
    )
    grid_simulator: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5}$",
        description="host:port of an emulated grid simulator (fpp hil emulate) that applies the bus voltage to "
        "the device; leave out for real devices.",
    )
    grid_channel: int | None = Field(None, ge=1, description="The device's channel on the grid simulator.")

    @model_validator(mode="after")
    def _channel_with_simulator(self) -> HilDevice:
        if (self.grid_simulator is None) != (self.grid_channel is None):
            raise ValueError("give grid_simulator and grid_channel together, or neither")
        return self


class PV(_Model):
    kwp: PositiveFloat = Field(description="Peak power of the array [kWp].")
    profile: str = Field("PV3", description="SimBench PV profile (per unit of peak power), e.g. PV1..PV8.")
    hil: HilDevice | None = Field(None, description="A device on Modbus TCP in place of this PV array.")


class Battery(_Model):
    capacity_kwh: PositiveFloat = Field(description="Usable energy capacity [kWh].")
    power_kw: PositiveFloat = Field(description="Charge and discharge power limit at the AC terminals [kW].")
    round_trip_efficiency: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.9, description="AC-to-AC round-trip efficiency; split equally between charging and discharging."
    )
    initial_soc: Fraction = Field(0.5, description="State of charge at the start [0..1].")
    soc_min: Fraction = Field(0.0, description="Lowest allowed state of charge [0..1].")
    soc_max: Fraction = Field(1.0, description="Highest allowed state of charge [0..1].")
    hil: HilDevice | None = Field(None, description="A device on Modbus TCP in place of this battery.")

    @property
    def spec(self) -> BatterySpec:
        """This battery as the testbed's one battery model."""
        return BatterySpec(
            capacity_kwh=self.capacity_kwh, power_kw=self.power_kw, round_trip_efficiency=self.round_trip_efficiency,
            soc_min=self.soc_min, soc_max=self.soc_max,
        )

    @model_validator(mode="after")
    def _soc_window(self) -> Battery:
        if not self.soc_min < self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must be below soc_max ({self.soc_max})")
        if not self.soc_min <= self.initial_soc <= self.soc_max:
            raise ValueError(f"initial_soc ({self.initial_soc}) must lie in [soc_min, soc_max]")
        return self


class EV(_Model):
    """An electric vehicle charged at home, uncontrolled: at full power from arrival until full."""

    capacity_kwh: PositiveFloat = Field(description="Battery capacity [kWh].")
    charge_kw: PositiveFloat = Field(description="Home charger power [kW].")
    charge_efficiency: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.9, description="Grid-to-battery efficiency."
    )
    trip_kwh: NonNegativeFloat = Field(description="Energy used on each day's trip [kWh].")
    depart_h: Hour = Field(description="Time of day the car leaves [h].")
    arrive_h: Hour = Field(description="Time of day the car comes back [h].")
    initial_soc: Fraction = Field(0.8, description="State of charge at the start [0..1].")

    @model_validator(mode="after")
    def _trip_fits(self) -> EV:
        if self.trip_kwh > self.capacity_kwh:
            raise ValueError(f"trip_kwh ({self.trip_kwh}) exceeds capacity_kwh ({self.capacity_kwh})")
        if self.depart_h == self.arrive_h:
            raise ValueError("depart_h and arrive_h must differ")
        return self


class Prosumer(_Model):
    id: str = Field(min_length=1, description="Unique name of the prosumer.")
    bus: str = Field(min_length=1, description="Bus id in the grid where the prosumer is connected.")
    load: Load
    pv: PV | None = None
    battery: Battery | None = None
    ev: EV | None = None


class Range(_Model):
    min: NonNegativeFloat
    max: NonNegativeFloat

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FleetPV(_Model):
    share: Fraction = Field(description="Share of the fleet's prosumers with PV.")
    kwp: Range = Field(description="Peak power drawn uniformly from this range [kWp].")
    profiles: list[str] = Field(["PV3"], min_length=1, description="PV profiles assigned in turn.")


class FleetBattery(Battery):
    share: Fraction = Field(description="Share of the PV owners that also have a battery.")

    @model_validator(mode="after")
    def _no_hil(self) -> FleetBattery:
        if self.hil is not None:
            raise ValueError("hil: a device takes the place of one prosumer's battery; give it under prosumers")
        return self


class HourRange(Range):
    """A range of times of day [h]: within 0..24."""

    @model_validator(mode="after")
    def _within_a_day(self) -> HourRange:
        if self.max > 24:
            raise ValueError(f"times of day lie in 0..24 h; max is {self.max:g}")
        return self


class FleetEV(_Model):
    share: Fraction = Field(description="Share of the fleet's prosumers with an EV.")
    capacity_kwh: PositiveFloat
    charge_kw: PositiveFloat
    charge_efficiency: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.9
    trip_kwh: Range = Field(description="Energy of each day's trip, drawn from this range [kWh]; at most capacity_kwh.")
    depart_h: HourRange = Field(description="Time of day the car leaves, drawn from this range [h, 0..24].")
    arrive_h: HourRange = Field(description="Time of day the car comes back, drawn from this range [h, 0..24].")

    @model_validator(mode="after")
    def _trips_fit(self) -> FleetEV:
        if self.trip_kwh.max > self.capacity_kwh:
            raise ValueError(
                f"trip_kwh.max ({self.trip_kwh.max:g}) exceeds capacity_kwh ({self.capacity_kwh:g}): "
                "a car cannot use more on a trip than its battery holds"
            )
        return self


class Fleet(_Model):
    """Prosumers generated from the grid's own loads, reproducibly from the scenario's seed."""

    from_grid_loads: Literal[True] = Field(
        description="One prosumer per load of the SimBench grid, at its bus, with its profile and size."
    )
    pv: FleetPV | None = None
    battery: FleetBattery | None = None
    ev: FleetEV | None = None


class MarketPreferences(_Model):
    """Owners' preferences, drawn per prosumer uniformly from each range (reproducibly from the seed)."""

    green_premium_per_kwh: Range = Field(
        default_factory=lambda: Range(min=0.0, max=0.0),
        description="Extra a buyer pays for energy [currency/kWh]; raises its bids.",
    )
    subsidy_share: Range = Field(
        default_factory=lambda: Range(min=0.0, max=0.0),
        description="Share of the retail spread a seller gives to its buyers [0..1].",
    )
    risk_aversion: Range = Field(
        default_factory=lambda: Range(min=0.0, max=0.0),
        description="Share of the forecast surplus or deficit held back from the market [0..1] (halved).",
    )

    @model_validator(mode="after")
    def _fractions(self) -> MarketPreferences:
        for name in ("subsidy_share", "risk_aversion"):
            if getattr(self, name).max > 1:
                raise ValueError(f"{name}.max must be <= 1")
        if self.green_premium_per_kwh.max > 1:
            raise ValueError("green_premium_per_kwh.max must be <= 1 currency/kWh")
        return self


class Market(_Model):
    """A P2P market day: the platform runs as its own process, every prosumer's EMS is an MQTT client."""

    mechanism: Literal[MECHANISM_NAMES] = Field(  # type: ignore[valid-type]
        DEFAULT_MECHANISM, description="Clearing mechanism of testbed.domain.market."
    )
    interval_s: int = Field(900, gt=0, description="Market interval [s]; a multiple of time.resolution_s.")
    import_price_per_kwh: NonNegativeFloat = Field(0.30, description="Retail import price [currency/kWh].")
    export_price_per_kwh: NonNegativeFloat = Field(0.08, description="Retail export price [currency/kWh].")
    transport: Literal["mqtt", "inproc"] = Field(
        "mqtt",
        description="mqtt: the platform as its own process behind an MQTT broker, every prosumer its own MQTT "
        "client (demo, real-time and hardware runs); inproc: the same platform core, protocol messages and "
        "ledger inside the run's process, without sockets or broker (fast studies; same ledger and KPIs).",
    )
    broker: str | None = Field(
        None,
        description="mqtt://host:port of a running broker; by default the run starts Mosquitto when it is "
        "installed, else the platform's embedded amqtt broker.",
    )
    ledger: str | None = Field(
        None, description="Ledger URL (sqlite:///..., postgresql://...); by default SQLite in the run folder."
    )
    credentials: str | None = Field(
        None,
        description="credentials.json from `fpp platform acl --scenario` (the platform's, the clock's and every "
        "prosumer's password) for a broker that requires them; relative to the scenario file; needs broker.",
    )
    timeout_s: PositiveFloat = Field(60.0, description="How long the bridge waits for the platform [s].")
    preferences: MarketPreferences = Field(default_factory=MarketPreferences)

    @property
    def tariff(self) -> Tariff:
        """The retail tariff every prosumer of the market faces."""
        return Tariff(import_price_per_kwh=self.import_price_per_kwh, export_price_per_kwh=self.export_price_per_kwh)

    @field_validator("ledger")
    @classmethod
    def _ledger_scheme(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(LEDGER_SCHEMES):
            raise ValueError(
                f"{v!r} is not a ledger URL; use sqlite:///relative.db, sqlite:////absolute.db "
                "or postgresql://user@host/db"
            )
        return v

    @model_validator(mode="after")
    def _tariff(self) -> Market:
        if self.export_price_per_kwh > self.import_price_per_kwh:
            raise ValueError(
                f"export_price_per_kwh ({self.export_price_per_kwh}) exceeds import_price_per_kwh "
                f"({self.import_price_per_kwh})"
            )
        if self.broker is not None and not self.broker.startswith(("mqtt://", "mqtts://")):
            raise ValueError(f"broker: expected mqtt://host:port or mqtts://host:port, got {self.broker!r}")
        if self.transport == "inproc" and (self.broker is not None or self.credentials is not None):
            raise ValueError("broker and credentials: only for transport mqtt (inproc has no broker)")
        if self.credentials is not None and self.broker is None:
            raise ValueError("credentials: only for a broker named in broker (the embedded broker takes no passwords)")
        return self


class ServiceMembers(_Model):
    """How the members' agents decide their offers for grid-service contracts: each owner's preferences are
    drawn per prosumer uniformly from each range (reproducibly from the seed). Only prosumers with a battery
    take part."""

    reserve_soc: Range = Field(
        default_factory=lambda: Range(min=0.2, max=0.2),
        description="State of charge kept for the home, never offered [0..1].",
    )
    max_power_share: Fraction = Field(1.0, description="Share of the battery's power that may be committed [0..1].")
    availability_premium_per_kw_h: Range = Field(
        default_factory=lambda: Range(min=0.0, max=0.0),
        description="What an owner asks for holding 1 kW for 1 h [currency/(kW·h)].",
    )
    degradation_cost_per_kwh: NonNegativeFloat = Field(
        0.0, description="Cost of cycling the battery [currency/kWh of throughput]."
    )
    soc_sd: Fraction = Field(
        0.05, description="Standard deviation of a member's forecast of its state of charge at a window's start."
    )
    net_load_sd_kw: Range = Field(
        default_factory=lambda: Range(min=0.0, max=0.0),
        description="Standard deviation of a home's net-load forecast error during a window [kW].",
    )
    fail: list[str] = Field(
        default_factory=list,
        description="Prosumer ids whose battery does not follow its award (a device fault, to test penalties).",
    )

    @model_validator(mode="after")
    def _fractions(self) -> ServiceMembers:
        if self.reserve_soc.max > 1:
            raise ValueError("reserve_soc.max must be <= 1")
        return self


class DsoOpportunities(_Model):
    """The platform finds the DSO's needs itself: a forecast power flow of the day on the members' forecasts;
    every transformer or line above its limit and every voltage outside the grid's band becomes a contract."""

    availability_price_per_kw_h: NonNegativeFloat = Field(description="Pay for holding 1 kW for 1 h [currency/(kW·h)].")
    utilisation_price_per_kwh: NonNegativeFloat = Field(0.0, description="Pay per kWh delivered [currency/kWh].")
    penalty: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "pro_rata"},
        description="Penalty rule of the contracts (docs/fpp.md): {kind: pro_rata}, {kind: threshold, "
        "pf_threshold}, {kind: per_kwh, penalty_price_per_kwh}.",
    )
    confidence: Annotated[float, Field(ge=0.5, lt=1.0, allow_inf_nan=False)] = Field(
        0.9, description="Probability with which the capacity must be available."
    )
    min_sensitivity: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.5, description="A bus must relieve at least this share of its kW to count."
    )
    margin: NonNegativeFloat = Field(0.1, description="Capacity = largest forecast overload * (1 + margin).")
    merge_gap_s: NonNegativeFloat = Field(3600.0, description="Violations closer than this form one window [s].")
    trafo_limit_pct: PositiveFloat = Field(100.0, description="Transformer loading limit [% of rating].")
    line_limit_pct: PositiveFloat = Field(100.0, description="Line loading limit [% of rating].")
    voltage: bool = Field(True, description="Also advertise voltage support for forecast voltages outside the band.")


class FrequencyEvent(_Model):
    """A loss of infeed during the day: frequency-response contracts whose window holds it are dispatched by their
    product's response curve (testbed.domain.services) on this frequency trace."""

    start: datetime = Field(description="When the infeed is lost (local time, inside the run).")
    nadir_hz: PositiveFloat = Field(description="Lowest frequency reached [Hz].")
    settle_hz: PositiveFloat = Field(description="Frequency it recovers towards [Hz].")
    rocof_hz_per_s: PositiveFloat = Field(0.125, description="Rate of change of frequency of the fall [Hz/s].")
    recovery_s: PositiveFloat = Field(900.0, description="Time to recover from the nadir to the settling value [s].")
    f_nom_hz: PositiveFloat = Field(50.0, description="Nominal frequency [Hz].")

    @model_validator(mode="after")
    def _ordered(self) -> FrequencyEvent:
        if not self.nadir_hz < self.f_nom_hz or not self.nadir_hz <= self.settle_hz <= self.f_nom_hz:
            raise ValueError(f"need nadir_hz ({self.nadir_hz}) <= settle_hz ({self.settle_hz}) <= f_nom_hz "
                             f"({self.f_nom_hz}), nadir below nominal")
        return self


class Services(_Model):
    """Grid-service contracts the federated power plant's coalitions win, deliver and share (docs/fpp.md)."""

    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every contract's prices.")
    members: ServiceMembers = Field(default_factory=ServiceMembers)
    dso: DsoOpportunities | None = Field(
        None, description="Find DSO congestion-relief and voltage-support contracts from a forecast power flow."
    )
    calendar: list[dict[str, Any]] = Field(
        default_factory=list,
        description="TSO, supplier and wholesale contracts, each as in docs/fpp.md (id, buyer, service, window, "
        "direction, capacity_kw, confidence, prices, penalty, currency); windows inside the run.",
    )
    frequency_event: FrequencyEvent | None = Field(
        None, description="A loss of infeed that dispatches the frequency-response contracts whose window holds it."
    )
    timeout_s: PositiveFloat = Field(60.0, description="How long the services client waits for the platform [s].")

    @model_validator(mode="after")
    def _contracts(self) -> Services:
        from testbed.domain.fpp.contract import PenaltyRule, contract_problems  # fpp imports the scenario loader
        from testbed.domain.services.frequency import FREQUENCY_SERVICES

        problems = []
        for i, item in enumerate(self.calendar):
            problems += contract_problems(item, f"calendar[{i}]")
            service = item.get("service") if isinstance(item, dict) else None
            if isinstance(service, dict) and service.get("kind") == "frequency_response" and isinstance(
                    service.get("product"), str) and service["product"] not in FREQUENCY_SERVICES:
                problems.append(f"calendar[{i}].service.product: unknown frequency service {service['product']!r} "
                                f"(known: {', '.join(sorted(FREQUENCY_SERVICES))})")
            if isinstance(item, dict) and item.get("currency") not in (None, self.currency):
                problems.append(f"calendar[{i}].currency: {item.get('currency')!r} differs from services.currency "
                                f"{self.currency!r}")
        ids = [item.get("id") for item in self.calendar if isinstance(item, dict)]
        problems += [f"calendar: contract id {i!r} is repeated" for i in sorted({i for i in ids
                                                                               if ids.count(i) > 1}, key=str)]
        if self.dso is not None:
            try:
                PenaltyRule.model_validate(self.dso.penalty)
            except ValueError as exc:
                problems.append(f"dso.penalty: {exc}".splitlines()[0] + " (see docs/fpp.md)")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Outputs(_Model):
    dir: str = Field("results", description="Folder under which each run gets results/<run-id>/.")
    timeseries: bool = Field(True, description="Write timeseries.parquet.")


class Scenario(_Model):
    """A whole run: what to simulate, over which window, and where results go."""

    schema_version: Literal[1] = Field(description="Version of this file format (1).")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Name used in the run id.")
    description: str = ""
    seed: int = Field(ge=0, le=2**63 - 1, description="Seed of every random choice, so that runs repeat exactly.")
    time: TimeWindow
    grid: Grid
    profiles: str | None = Field(
        None,
        pattern=r"^simbench:.+$",
        description="simbench:<code> whose year-long load and PV profiles (and, for a fleet, loads) are used; "
        "by default the grid's own, when the grid is a SimBench grid.",
    )
    prosumers: list[Prosumer] = Field(default_factory=list)
    fleet: Fleet | None = None
    market: Market | None = Field(None, description="A P2P market over the platform (see docs/platform.md).")
    services: Services | None = Field(
        None, description="Grid-service contracts of the federated power plant (see docs/fpp.md)."
    )
    frequency_response: FrequencyResponse | None = Field(
        None, description="Batteries answering a frequency at a fast step beside the grid (docs/services.md)."
    )
    outputs: Outputs = Field(default_factory=Outputs)

    @model_validator(mode="after")
    def _has_prosumers(self) -> Scenario:
        if not self.prosumers and self.fleet is None:
            raise ValueError("the scenario has no prosumers: give prosumers, fleet, or both")
        if self.profiles is None and not self.grid.network.startswith("simbench:"):
            raise ValueError(
                "profiles: required when the grid is not a SimBench grid (e.g. simbench:1-LV-rural3--0-sw)"
            )
        if self.market is not None and self.market.interval_s % self.time.resolution_s != 0:
            raise ValueError(
                f"market.interval_s ({self.market.interval_s} s) is not a multiple of time.resolution_s "
                f"({self.time.resolution_s} s)"
            )
        if self.services is not None:
            self._services_in_window(self.services)
            if self.market is not None and self.market.transport == "inproc":
                raise ValueError(
                    "market.transport: inproc cannot carry services: (the grid-service contracts speak MQTT to "
                    "the platform process); use transport mqtt"
                )
        if self.frequency_response is not None:
            fast = self.frequency_response.problems(self.time.resolution_s, self.time.duration_h * 3600.0)
            if fast:
                raise ValueError("; ".join(fast))
        ids = [p.id for p in self.prosumers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"prosumer ids must be unique; repeated: {', '.join(dupes)}")
        return self

    def _services_in_window(self, services: Services) -> None:
        start = self.time.start
        end = start + timedelta(hours=self.time.duration_h)
        problems = []
        event = services.frequency_event
        if event is not None and not start <= event.start < end:
            problems.append(f"services.frequency_event.start: {event.start} is not inside the run [{start}, {end})")
        for i, item in enumerate(services.calendar):
            w = item["window"]
            lo, hi = (datetime.fromisoformat(str(w[k])) for k in ("start", "end"))
            if lo < start or hi > end:
                problems.append(f"services.calendar[{i}].window: [{lo}, {hi}) is not inside the run [{start}, {end})")
            for k, t in (("start", lo), ("end", hi)):
                if (t - start).total_seconds() % self.time.resolution_s:
                    problems.append(f"services.calendar[{i}].window.{k}: {t} is not on a step of "
                                    f"time.resolution_s ({self.time.resolution_s} s)")
        if problems:
            raise ValueError("; ".join(problems))


def profiles_source(scenario: Scenario) -> str:
    """The SimBench code whose profiles the scenario uses."""
    ref = scenario.profiles or scenario.grid.network
    return ref.removeprefix("simbench:")

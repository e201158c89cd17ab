"""The market case: agents, grid tariff, orders, energy classes and network data for one interval.

A case is plain data; :func:`parse_case` validates a mapping (as read from JSON or YAML by the CLI) and
raises one :class:`~testbed.domain.errors.UserError` that lists every problem with its path, such as
``agents[3].p_max_kw: must be >= p_min_kw (5.0)``.

Units: power in kW with the generator convention (p > 0: the agent exports), prices in currency per kWh,
``cost_a`` in currency/(kW²·h), ``cost_b`` in currency/kWh, so an agent's cost rate is
``0.5*cost_a*p**2 + cost_b*p`` in currency per hour.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from testbed.domain.errors import UserError
from testbed.domain.prosumer import Preferences, Tariff
from testbed.domain.scenario.loader import field_path

GRID_ID = "grid"
"""Reserved name of the upstream grid as a trading party and energy class."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Agent(_Model):
    id: str = Field(min_length=1)
    p_min_kw: float
    p_max_kw: float
    cost_a: float = Field(ge=0.0)
    cost_b: float
    bus: str | None = None
    energy_class: str | None = None
    preferences: Preferences | None = None
    role: Literal["seller", "buyer"] | None = None
    """P2P only: the side a prosumer (p_min < 0 < p_max) takes this interval; unset, it takes the side of
    its pool dispatch. Pure producers and consumers have theirs from their bounds."""


class Order(_Model):
    """An explicit order for the double auction; ``price_per_kwh`` is the limit price."""

    id: str = Field(min_length=1)
    agent: str
    side: Literal["buy", "sell"]
    quantity_kw: float = Field(gt=0.0)
    price_per_kwh: float
    energy_class: str | None = None


class EnergyClass(_Model):
    """A class of energy. ``eligible_buyers`` (if set) restricts who may buy it, e.g. subsidised energy
    reserved for low-income households."""

    description: str = ""
    eligible_buyers: list[str] | None = None


class LineLimit(_Model):
    """A monitored line: ``flow_kw = base_flow_kw + sum(ptdf[bus] * injection_kw[bus])``, |flow| <= limit."""

    id: str = Field(min_length=1)
    ptdf: dict[str, float]
    limit_kw: float = Field(gt=0.0)
    base_flow_kw: float = 0.0


class VoltageLimit(_Model):
    """A monitored bus: ``vm_pu = v0_pu + sum(dv_dp_pu_per_kw[bus] * injection_kw[bus])``, kept within
    ``[v_min_pu, v_max_pu]``."""

    bus: str = Field(min_length=1)
    v0_pu: float = Field(gt=0.0)
    dv_dp_pu_per_kw: dict[str, float]
    v_min_pu: float = Field(gt=0.0)
    v_max_pu: float = Field(gt=0.0)


class Network(_Model):
    """Linearised network data from the grid engine, and network charges for P2P trades.

    A P2P trade between buses ``u`` and ``v`` costs each side ``0.5 * charge_per_kwh_per_distance *
    distance[u][v]`` per kWh (paid to the network operator); ``distance`` is symmetric (either order may be
    given) and zero on the same bus.
    """

    lines: list[LineLimit] = Field(default_factory=list)
    voltages: list[VoltageLimit] = Field(default_factory=list)
    charge_per_kwh_per_distance: float = Field(default=0.0, ge=0.0)
    distance: dict[str, dict[str, float]] = Field(default_factory=dict)

    def bus_distance(self, u: str, v: str) -> float | None:
        if u == v:
            return 0.0
        d = self.distance.get(u, {}).get(v)
        return d if d is not None else self.distance.get(v, {}).get(u)

    @property
    def has_limits(self) -> bool:
        return bool(self.lines or self.voltages)


class MarketCase(_Model):
    interval_h: float = Field(gt=0.0)
    grid: Tariff | None = None
    agents: list[Agent]
    orders: list[Order] = Field(default_factory=list)
    classes: dict[str, EnergyClass] = Field(default_factory=dict)
    network: Network | None = None
    _checked: bool = PrivateAttr(default=False)  # set by parse_case once the cross checks passed


def _path(loc: tuple[Any, ...]) -> str:
    return field_path(loc, empty="(case)")


def _check_semantics(case: MarketCase) -> list[str]:
    """Problems pydantic cannot see: cross references, bound order, duplicates."""
    problems: list[str] = []
    ids = [a.id for a in case.agents]
    known = set(ids)
    classes = set(case.classes) | {GRID_ID}
    if not case.agents:
        problems.append("agents: at least one agent is needed")
    for name, n in Counter(ids).items():
        if n > 1:
            where = [i for i, x in enumerate(ids) if x == name]
            problems.append(f"agents{where}.id: duplicate id {name!r}")
    if GRID_ID in case.classes and case.classes[GRID_ID].eligible_buyers is not None:
        problems.append(f"classes.{GRID_ID}.eligible_buyers: the grid class cannot be restricted")
    for name, cls in case.classes.items():
        for j, buyer in enumerate(cls.eligible_buyers or []):
            if buyer not in known:
                problems.append(f"classes.{name}.eligible_buyers[{j}]: unknown agent {buyer!r}")
    net = case.network
    needs_bus = net is not None and (net.has_limits or net.charge_per_kwh_per_distance > 0)
    for i, a in enumerate(case.agents):
        where = f"agents[{i}]"
        if a.id == GRID_ID:
            problems.append(f"{where}.id: {GRID_ID!r} is reserved for the upstream grid")
        if a.p_min_kw > a.p_max_kw:
            problems.append(f"{where}.p_max_kw: {a.p_max_kw} is below p_min_kw {a.p_min_kw}")
        if (a.role == "seller" and a.p_max_kw < 0) or (a.role == "buyer" and a.p_min_kw > 0):
            problems.append(f"{where}.role: {a.role!r} contradicts the bounds [{a.p_min_kw}, {a.p_max_kw}]")
        if a.energy_class is not None and a.energy_class not in classes:
            problems.append(f"{where}.energy_class: unknown class {a.energy_class!r} (declare it in classes)")
        if needs_bus and a.bus is None:
            problems.append(f"{where}.bus: needed because the case has network limits or charges")
        if a.preferences is not None:
            for c in a.preferences.class_premium_per_kwh:
                if c not in classes:
                    problems.append(f"{where}.preferences.class_premium_per_kwh.{c}: unknown class {c!r}")
            for p in a.preferences.partner_premium_per_kwh:
                if p not in known and p != GRID_ID:
                    problems.append(f"{where}.preferences.partner_premium_per_kwh.{p}: unknown agent {p!r}")
                elif p == a.id:
                    problems.append(
                        f"{where}.preferences.partner_premium_per_kwh.{p}: an agent cannot trade with itself"
                    )
    problems += _check_orders(case, known, classes)
    if net is not None:
        problems += _check_network(case, net)
    return problems


def _check_orders(case: MarketCase, known: set[str], classes: set[str]) -> list[str]:
    problems: list[str] = []
    for name, n in Counter(o.id for o in case.orders).items():
        if n > 1:
            problems.append(f"orders: duplicate order id {name!r}")
    by_id = {a.id: a for a in case.agents}
    sell: dict[str, float] = {}
    buy: dict[str, float] = {}
    for k, o in enumerate(case.orders):
        if o.agent not in known:
            problems.append(f"orders[{k}].agent: unknown agent {o.agent!r}")
            continue
        if o.energy_class is not None and o.energy_class not in classes:
            problems.append(f"orders[{k}].energy_class: unknown class {o.energy_class!r}")
        book = sell if o.side == "sell" else buy
        book[o.agent] = book.get(o.agent, 0.0) + o.quantity_kw
    for agent, q in sell.items():
        cap = max(by_id[agent].p_max_kw, 0.0)
        if q > cap + 1e-9:
            problems.append(f"orders: agent {agent!r} offers {q:g} kW in total, above p_max_kw {cap:g}")
    for agent, q in buy.items():
        cap = max(-by_id[agent].p_min_kw, 0.0)
        if q > cap + 1e-9:
            problems.append(f"orders: agent {agent!r} bids to buy {q:g} kW in total, above -p_min_kw {cap:g}")
    return problems


def _check_network(case: MarketCase, net: Network) -> list[str]:
    problems: list[str] = []
    buses = {a.bus for a in case.agents if a.bus is not None}
    for k, line in enumerate(net.lines):
        for bus in line.ptdf:
            if bus not in buses:
                problems.append(f"network.lines[{k}].ptdf.{bus}: no agent is connected to bus {bus!r}")
    for k, v in enumerate(net.voltages):
        if v.v_min_pu > v.v_max_pu:
            problems.append(f"network.voltages[{k}].v_max_pu: {v.v_max_pu} is below v_min_pu {v.v_min_pu}")
        for bus in v.dv_dp_pu_per_kw:
            if bus not in buses:
                problems.append(f"network.voltages[{k}].dv_dp_pu_per_kw.{bus}: no agent at bus {bus!r}")
    for u, row in net.distance.items():
        for v, d in row.items():
            if d < 0:
                problems.append(f"network.distance.{u}.{v}: {d} is negative")
    if net.charge_per_kwh_per_distance > 0:
        missing = sorted(
            {tuple(sorted((u, v))) for u in buses for v in buses if u != v and net.bus_distance(u, v) is None}
        )
        for u, v in missing:
            problems.append(f"network.distance: no distance between buses {u!r} and {v!r}")
    return problems


def _raw_cross_checks(data: Mapping[str, Any]) -> list[str]:
    """Best-effort cross checks on a case that failed field validation, so that one run reports the
    duplicate ids, crossed bounds and unknown names too (only where the raw values have the right types)."""
    agents = data.get("agents")
    if not isinstance(agents, list):
        return []
    rows = [a if isinstance(a, Mapping) else {} for a in agents]
    ids = [a.get("id") for a in rows]
    known = {i for i in ids if isinstance(i, str)}
    classes_raw = data.get("classes")
    classes = (set(classes_raw) if isinstance(classes_raw, Mapping) else set()) | {GRID_ID}
    problems = []
    for name, n in Counter(i for i in ids if isinstance(i, str)).items():
        if n > 1:
            problems.append(f"agents{[k for k, x in enumerate(ids) if x == name]}.id: duplicate id {name!r}")
    for i, a in enumerate(rows):
        lo, hi = a.get("p_min_kw"), a.get("p_max_kw")
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            problems.append(f"agents[{i}].p_max_kw: {float(hi)} is below p_min_kw {float(lo)}")
        ec = a.get("energy_class")
        if isinstance(ec, str) and ec not in classes:
            problems.append(f"agents[{i}].energy_class: unknown class {ec!r} (declare it in classes)")
        prefs = a.get("preferences")
        if isinstance(prefs, Mapping):
            for c in prefs.get("class_premium_per_kwh") or prefs.get("class_premium") or {}:
                if c not in classes:
                    problems.append(f"agents[{i}].preferences.class_premium_per_kwh.{c}: unknown class {c!r}")
            for q in prefs.get("partner_premium_per_kwh") or prefs.get("partner_premium") or {}:
                if q not in known and q != GRID_ID:
                    problems.append(f"agents[{i}].preferences.partner_premium_per_kwh.{q}: unknown agent {q!r}")
    return problems


def _checks_of_the_rest(data: Mapping[str, Any], exc: ValidationError) -> list[str]:
    """The cross checks of a case whose fields failed validation, so that one run reports every problem: on the
    case without its failed optional sections (a bad ``grid`` or ``network``) when that validates, else the
    best-effort checks on the raw values."""
    failed = {e["loc"][0] for e in exc.errors() if e["loc"]}
    if not failed & {"interval_h", "agents", "orders", "classes"}:
        try:
            rest = MarketCase.model_validate({k: v for k, v in data.items() if k not in failed})
        except ValidationError:
            rest = None
        if rest is not None:
            return _check_semantics(rest)
    return _raw_cross_checks(data)


def parse_case(data: Mapping[str, Any] | MarketCase) -> MarketCase:
    """Validate a case given as a mapping (or re-check a :class:`MarketCase`).

    Raises :class:`UserError` listing every problem with its path.
    """
    if isinstance(data, MarketCase):
        if data._checked:
            return data
        case = data
    else:
        if not isinstance(data, Mapping):
            got = type(data).__name__
            raise UserError("market case is invalid", [f"(case): expected a mapping, not {got}"])
        try:
            case = MarketCase.model_validate(dict(data))
        except ValidationError as exc:
            problems = [f"{_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
            problems += [p for p in _checks_of_the_rest(data, exc) if p not in problems]
            raise UserError("market case is invalid", problems) from None
    problems = _check_semantics(case)
    if problems:
        raise UserError("market case is invalid", problems)
    case._checked = True
    return case


def agent_cost(a: Agent, p_kw: float) -> float:
    """Cost rate of an agent at injection ``p_kw`` [currency/h]."""
    return 0.5 * a.cost_a * p_kw * p_kw + a.cost_b * p_kw

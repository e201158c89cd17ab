"""The federated power plant's contract life cycle over MQTT, before and after the simulated day.

Before the day (:func:`before_day`), for each contract in the order of its window: the operator advertises it;
every member's agent reads the advert and decides on its own (:func:`testbed.domain.fpp.decide_offer`) from its
battery's forecast state and its owner's preferences, and offers or declines; the operator closes the offers
(the platform selects the coalition with HiGHS); the awarded members declare their baseline; the operator sends
the buyer's instruction (:func:`testbed.domain.fpp.dispatch.instruction_kw`: frequency response from the
product's curve on ``services.frequency_event``'s trace) and each member receives its part. A member already
awarded a contract whose window overlaps does not offer again. After the day (:func:`after_day`) each member
reports its metered power over the window and the operator settles (the platform shares by every rule and pays
by one).

Every message goes through the platform process and its ledger (:mod:`testbed.platform.services_core`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from simulators.fpp_delivery.model import Schedule
from testbed.domain.errors import Fault
from testbed.domain.fpp import BatteryLimits, Contract, Decline, OfferPreferences, decide_offer
from testbed.domain.fpp.dispatch import instruction_kw
from testbed.domain.fpp.offer import window_limits
from testbed.domain.scenario.models import Battery, FrequencyEvent
from testbed.domain.services.signals import TestSignal, loss_of_infeed
from testbed.platform.client import Connection
from testbed.platform.services_client import ServiceRefused, ServicesAccount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A prosumer with a battery that takes part: its ids, bus, battery, owner's preferences and forecasts."""

    wid: str
    pid: str
    bus: str
    battery: Battery
    prefs: OfferPreferences
    soc_sd: float
    net_load_sd_kw: float
    index: int
    """position in the fleet's arrays and the forecast's columns"""
    fails: bool = False
    password: str | None = None


@dataclass
class DayPlan:
    """What was agreed before the day."""

    contracts: list[Contract]
    starts: dict[str, int]
    """first step of each contract's window"""
    schedules: list[Schedule] = field(default_factory=list)
    baselines: dict[tuple[str, str], float] = field(default_factory=dict)
    """(member wid, contract id) -> declared baseline [kW]"""
    sensitivity: dict[tuple[str, str], float] = field(default_factory=dict)
    required_kw: dict[str, list[float]] = field(default_factory=dict)
    declines: dict[str, dict[str, str]] = field(default_factory=dict)
    """contract id -> member wid -> the agent's reason"""
    refused: list[str] = field(default_factory=list)


def battery_limits(member: Member, forecast, start: int, end: int, resolution_s: int,
                   committed_soc: float = 0.0) -> BatteryLimits:
    """The member's battery for the window ``[start, end)`` of the forecast (``window_limits``)."""
    b = member.battery
    return window_limits(capacity_kwh=b.capacity_kwh, power_kw=b.power_kw,
                         round_trip_efficiency=b.round_trip_efficiency, soc_min=b.soc_min, soc_max=b.soc_max,
                         soc_start=float(forecast.soc_start[start, member.index]),
                         own_kw=forecast.battery_kw[start:end, member.index], step_h=resolution_s / 3600.0,
                         committed_soc=committed_soc)


def _overlaps(a: Contract, b: Contract) -> bool:
    return a.window.start < b.window.end and b.window.start < a.window.end


def frequency_trace(event: FrequencyEvent | None, contract: Contract) -> TestSignal | None:
    """The loss of infeed over a frequency-response contract's window (time 0 = its start), if it falls in it."""
    if event is None or contract.service.kind != "frequency_response":
        return None
    if not contract.window.start <= event.start < contract.window.end:
        return None
    return loss_of_infeed(event.f_nom_hz, (event.start - contract.window.start).total_seconds(),
                          event.rocof_hz_per_s, event.nadir_hz, event.settle_hz, event.recovery_s,
                          contract.duration_h * 3600.0)


async def _advert(account: ServicesAccount, contract_id: str, timeout_s: float) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            for a in account.inbox.get("advert", []):
                if a["contract"]["id"] == contract_id:
                    return a["contract"]
            await asyncio.sleep(0.01)


async def _inbox(account: ServicesAccount, kind: str, contract_id: str, timeout_s: float) -> dict:
    async with asyncio.timeout(timeout_s):
        while True:
            for m in account.inbox.get(kind, []):
                if m["contract_id"] == contract_id:
                    return m
            await asyncio.sleep(0.01)


async def before_day(conn: Connection, *, run_id: str, contracts: list[Contract], members: list[Member], forecast,
                     start: datetime, resolution_s: int, timeout_s: float, event: FrequencyEvent | None = None,
                     operator_password: str | None = None) -> DayPlan:
    """Advertise, offer, select, declare baselines and dispatch every contract (module docstring)."""
    starts = {c.id: int((c.window.start - start).total_seconds() // resolution_s) for c in contracts}
    plan = DayPlan(contracts=contracts, starts=starts)
    op_conn = Connection(conn.address, username="operator" if operator_password else None,
                         password=operator_password, tls_context=conn.tls_context)
    accounts = {m.pid: ServicesAccount(m.pid, Connection(conn.address, username=m.pid if m.password else None,
                                                         password=m.password, tls_context=conn.tls_context),
                                       client_id=f"{run_id}-svc-{m.pid}", give_up_s=timeout_s)
                for m in members}
    operator = ServicesAccount("operator", op_conn, operator=True, client_id=f"{run_id}-operator",
                               give_up_s=timeout_s)
    awarded: dict[str, list[Contract]] = {m.pid: [] for m in members}
    committed: dict[str, list[tuple[datetime, float]]] = {m.pid: [] for m in members}
    """per member: (end of an awarded window, change of its state of charge by its part of the instruction)"""
    try:
        await asyncio.gather(operator.__aenter__(), *(a.__aenter__() for a in accounts.values()))
        for c in contracts:
            await operator.request("contract", {"schema": "fpp.contract/1", "msg_id": f"{run_id}-advert-{c.id}"[:128],
                                                "contract": c.model_dump(mode="json", exclude_none=True)})
            steps = round(c.duration_h * 3600 / resolution_s)
            s0 = starts[c.id]
            offers, declines = [], {}
            for m in members:
                advert = Contract.model_validate(await _advert(accounts[m.pid], c.id, timeout_s))
                if any(_overlaps(advert, other) for other in awarded[m.pid]):
                    declines[m.wid] = "already holds a contract in an overlapping window"
                    continue
                before = sum(d for end, d in committed[m.pid] if end <= advert.window.start)
                limits = battery_limits(m, forecast, s0, s0 + steps, resolution_s, before)
                decision = decide_offer(advert, member=m.pid, bus=m.bus, battery=limits, prefs=m.prefs,
                                        soc_sd=m.soc_sd, net_load_sd_kw=m.net_load_sd_kw,
                                        offer_id=f"{run_id}-offer-{c.id}-{m.pid}"[:128])
                if isinstance(decision, Decline):
                    declines[m.wid] = decision.reason
                    continue
                data = decision.model_dump(mode="json", exclude_none=True)
                msg = {"schema": "fpp.service_offer/1", "msg_id": data.pop("id"), **data}
                msg.pop("schema_version", None)
                offers.append((m, msg))
            plan.declines[c.id] = declines
            results = await asyncio.gather(*(accounts[m.pid].request("service_offer", msg) for m, msg in offers),
                                           return_exceptions=True)
            for (m, _), r in zip(offers, results, strict=True):
                if isinstance(r, ServiceRefused):
                    plan.refused.append(f"{m.wid} offer for {c.id}: {r}")
                elif isinstance(r, BaseException):
                    raise r
            sel = await operator.request("close", {"schema": "fpp.service_close/1",
                                                   "msg_id": f"{run_id}-close-{c.id}"[:128], "contract_id": c.id})
            if sel["status"] != "filled":
                log.warning("contract %s unfilled: shortfall %.2f kW", c.id, sel["shortfall_kw"])
                continue
            chosen = [m for m in members if m.pid in sel["members"]]
            for m in chosen:
                awarded[m.pid].append(c)
                baseline = float(forecast.p_kw[s0:s0 + steps, m.index].mean())
                plan.baselines[(m.wid, c.id)] = baseline
                await accounts[m.pid].request("baseline", {
                    "schema": "fpp.baseline/1", "msg_id": f"{run_id}-baseline-{c.id}-{m.pid}"[:128],
                    "prosumer": m.pid, "contract_id": c.id, "p_baseline_kw": round(baseline, 9)})
            required = [round(float(x), 9) for x in instruction_kw(c, resolution_s, frequency_trace(event, c))]
            plan.required_kw[c.id] = required
            await operator.request("dispatch", {"schema": "fpp.service_dispatch/1",
                                                "msg_id": f"{run_id}-dispatch-{c.id}"[:128], "contract_id": c.id,
                                                "step_s": float(resolution_s), "required_kw": required})
            for m in chosen:
                part = await _inbox(accounts[m.pid], "service_dispatch", c.id, timeout_s)
                award = await _inbox(accounts[m.pid], "award", c.id, timeout_s)
                plan.sensitivity[(m.wid, c.id)] = award["sensitivity"]
                e_kwh = float(np.sum(part["meter_kw"])) * resolution_s / 3600.0
                eta = np.sqrt(m.battery.round_trip_efficiency)
                sign = -1.0 / eta if c.direction == "up" else eta if c.direction == "down" else 0.0
                committed[m.pid].append((c.window.end, sign * e_kwh / m.battery.capacity_kwh))
                plan.schedules.append(Schedule(member=m.wid, contract_id=c.id, start=s0,
                                               baseline_kw=plan.baselines[(m.wid, c.id)],
                                               meter_kw=tuple(part["meter_kw"]), fails=m.fails))
    except TimeoutError:
        raise Fault(f"grid-service contracts: the platform did not answer within {timeout_s:g} s (see its log in "
                    "the run folder)") from None
    finally:
        await asyncio.gather(operator.__aexit__(None, None, None),
                             *(a.__aexit__(None, None, None) for a in accounts.values()))
    return plan


async def after_day(conn: Connection, *, run_id: str, plan: DayPlan, members: list[Member],
                    metered: dict[tuple[str, str], list[float]], resolution_s: int, timeout_s: float,
                    sharing: str = "shapley", operator_password: str | None = None) -> dict[str, Any]:
    """Every scheduled member reports its metered power; the operator settles every dispatched contract."""
    by_wid = {m.wid: m for m in members}
    op_conn = Connection(conn.address, username="operator" if operator_password else None,
                         password=operator_password, tls_context=conn.tls_context)
    operator = ServicesAccount("operator", op_conn, operator=True, client_id=f"{run_id}-settle",
                               give_up_s=timeout_s)
    involved = sorted({s.member for s in plan.schedules})
    accounts = {w: ServicesAccount(by_wid[w].pid, Connection(
        conn.address, username=by_wid[w].pid if by_wid[w].password else None, password=by_wid[w].password,
        tls_context=conn.tls_context), client_id=f"{run_id}-report-{by_wid[w].pid}", give_up_s=timeout_s)
        for w in involved}
    out = {}
    try:
        await asyncio.gather(operator.__aenter__(), *(a.__aenter__() for a in accounts.values()))
        reports = []
        for s in plan.schedules:
            meter = metered.get((s.member, s.contract_id), [])
            if len(meter) != len(s.meter_kw):
                plan.refused.append(f"{s.member}: metered {len(meter)} of {len(s.meter_kw)} steps of {s.contract_id}"
                                    " (the run ended before the window did): no delivery report")
                continue
            reports.append(accounts[s.member].request("delivery", {
                "schema": "fpp.delivery/1", "msg_id": f"{run_id}-delivery-{s.contract_id}-{by_wid[s.member].pid}"[:128],
                "prosumer": by_wid[s.member].pid, "contract_id": s.contract_id, "step_s": float(resolution_s),
                "p_meter_kw": [round(x, 9) for x in meter]}))
        for r in await asyncio.gather(*reports, return_exceptions=True):
            if isinstance(r, ServiceRefused):
                plan.refused.append(str(r))
            elif isinstance(r, BaseException):
                raise r
        for cid in plan.required_kw:
            try:
                res = await operator.request("settle", {"schema": "fpp.service_settle/1",
                                                        "msg_id": f"{run_id}-settle-{cid}"[:128], "contract_id": cid,
                                                        "sharing": sharing})
            except ServiceRefused as exc:  # reported in the KPIs; the other contracts are still settled
                plan.refused.append(f"settlement of {cid}: {exc}")
                continue
            out[cid] = res["result"]
    except TimeoutError:
        raise Fault(f"grid-service contracts: the platform did not answer within {timeout_s:g} s when settling") \
            from None
    finally:
        await asyncio.gather(operator.__aexit__(None, None, None),
                             *(a.__aexit__(None, None, None) for a in accounts.values()))
    return out

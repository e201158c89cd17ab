"""The federated power plant part of ``fpp run``, for scenarios with ``services:`` (docs/fpp.md).

Before the day it finds the contracts: the scenario's calendar (TSO, supplier, wholesale) and, with
``services.dso``, the DSO's needs from a forecast power flow (:mod:`testbed.orchestration.fpp_forecast`). The
members are the prosumers with a battery; over MQTT, through the platform process and its ledger, the contracts
are advertised, the members' agents offer, the platform selects each coalition, the awarded members declare their
baselines and receive their part of the instruction (:mod:`testbed.orchestration.fpp_exchange`). The platform is
the market's when the scenario has ``market:``, else this part starts one.

During the day each awarded member's battery follows its part (``simulators.fpp_delivery``: a net-power target
for the fleet) and its meter is read. After the day the members report their delivery, the platform settles and
shares, and ``kpis.json`` gets an ``fpp`` section: per contract the required and delivered capacity, fulfilment,
revenue, penalty and every member's share, cost and gain; in total the members worse off, the Gini of the gains
and the firm capacity pooled against the sum of the members' own.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from testbed.domain.errors import UserError
from testbed.domain.fpp import Contract, OfferPreferences, parse_contracts
from testbed.domain.fpp.kpis import gini
from testbed.domain.fpp.settlement import response_kw
from testbed.domain.scenario.models import Services
from testbed.domain.verdict import Criterion
from testbed.orchestration.fpp_exchange import DayPlan, Member, after_day, before_day
from testbed.orchestration.fpp_forecast import forecast_power_flow, member_forecast
from testbed.orchestration.parts.market import platform_ids
from testbed.orchestration.platform_process import PlatformProcess
from testbed.orchestration.world import Part, WorldBuilder
from testbed.platform.client import Connection
from testbed.platform.ledger import Ledger

log = logging.getLogger(__name__)


def draw_members(services: Services, prosumers: list, fleet_ids: list[str], to_pid: dict[str, str],
                 seed: int, passwords: Mapping[str, str]) -> list[Member]:
    """The members (prosumers with a battery) with their owners' preferences, drawn from the seed."""
    rng = random.Random(f"fpp-members-{seed}")
    pref = services.members
    pos = {w: i for i, w in enumerate(fleet_ids)}
    out = []
    for p in prosumers:
        if p.battery is None:
            continue
        reserve, premium, sd = (round(rng.uniform(r.min, r.max), 6) for r in (
            pref.reserve_soc, pref.availability_premium_per_kw_h, pref.net_load_sd_kw))
        out.append(Member(
            wid=p.id, pid=to_pid[p.id], bus=p.bus, battery=p.battery, index=pos[p.id], soc_sd=pref.soc_sd,
            net_load_sd_kw=sd, fails=p.id in pref.fail, password=passwords.get(to_pid[p.id]),
            prefs=OfferPreferences(reserve_soc=reserve, max_power_share=pref.max_power_share,
                                   availability_premium_per_kw_h=premium,
                                   degradation_cost_per_kwh=pref.degradation_cost_per_kwh),
        ))
    return out


class FppPart(Part):
    """Needs ``"fleet"``; uses the market's ``"platform"`` when there is one (module docstring)."""

    name = "fpp"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.process: PlatformProcess | None = None
        self.platform: dict[str, Any] = {}
        self.members: list[Member] = []
        self.plan: DayPlan | None = None
        self.sink: dict[str, Any] = {}
        self.dso_contracts: list[Contract] = []
        self.run_id = "run"

    def build(self, builder: WorldBuilder) -> None:
        sv, plan = self.services, builder.plan
        sc = plan.scenario
        ids = list(builder.prosumer_ids)
        unknown = [f"services.members.fail: no prosumer {w!r}" for w in sv.members.fail if w not in ids]
        if unknown:
            raise UserError("services: unknown prosumer", unknown)
        run_dir = Path(builder.run_dir).resolve()
        self.run_id = re.sub(r"[^A-Za-z0-9_.:-]", "_", run_dir.name)[:40]
        if builder.provided("platform"):
            self.platform = builder.entity("platform")
        else:
            to_pid = platform_ids(ids)
            by_id = {p.id: p for p in plan.prosumers}
            registry = [{"id": to_pid[w], "bus": by_id[w].bus, "energy_class": None} for w in ids]
            ledger_url = f"sqlite:///{run_dir / 'ledger.db'}"
            self.process = PlatformProcess(registry, ledger_url=ledger_url, workdir=run_dir / "platform").start()
            atexit.register(self.process.stop)
            self.platform = {"address": self.process.address, "ledger_url": ledger_url, "prefix": "fpp_",
                             "to_pid": to_pid, "credentials": {}}
        creds = self.platform.get("credentials", {})
        self.members = draw_members(sv, plan.prosumers, ids, self.platform["to_pid"], sc.seed, creds)
        forecast = member_forecast(plan)
        contracts = parse_contracts(list(sv.calendar), "services.calendar") if sv.calendar else []
        if sv.dso is not None:
            buses = sorted({m.bus for m in self.members})
            self.dso_contracts = forecast_power_flow(plan, forecast, sv.dso, sv.currency, buses).contracts
            contracts += self.dso_contracts
        contracts.sort(key=lambda c: (c.window.start, c.id))
        conn = Connection(self.platform["address"])
        self.plan = asyncio.run(before_day(
            conn, run_id=self.run_id, contracts=contracts, members=self.members, forecast=forecast,
            start=sc.time.start, resolution_s=sc.time.resolution_s, timeout_s=sv.timeout_s, event=sv.frequency_event,
            operator_password=creds.get("operator")))
        delivery = builder.start("FppDelivery", "simulators.fpp_delivery.mosaik_sim:DeliverySimulator").Delivery(
            schedules=self.plan.schedules, fleet_ids=ids, sink=self.sink)
        fleet = builder.entity("fleet")
        builder.connect(fleet, delivery, "p_kw")
        builder.connect(delivery, fleet, "p_service_target_kw", time_shifted=True,
                        initial_data={"p_service_target_kw": {}})

    def kpis(self, builder: WorldBuilder) -> dict[str, Any]:
        sc = builder.plan.scenario
        if self.plan is None:  # build() did not get to the contracts
            return {}
        creds = self.platform.get("credentials", {})
        settled = asyncio.run(after_day(
            Connection(self.platform["address"]), run_id=self.run_id, plan=self.plan, members=self.members,
            metered=self.sink.get("metered", {}), resolution_s=sc.time.resolution_s, timeout_s=self.services.timeout_s,
            operator_password=creds.get("operator")))
        ledger = Ledger(self.platform["ledger_url"], prefix=self.platform["prefix"])
        try:
            rows = ledger.contracts()
        finally:
            ledger.close()
        return fpp_kpis(rows, settled, self.plan, self.members, self.sink.get("metered", {}))

    def criteria(self, kpis: Mapping[str, Any]) -> list[Criterion]:
        f = kpis.get("fpp", {})
        t = f.get("totals", {})
        worse = t.get("members_worse_off_that_delivered")
        unfilled = t.get("unfilled", 0)
        return [
            Criterion("no member that delivered is worse off", worse == 0 if worse is not None else None,
                      None if worse is None else float(worse), 0.0, "members",
                      f"{t.get('members_worse_off', 0)} worse off in all (members that failed to deliver included)",
                      group="fpp"),
            Criterion("every contract filled", unfilled == 0, float(unfilled), 0.0, "contracts",
                      f"shortfall {t.get('shortfall_kw', 0.0):.2f} kW in all", group="fpp"),
        ]

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            atexit.unregister(self.process.stop)
            self.process = None


def fpp_kpis(rows: list[tuple], settled: dict[str, Any], plan: DayPlan, members: list[Member],
             metered: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
    """The ``fpp`` section of ``kpis.json`` from the ledger's contracts and the day's plan (module docstring)."""
    by_pid = {m.pid: m for m in members}
    out: dict[str, Any] = {}
    gains, worse, worse_delivered = [], 0, 0
    pooled = alone = 0.0
    for cid, _seq, state, contract, selection, _dispatch, settlement in rows:
        c = Contract.model_validate(contract)
        sel = selection or {}
        entry: dict[str, Any] = {
            "buyer": c.buyer, "service": c.service.kind,
            "subject": getattr(c.service, "element", None) or getattr(c.service, "product", None)
            or ", ".join(getattr(c.service, "buses", []) or []) or None,
            "origin": c.origin, "window": [c.window.start.isoformat(), c.window.end.isoformat()],
            "direction": c.direction, "state": state, "status": sel.get("status", "open"),
            "required_kw": c.capacity_kw, "firm_kw": sel.get("firm_kw"), "shortfall_kw": sel.get("shortfall_kw"),
            "offers": sel.get("offers", 0), "declined": len(plan.declines.get(cid, {})),
            "pooled_firm_kw": sel.get("pooled_firm_kw"), "sum_individual_firm_kw": sel.get("sum_individual_firm_kw"),
            "currency": c.currency,
        }
        if sel.get("status") == "filled":
            pooled += sel["pooled_firm_kw"]
            alone += sel["sum_individual_firm_kw"]
        s = settlement or settled.get(cid)
        if s:
            entry.update({
                "fulfilment": s["performance_factor"], "required_kwh": s["required_kwh"],
                "delivered_kwh": s["delivered_kwh"], "revenue": s["total"], "availability_payment":
                s["availability_payment"], "utilisation_payment": s["utilisation_payment"], "penalty": s["penalty"],
                "surplus": s["surplus"], "sharing": s["sharing"], "stability": s["stability"],
            })
            entry["members"] = {}
            for pid, v in s["members"].items():
                m = by_pid.get(pid)
                wid = m.wid if m else pid
                entry["members"][wid] = {"bus": m.bus if m else None, "share": v["share"], "shares": v["shares"],
                                         "cost": v["cost"], "gain": v["gain"], "payout": v["payout"],
                                         "penalty": v["penalty"], "delivered_kwh": v["delivered_kwh"],
                                         "required_kwh": v["required_kwh"], "failed": bool(m and m.fails)}
                gains.append(v["gain"])
                if v["gain"] < -1e-9:
                    worse += 1
                    worse_delivered += 0 if m and m.fails else 1
            entry["series"] = _series(c, plan, metered)
        out[cid] = entry
    filled = sum(1 for e in out.values() if e["status"] == "filled")
    return {
        "contracts": out,
        "totals": {
            "contracts": len(out), "filled": filled, "unfilled": len(out) - filled,
            "shortfall_kw": float(sum(e["shortfall_kw"] or 0.0 for e in out.values() if e["status"] != "filled")),
            "revenue": float(sum(e.get("revenue", 0.0) for e in out.values())),
            "penalty": float(sum(e.get("penalty", 0.0) for e in out.values())),
            "member_places": len(gains), "members_worse_off": worse,
            "members_worse_off_that_delivered": worse_delivered,
            "gini_of_gains": gini(gains), "pooled_firm_kw": pooled, "sum_individual_firm_kw": alone,
            "pooling_gain_kw": pooled - alone,
        },
        "refused": plan.refused,
    }


def _series(c: Contract, plan: DayPlan, metered: dict[tuple[str, str], list[float]]) -> dict[str, list[float]]:
    """Required and delivered power over the window, counted at the location [kW per step]."""
    required = plan.required_kw.get(c.id, [])
    delivered = np.zeros(len(required))
    for s in plan.schedules:
        meter = metered.get((s.member, c.id))
        if s.contract_id != c.id or meter is None or len(meter) != len(required):
            continue
        r = response_kw(np.asarray(meter), s.baseline_kw, c.direction)
        delivered += plan.sensitivity.get((s.member, c.id), 1.0) * r
    return {"required_kw": [round(x, 6) for x in required], "delivered_kw": [round(x, 6) for x in delivered]}

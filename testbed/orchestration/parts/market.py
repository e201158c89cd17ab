"""The market part of ``fpp run``, for scenarios with ``market:``.

For such a scenario it starts the platform as its own process (with its embedded broker unless the scenario
names one; ledger in the run folder unless it names one), adds the mosaik market bridge with one MQTT agent
per prosumer, and after the run adds market KPIs from the ledger to ``kpis.json`` and writes the green
energy provenance to ``green_provenance.csv``.

Prosumer ids of a scenario (SimBench load names such as ``LV3.101 Load 1``) are not all valid platform ids,
so each gets a platform id with every other character replaced by ``_`` (made unique with a suffix).
"""

from __future__ import annotations

import atexit
import csv
import json
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.prosumer import Preferences
from testbed.domain.scenario.models import Market, Prosumer
from testbed.domain.verdict import Criterion, market_criteria
from testbed.orchestration.platform_process import PlatformProcess
from testbed.orchestration.world import Part, WorldBuilder
from testbed.platform import protocol as p
from testbed.platform.kpis import kpis_from_ledger, provenance_record
from testbed.platform.ledger import Ledger

log = logging.getLogger(__name__)


def platform_ids(ids: list[str]) -> dict[str, str]:
    """World id -> platform id (``[A-Za-z0-9_.-]``, at most 64 characters, unique)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for wid in ids:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", wid)[:56] or "p"
        pid, n = base, 1
        while pid in used or pid in ("clock", "platform", "operator"):
            n += 1
            pid = f"{base}-{n}"
        used.add(pid)
        out[wid] = pid
    return out


def ledger_prefix(run_dir: Path) -> str:
    """Table prefix of a run in a shared ledger database (PostgreSQL): ``run_<run folder name>_``."""
    return "run_" + re.sub(r"[^a-z0-9_]", "_", run_dir.name.lower())[:30] + "_"


def load_credentials(path: Path, pids: list[str]) -> dict[str, str]:
    """The passwords in ``credentials.json`` (``fpp platform acl``): user -> password, with one for the platform,
    the clock and every platform id in ``pids``; UserError naming the file and every missing account."""
    try:
        creds = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"market.credentials: cannot read {path}", [exc.strerror or str(exc)]) from None
    except ValueError as exc:
        raise UserError(f"market.credentials: {path} is not JSON", [str(exc)]) from None
    if not isinstance(creds, dict) or not all(isinstance(v, str) for v in creds.values()):
        raise UserError(f"market.credentials: {path} must map account names to passwords")
    missing = [u for u in (p.PLATFORM_ID, p.CLOCK_ID, *pids) if u not in creds]
    if missing:
        raise UserError(
            f"market.credentials: {path} has no password for {len(missing)} account(s) of this scenario "
            "(write it with `fpp platform acl --scenario`)",
            [f"account {u!r}" for u in missing[:20]]
            + ([f"... and {len(missing) - 20} more"] if len(missing) > 20 else []),
        )
    return creds


def draw_preferences(market: Market, ids: list[str], seed: int) -> dict[str, Preferences]:
    """Each prosumer's preferences, uniform in the scenario's ranges, the same for the same seed."""
    rng = random.Random(f"market-preferences-{seed}")
    prefs = market.preferences
    out = {}
    for wid in ids:
        green, subsidy, risk = (
            round(rng.uniform(getattr(prefs, name).min, getattr(prefs, name).max), 6)
            for name in ("green_premium_per_kwh", "subsidy_share", "risk_aversion")
        )
        out[wid] = Preferences(class_premium_per_kwh={"green": green}, subsidy_share=subsidy, risk_aversion=risk)
    return out


class MarketPart(Part):
    """Starts the platform process and the market bridge (one MQTT agent per prosumer); needs ``"fleet"``.
    After the run: the ``market`` KPIs from the ledger, ``green_provenance.csv``, and the market's criterion."""

    name = "market"

    def __init__(self, market: Market) -> None:
        self.market = market
        self.process: PlatformProcess | None = None
        self.ledger_url = ""
        self.prefix = "fpp_"
        self.to_pid: dict[str, str] = {}
        self.broker_name = ""
        """which broker carried the market: mosquitto, amqtt, external, or none (inproc)"""

    def build(self, builder: WorldBuilder) -> None:
        m, plan = self.market, builder.plan
        by_id: dict[str, Prosumer] = {p.id: p for p in plan.prosumers}
        ids = list(builder.prosumer_ids)
        self.to_pid = platform_ids(ids)
        run_dir = Path(builder.run_dir).resolve()
        if m.ledger:
            self.ledger_url = m.ledger
            self.prefix = ledger_prefix(run_dir)
        else:
            self.ledger_url = f"sqlite:///{run_dir / 'ledger.db'}"  # absolute path: four slashes
        creds: dict[str, str] = {}
        cred_path = None
        if m.credentials:
            base = Path(plan.source).resolve().parent if plan.source else Path.cwd()
            cred_path = (base / m.credentials).resolve()
            creds = load_credentials(cred_path, [self.to_pid[w] for w in ids])
        registry = [
            {
                "id": self.to_pid[w],
                "bus": by_id[w].bus,
                "energy_class": "green" if by_id[w].pv is not None else None,
            }
            for w in ids
        ]
        if m.transport == "inproc":
            self.broker_name = "none"
            self._add_bridge(
                builder,
                ids,
                by_id,
                creds,
                transport="inproc",
                broker_url="",
                platform={
                    "ledger_url": self.ledger_url,
                    "ledger_prefix": self.prefix,
                    "prosumers": [[r["id"], r["bus"], r["energy_class"]] for r in registry],
                },
            )
            return
        self.process = PlatformProcess(
            registry,
            ledger_url=self.ledger_url,
            broker_url=m.broker,
            mechanism=m.mechanism,
            interval_s=float(m.interval_s),
            tariff=m.tariff,
            ledger_prefix=self.prefix,
            workdir=run_dir / "platform",
            credentials=cred_path,
        ).start()
        atexit.register(self.process.stop)  # a run killed mid-way must not leave the platform behind
        self.broker_name = self.process.broker_name
        # later parts (grid-service contracts) speak to the same platform process and ledger
        builder.provide("platform", {"address": self.process.address, "ledger_url": self.ledger_url,
                                     "prefix": self.prefix, "to_pid": dict(self.to_pid), "credentials": creds})
        self._add_bridge(builder, ids, by_id, creds, transport="mqtt", broker_url=self.process.address.url)

    def _add_bridge(
        self,
        builder: WorldBuilder,
        ids: list[str],
        by_id: dict[str, Prosumer],
        creds: dict[str, str],
        *,
        transport: str,
        broker_url: str,
        platform: dict | None = None,
    ) -> None:
        m, plan = self.market, builder.plan
        run_dir = Path(builder.run_dir).resolve()
        prefs = draw_preferences(m, ids, plan.scenario.seed)
        agents = []
        for w in ids:
            b = by_id[w].battery
            agents.append(
                {
                    "pid": self.to_pid[w],
                    "source_id": w,
                    "preferences": prefs[w].model_dump(),
                    "battery": None if b is None else asdict(b.spec),
                    "password": creds.get(self.to_pid[w]),
                }
            )
        bridge = builder.start("MarketBridge", "simulators.market_bridge.sim:MarketBridgeSim").MarketBridge(
            agents=agents,
            fleet_ids=ids,
            broker_url=broker_url,
            transport=transport,
            platform=platform,
            interval_s=float(m.interval_s),
            tariff=m.tariff.model_dump(),
            run_id=re.sub(r"[^A-Za-z0-9_.:-]", "_", run_dir.name)[:60],
            timeout_s=m.timeout_s,
            mechanism=m.mechanism,
            clock_password=creds.get(p.CLOCK_ID),
        )
        # the agents measure the end of the previous step (time-shifted); their net-power targets act in the same
        # step, where each home's battery follows its trade with that step's load and PV
        fleet = builder.entity("fleet")
        inputs = ("load_kw", "pv_kw", "ev_kw", "soc", "p_kw")
        builder.connect(fleet, bridge, *inputs, time_shifted=True, initial_data={a: {} for a in inputs})
        builder.connect(bridge, fleet, "p_net_target_kw")
        builder.record(bridge, ["p_trade_kw", "price_per_kwh", "traded_kwh"])

    def kpis(self, builder: WorldBuilder) -> dict[str, Any]:
        m = self.market
        to_world = {pid: w for w, pid in self.to_pid.items()}
        ledger = Ledger(self.ledger_url, prefix=self.prefix)
        try:
            k = kpis_from_ledger(ledger, m.tariff)
            with open(Path(builder.run_dir) / "green_provenance.csv", "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["interval", "t_s", "seller", "seller_bus", "buyer", "buyer_bus", "e_kwh"])
                for row in ledger.stream("provenance"):  # row by row: a year's provenance need not fit in memory
                    r = provenance_record(row)
                    for side in ("seller", "buyer"):
                        r[side] = to_world.get(r[side], r[side])
                    writer.writerow(r.values())
        finally:
            ledger.close()
        bills = {to_world.get(pid, pid): b for pid, b in k.pop("bills").items()}
        flows = k.pop("green_flows_kwh")
        return {
            "mechanism": m.mechanism,
            "transport": m.transport,
            "broker": self.broker_name,
            **k,
            "prosumers_billed": len(bills),
            "prosumers_better_off": sum(1 for b in bills.values() if b["saving"] > 1e-9),
            "prosumers_worse_off": sum(1 for b in bills.values() if b["saving"] < -1e-9),
            "bills": bills,
            "green_flows_kwh": flows,
            "green_provenance_file": "green_provenance.csv",
        }

    def criteria(self, kpis: Mapping[str, Any]) -> list[Criterion]:
        return market_criteria(kpis.get("market", {}))

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            atexit.unregister(self.process.stop)
            self.process = None

"""The mosaik face of :class:`~simulators.market_bridge.bridge.MarketBridge` (thin: it only translates).

Model ``MarketBridge`` (one entity for the whole fleet). Params: ``agents`` (list of mappings with ``pid``
and optional ``preferences``, ``capacity_kwh``, ``p_batt_max_kw``, ``password``), ``broker_url``,
``interval_s``, ``import_price``, ``export_price``, optional ``clock_password``, ``run_id``, ``timeout_s``.

Inputs (each a mapping prosumer id -> value; mappings from several sources are merged):
``load_kw`` and ``pv_kw`` (>= 0, used as the persistence forecast), ``soc`` (0..1) and ``p_kw`` (metered
net power, generator convention). Outputs: ``p_trade_kw`` and ``p_batt_set_kw`` (mappings prosumer id ->
kW), ``price_per_kwh``, ``traded_kwh`` and ``market_status`` of the last cleared interval.

It steps every ``step_size`` mosaik steps to meter ``p_kw`` and runs the market whenever simulation time
reaches a multiple of ``interval_s``. Its outputs feed the prosumer simulator, whose outputs feed it: wire
the bridge -> prosumers direction time-shifted (``initial_data={"p_trade_kw": {}}``).
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3

from simulators.market_bridge.bridge import AgentSpec, MarketBridge
from testbed.errors import UserError
from testbed.platform.broker import parse_broker_url
from testbed.platform.policy import Preferences, State
from testbed.platform.service import Connection

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "MarketBridge": {
            "public": True,
            "params": [
                "agents",
                "broker_url",
                "interval_s",
                "import_price",
                "export_price",
                "clock_password",
                "run_id",
                "timeout_s",
            ],
            "attrs": [
                "load_kw",
                "pv_kw",
                "soc",
                "p_kw",
                "p_trade_kw",
                "p_batt_set_kw",
                "price_per_kwh",
                "traded_kwh",
                "market_status",
            ],
        },
    },
}


class MarketBridgeSim(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.eid = "market"
        self.bridge: MarketBridge | None = None
        self.time_resolution = 1.0
        self.step_size = 1
        self.last_t_s: float | None = None
        self.last_p_kw: dict[str, float] = {}
        self.out: dict[str, Any] = {
            "p_trade_kw": {},
            "p_batt_set_kw": {},
            "price_per_kwh": None,
            "traded_kwh": 0.0,
            "market_status": "none",
        }
        self.steps: list = []

    def init(self, sid: str, time_resolution: float = 1.0, step_size: int = 1, **sim_params: Any) -> dict:
        self.time_resolution = float(time_resolution)
        self.step_size = int(step_size)
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict]:
        if num != 1 or self.bridge is not None:
            raise UserError("market bridge: create exactly one MarketBridge entity per simulator")
        interval_s = float(params["interval_s"])
        if interval_s % self.time_resolution:
            raise UserError(
                "market bridge: interval_s is not a multiple of the time resolution",
                [f"interval_s {interval_s} vs time_resolution {self.time_resolution}"],
            )
        self.interval_s = interval_s
        specs = [
            AgentSpec(
                pid=a["pid"],
                preferences=Preferences(**a.get("preferences", {})),
                capacity_kwh=float(a.get("capacity_kwh", 0.0)),
                p_batt_max_kw=float(a.get("p_batt_max_kw", 0.0)),
                password=a.get("password"),
            )
            for a in params["agents"]
        ]
        self.bridge = MarketBridge(
            specs,
            Connection(parse_broker_url(params["broker_url"])),
            interval_s=interval_s,
            import_price=float(params["import_price"]),
            export_price=float(params["export_price"]),
            clock_password=params.get("clock_password"),
            run_id=params.get("run_id", "run"),
            timeout_s=float(params.get("timeout_s", 60.0)),
        ).start()
        return [{"eid": self.eid, "type": model}]

    @staticmethod
    def _merged(values: dict[str, Any] | None) -> dict[str, float]:
        out: dict[str, float] = {}
        for v in (values or {}).values():
            out.update({str(k): float(x) for k, x in v.items()})
        return out

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        if self.bridge is None:
            raise RuntimeError("market bridge stepped before create()")
        data = inputs.get(self.eid, {})
        t_s = time * self.time_resolution
        if self.last_t_s is not None and self.last_p_kw:
            self.bridge.meter(self.last_p_kw, t_s - self.last_t_s)
        self.last_t_s = t_s
        self.last_p_kw = self._merged(data.get("p_kw"))
        if t_s % self.interval_s == 0:
            load, pv, soc = (self._merged(data.get(a)) for a in ("load_kw", "pv_kw", "soc"))
            states = {}
            for pid, spec in self.bridge.specs.items():
                if pid in load or pid in pv:
                    states[pid] = State(
                        load_kw=max(0.0, load.get(pid, 0.0)),
                        pv_kw=max(0.0, pv.get(pid, 0.0)),
                        soc=soc.get(pid, 0.0),
                        capacity_kwh=spec.capacity_kwh,
                        p_batt_max_kw=spec.p_batt_max_kw,
                    )
            res = self.bridge.market_step(int(t_s // self.interval_s), states)
            self.steps.append(res)
            self.out = {
                "p_trade_kw": res.p_trade_kw,
                "p_batt_set_kw": res.p_batt_set_kw,
                "price_per_kwh": res.price_per_kwh,
                "traded_kwh": res.traded_kwh,
                "market_status": res.status,
            }
        return time + self.step_size

    def get_data(self, outputs: dict) -> dict:
        return {eid: {attr: self.out[attr] for attr in attrs} for eid, attrs in outputs.items()}

    def finalize(self) -> None:
        if self.bridge is not None:
            if self.last_t_s is not None and self.last_p_kw:
                self.bridge.meter(self.last_p_kw, self.time_resolution * self.step_size)
            if self.steps:
                self.bridge.finish(self.steps[-1].interval)
            self.bridge.stop()

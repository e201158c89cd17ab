"""The mosaik face of :class:`~simulators.market_bridge.bridge.MarketBridge` (thin: it only translates).

Model ``MarketBridge`` (one entity for the whole fleet). Params:

- ``agents``: list of mappings with ``pid`` (the prosumer's id on the platform), optional ``source_id`` (its
  id in the world, default ``pid``), ``preferences`` (the fields of :class:`~testbed.domain.prosumer.Preferences`),
  ``battery`` (the fields of :class:`~testbed.domain.der.battery.BatterySpec`, or None), ``password``;
- ``fleet_ids``: world ids in the order of array-valued inputs (the prosumer fleet sends arrays);
- ``broker_url``, ``interval_s``, ``tariff`` (``import_price_per_kwh``, ``export_price_per_kwh``), optional
  ``clock_password``, ``run_id``, ``timeout_s``, ``mechanism`` (the platform's; mechanisms that clear
  offers get flexibility offers);
- ``transport``: ``mqtt`` (default: the platform is a process behind the broker at ``broker_url``) or
  ``inproc`` (the platform core and ledger in this process, the same encoded messages without a broker; then
  ``platform`` gives ``ledger_url``, ``ledger_prefix``, ``prosumers`` as ``[id, bus, energy_class]`` rows
  and ``islanded``; ``broker_url`` is not used).

Inputs (arrays in ``fleet_ids`` order, or mappings world id -> value): ``load_kw``, ``pv_kw``, ``ev_kw``
(>= 0; the last measured values are the persistence forecast for the interval), ``soc`` (0..1) and ``p_kw``
(metered net power, generator convention). Outputs: ``p_trade_kw`` (world id -> kW, every prosumer, 0
without a trade), ``p_net_target_kw`` (world id -> kW for prosumers with a battery and a trade this
interval: the traded power, which the fleet's battery then follows with the current step's load and PV),
``price_per_kwh`` (NaN when no price), ``traded_kwh`` and ``market_status`` of the
current interval.

Wiring: fleet -> bridge time-shifted (``initial_data`` of empty mappings), bridge -> fleet direct. At step t
the bridge sees the fleet's state at the end of step t-1 (the agents' measurement and persistence
forecast; at step 0 there is none, so interval 0 has no orders), runs the market when t is a multiple of
``interval_s``, and its net-power targets apply in step t itself. It meters ``p_kw`` over the step it
describes; the last interval of a run gets no telemetry (its last step is never seen).
"""

from __future__ import annotations

import math
from typing import Any

import mosaik_api_v3

from simulators.market_bridge.bridge import AgentSpec, MarketBridge
from testbed.domain.der.battery import BatterySpec
from testbed.domain.der.ems import State
from testbed.domain.errors import Fault, UserError
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM
from testbed.domain.prosumer import Preferences, Tariff
from testbed.platform.client import Connection
from testbed.platform.inproc import InprocPlatform

OUTPUTS = ("p_trade_kw", "p_net_target_kw", "price_per_kwh", "traded_kwh", "market_status")
INPUTS = ("load_kw", "pv_kw", "ev_kw", "soc", "p_kw")
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "MarketBridge": {
            "public": True,
            "params": [
                "agents",
                "fleet_ids",
                "broker_url",
                "interval_s",
                "tariff",
                "clock_password",
                "run_id",
                "mechanism",
                "timeout_s",
                "transport",
                "platform",
            ],
            "attrs": [*INPUTS, *OUTPUTS],
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
        self.to_pid: dict[str, str] = {}
        self.fleet_ids: list[str] = []
        self._array_pids: list[str | None] = []
        self._array_at: list[int] = []
        self.p_trade: dict[str, float] = {}
        self.out: dict[str, Any] = {}
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
        agents = params["agents"]
        self.to_pid = {a.get("source_id", a["pid"]): a["pid"] for a in agents}
        self.to_world = {pid: wid for wid, pid in self.to_pid.items()}
        self.fleet_ids = list(params.get("fleet_ids") or self.to_pid)
        # each array position's platform id (None: not an agent), and the positions that are agents
        self._array_pids = [self.to_pid.get(str(w)) for w in self.fleet_ids]
        self._array_at = [i for i, pid in enumerate(self._array_pids) if pid is not None]
        specs = [
            AgentSpec(
                pid=a["pid"],
                preferences=Preferences(**a.get("preferences", {})),
                battery=BatterySpec(**a["battery"]) if a.get("battery") else None,
                password=a.get("password"),
            )
            for a in agents
        ]
        tariff = Tariff(**params["tariff"])
        mechanism = params.get("mechanism", DEFAULT_MECHANISM)
        transport = params.get("transport", "mqtt")
        if transport == "inproc":
            plat = params["platform"]
            connection: Connection | InprocPlatform = InprocPlatform(
                ledger_url=plat["ledger_url"],
                prosumers=[tuple(r) for r in plat["prosumers"]],
                ledger_prefix=plat.get("ledger_prefix", "fpp_"),
                mechanism=mechanism,
                interval_s=interval_s,
                tariff=None if plat.get("islanded") else tariff,
            )
        elif transport == "mqtt":
            connection = Connection.from_url(params["broker_url"])
        else:
            raise UserError(f"market bridge: transport must be 'mqtt' or 'inproc', not {transport!r}")
        self.bridge = MarketBridge(
            specs,
            connection,
            interval_s=interval_s,
            tariff=tariff,
            clock_password=params.get("clock_password"),
            run_id=params.get("run_id", "run"),
            mechanism=mechanism,
            timeout_s=float(params.get("timeout_s", 60.0)),
        ).start()
        self.p_trade = {pid: 0.0 for pid in self.to_world}
        self.out = {
            "p_trade_kw": {w: 0.0 for w in self.to_pid},
            "p_net_target_kw": {},
            "price_per_kwh": math.nan,
            "traded_kwh": 0.0,
            "market_status": "none",
        }
        return [{"eid": self.eid, "type": model}]

    def _by_pid(self, values: dict[str, Any] | None) -> dict[str, float]:
        """Inputs from all sources as {platform id: value}; arrays are in ``fleet_ids`` order."""
        out: dict[str, float] = {}
        for v in (values or {}).values():
            if isinstance(v, dict):
                for wid, x in v.items():
                    pid = self.to_pid.get(str(wid))
                    if pid is not None:
                        out[pid] = float(x)
                continue
            if len(v) != len(self.fleet_ids):
                raise ValueError(f"market bridge: an array of {len(v)} values for {len(self.fleet_ids)} fleet ids")
            pids, xs = self._array_pids, v.tolist() if hasattr(v, "tolist") else list(v)
            for i in self._array_at:
                out[pids[i]] = float(xs[i])
        return out

    def _states(self, data: dict) -> dict[str, State]:
        load, pv, ev, soc = (self._by_pid(data.get(a)) for a in ("load_kw", "pv_kw", "ev_kw", "soc"))
        states = {}
        for pid, spec in self.bridge.specs.items():  # type: ignore[union-attr]
            if pid in load or pid in pv:
                states[pid] = State(
                    load_kw=max(0.0, load.get(pid, 0.0) + ev.get(pid, 0.0)),
                    pv_kw=max(0.0, pv.get(pid, 0.0)),
                    soc=soc.get(pid, 0.0),
                    battery=spec.battery,
                )
        return states

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        if self.bridge is None:
            raise RuntimeError("market bridge stepped before create()")
        data = inputs.get(self.eid, {})
        t_s = time * self.time_resolution
        # the inputs are the fleet's outputs of the previous step (time-shifted): meter them over that step
        # first, so that the telemetry of the interval that just ended has all of its steps
        self.bridge.meter(self._by_pid(data.get("p_kw")), self.step_size * self.time_resolution)
        states = self._states(data)
        if t_s % self.interval_s == 0:
            k = int(t_s // self.interval_s)
            try:
                res = self.bridge.market_step(k, states)
            except TimeoutError:
                raise Fault(
                    f"market bridge: the platform did not answer within {self.bridge.timeout_s:g} s in interval {k} "
                    "(is the platform process still running? see its log in the run folder)"
                ) from None
            self.steps.append(res)
            self.p_trade = res.p_trade_kw
            self.out.update(
                {
                    "p_trade_kw": {self.to_world[pid]: p for pid, p in res.p_trade_kw.items()},
                    "price_per_kwh": math.nan if res.price_per_kwh is None else res.price_per_kwh,
                    "traded_kwh": res.traded_kwh,
                    "market_status": res.status,
                }
            )
        # Only homes with a battery and a trade get a target: their battery follows the trade with the current
        # step's load and PV (the agent only knows the previous step's). The others keep their own controller.
        self.out["p_net_target_kw"] = {
            self.to_world[pid]: p
            for pid, p in self.p_trade.items()
            if p != 0.0 and self.bridge.specs[pid].battery is not None
        }
        return time + self.step_size

    def get_data(self, outputs: dict) -> dict:
        return {eid: {attr: self.out[attr] for attr in attrs} for eid, attrs in outputs.items()}

    def finalize(self) -> None:
        # The last interval is not metered: its last step's output never reaches the bridge (no next step).
        if self.bridge is not None:
            self.bridge.stop()

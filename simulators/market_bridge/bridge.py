"""The market bridge without mosaik: prosumer agents and the clock, driven step by step in simulation time.

:class:`MarketBridge` runs its own asyncio loop in a background thread. For each market interval k (at
simulation time ``k * interval_s``) :meth:`MarketBridge.market_step`:

1. sends each prosumer's telemetry for interval k-1 (the metered energy the bridge integrated from the
   prosumer simulator's net power),
2. lets each agent bid for interval k from its state (persistence forecast: the load and PV seen now,
   and the battery's SoC) and preferences, and waits for every acknowledgement,
3. publishes the gate closure of interval k as the clock account (time ``t_s`` in simulation seconds),
4. waits for the platform's result and for each agent's own dispatch message, and returns each prosumer's
   traded net power setpoint.

Everything is awaited before ``market_step`` returns, so a simulated run is deterministic and runs as fast
as the platform answers. The platform's clearing is independent of arrival order (see
``testbed.platform.clearing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from testbed.domain.der.battery import BatterySpec
from testbed.domain.der.ems import State, battery_setpoint_kw, bid, offer_from_order
from testbed.domain.errors import Fault
from testbed.domain.market.case import Order
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM, get_mechanism
from testbed.domain.prosumer import Preferences, Tariff
from testbed.platform import codec
from testbed.platform import protocol as p
from testbed.platform.client import Connection, ProsumerClient, Rejected
from testbed.platform.inproc import InprocHub, InprocPlatform, InprocProsumerClient
from testbed.platform.mqtt_session import subscribe

log = logging.getLogger(__name__)
FORGET_EVERY = 32
"""Intervals between two calls of the clients' ``forget_before`` (each keeps at most this many intervals)."""


@dataclass
class AgentSpec:
    """One prosumer's EMS: its id, its owner's preferences, its battery and its credentials."""

    pid: str
    preferences: Preferences = field(default_factory=Preferences)
    battery: BatterySpec | None = None
    password: str | None = None


@dataclass
class StepResult:
    interval: int
    status: str
    price_per_kwh: float | None
    p_trade_kw: dict[str, float]
    p_batt_set_kw: dict[str, float]
    """battery setpoints at the start of the interval, for the states given (> 0 discharges)"""
    traded_kwh: float
    n_orders: int


class MarketBridge:
    def __init__(
        self,
        agents: list[AgentSpec],
        connection: Connection | InprocPlatform,
        *,
        interval_s: float,
        tariff: Tariff,
        clock_password: str | None = None,
        timeout_s: float = 60.0,
        run_id: str = "run",
        mechanism: str = DEFAULT_MECHANISM,
    ) -> None:
        self.specs = {a.pid: a for a in agents}
        self.connection = connection
        self.interval_s = interval_s
        self.interval_h = interval_s / 3600.0
        self.tariff = tariff
        self.clock_password = clock_password
        self.timeout_s = timeout_s
        self.run_id = run_id
        self.send_offers = get_mechanism(mechanism).clears == "offers"
        """pool, P2P and ADMM clear flexibility offers: the agents send offers instead of orders"""
        self.e_export_kwh = {pid: 0.0 for pid in self.specs}
        self.e_import_kwh = {pid: 0.0 for pid in self.specs}
        self.refused: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="market-bridge", daemon=True)
        self._clients: dict[str, ProsumerClient] = {}
        self._clock: aiomqtt.Client | None = None
        self._clock_task: asyncio.Task | None = None
        self._results: dict[str, asyncio.Future] = {}
        self._hub: InprocHub | None = None
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s * 4)

    def start(self) -> MarketBridge:
        self._thread.start()
        self._run(self._start())
        self._started = True
        return self

    async def _start(self) -> None:
        if isinstance(self.connection, InprocPlatform):
            await self._start_inproc(self.connection)
            return
        for pid, spec in self.specs.items():
            conn = Connection(
                self.connection.address,
                username=pid if spec.password else None,
                password=spec.password,
                tls_context=self.connection.tls_context,
                mqtt_version=self.connection.mqtt_version,
            )
            # a retry is harmless (idempotent) but wasted work under load: wait a sixth of the timeout
            client = ProsumerClient(
                pid,
                conn,
                retry_s=max(2.0, self.timeout_s / 6),
                give_up_s=self.timeout_s,
                client_id=f"{self.run_id}-{pid}",
            )
            await client.__aenter__()
            self._clients[pid] = client
        ready = asyncio.Event()
        self._clock_task = asyncio.create_task(self._clock_loop(ready))
        await asyncio.wait_for(ready.wait(), self.timeout_s)

    async def _start_inproc(self, platform: InprocPlatform) -> None:
        """The ``inproc`` transport: the platform core in this thread; the same messages, no broker."""
        self._hub = hub = platform.open()
        for pid in self.specs:
            client = InprocProsumerClient(pid, hub, retry_s=max(2.0, self.timeout_s / 6), give_up_s=self.timeout_s)
            self._clients[pid] = await client.__aenter__()
        hub.subscribe(p.RESULT_TOPIC, self._on_clock_message)
        hub.subscribe(p.CLOCK_ERROR_TOPIC, self._on_clock_message)

    def _on_clock_message(self, topic: str, payload: bytes) -> None:
        kind = "result" if topic == p.RESULT_TOPIC else "error"
        try:
            msg = codec.decode_reply(kind, payload)
        except p.ProtocolError as exc:  # forged or broken: not the platform's answer
            log.warning("market clock dropped a %s that is not valid: %s", kind, exc)
            return
        data = codec.as_dict(msg)
        key = data.get("gate_msg_id") or data.get("msg_id") or ""
        fut = self._results.get(key)
        if fut is not None and not fut.done():
            fut.set_result(data)

    async def _publish_gate(self, payload: bytes) -> bool:
        """Publish a gate closure as the clock account; False if the broker was lost (the caller retries)."""
        if self._hub is not None:
            self._hub.publish(p.GATE_TOPIC, payload)
            return True
        while self._clock is None:
            await asyncio.sleep(0.05)
        try:
            await self._clock.publish(p.GATE_TOPIC, payload, qos=1, timeout=5.0)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)
            return False
        return True

    async def _clock_loop(self, ready: asyncio.Event) -> None:
        user = p.CLOCK_ID if self.clock_password else None
        conn = Connection(
            self.connection.address,
            username=user,
            password=self.clock_password,
            tls_context=self.connection.tls_context,
            mqtt_version=self.connection.mqtt_version,
        )
        while True:
            try:
                async with conn.client(f"fpp-clock-{self.run_id}") as client:
                    await subscribe(client, [p.RESULT_TOPIC, p.CLOCK_ERROR_TOPIC])  # one SUBSCRIBE packet
                    self._clock = client
                    ready.set()
                    async for m in client.messages:
                        self._on_clock_message(str(m.topic), bytes(m.payload or b""))
            except aiomqtt.MqttError as exc:
                self._clock = None
                log.warning("market clock lost the broker (%s); reconnecting", exc)
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        if not self._started:
            return
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._started = False

    async def _stop(self) -> None:
        for client in self._clients.values():
            await client.__aexit__(None, None, None)
        if self._clock_task is not None:
            self._clock_task.cancel()
            try:
                await self._clock_task
            except asyncio.CancelledError:
                pass
        if self._hub is not None:
            self._hub.close()
            self._hub = None

    def __enter__(self) -> MarketBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- stepping --------------------------------------------------------------------------------

    def meter(self, p_kw: dict[str, float], dt_s: float) -> None:
        """Integrate each prosumer's measured net power (generator convention) over ``dt_s`` seconds."""
        for pid, value in p_kw.items():
            if pid in self.e_export_kwh:
                e = value * dt_s / 3600.0
                if e >= 0:
                    self.e_export_kwh[pid] += e
                else:
                    self.e_import_kwh[pid] -= e

    def market_step(self, k: int, states: dict[str, State]) -> StepResult:
        """Run interval ``k``'s market: telemetry for k-1, bids, gate closure, result and dispatch."""
        return self._run(self._market_step(k, states))

    async def _market_step(self, k: int, states: dict[str, State]) -> StepResult:
        # telemetry of k-1 and orders for k are independent: send them together
        telemetry = [self._telemetry_msg(pid, k - 1) for pid in self.specs] if k > 0 else []
        for pid in self.specs:
            self.e_export_kwh[pid] = self.e_import_kwh[pid] = 0.0
        orders = []
        for pid, spec in self.specs.items():
            state = states.get(pid)
            if state is None:
                continue
            o = bid(
                state, spec.preferences, self.tariff, self.interval_h, agent=pid, order_id=f"{self.run_id}-{k}-{pid}"
            )
            if o is None:
                continue
            orders.append(self._offer_msg(o, k) if self.send_offers else self._order_msg(o, k))
        async with asyncio.timeout(self.timeout_s):  # one bound for all (each MQTT client also gives up itself)
            results = await asyncio.gather(*self._submissions([*orders, *telemetry]), return_exceptions=True)
        for o, r in zip(orders, results, strict=False):
            if isinstance(r, Rejected):
                self.refused.append(f"{o.prosumer} interval {k}: {r}")
                log.warning("order of %s for interval %d refused: %s", o.prosumer, k, r)
            elif isinstance(r, BaseException):
                raise r
        for t, r in zip(telemetry, results[len(orders) :], strict=True):
            if isinstance(r, Rejected):
                self._telemetry_refused(t, r)
            elif isinstance(r, BaseException):
                raise r
        gate_id = f"{self.run_id}-gate-{k}"
        result = await self._gate(k, gate_id)
        bidders = sorted({o.prosumer for o in orders})
        # the dispatch messages are usually here with the result: wait only for those that are not
        late = [pid for pid in bidders if k not in self._clients[pid].dispatch]
        if late:
            await asyncio.gather(*(self._clients[pid].wait_dispatch(k, self.timeout_s) for pid in late))
        dispatch = {pid: self._clients[pid].dispatch[k] for pid in bidders}
        dispatch = {pid: dispatch.get(pid, 0.0) for pid in sorted(self.specs)}
        batt = {
            pid: battery_setpoint_kw(states[pid], dispatch[pid], self.interval_h)
            for pid in sorted(self.specs)
            if pid in states
        }
        traded = sum(t["e_kwh"] for t in result.get("trades", []))
        if k % FORGET_EVERY == 0:  # nothing before this interval is read again: bounded memory, cheap per interval
            for client in self._clients.values():
                client.forget_before(k)
        return StepResult(
            k,
            result.get("status", ""),
            result.get("price_per_kwh"),
            dispatch,
            batt,
            traded,
            result.get("n_orders", 0),
        )

    def finish(self, last_k: int) -> None:
        """Send the telemetry of the last interval (metered up to the last step) at the end of a run."""

        msgs = [self._telemetry_msg(pid, last_k) for pid in self.specs]

        async def send_all() -> None:
            async with asyncio.timeout(self.timeout_s):
                results = await asyncio.gather(*self._submissions(msgs), return_exceptions=True)
            for m, r in zip(msgs, results, strict=True):
                if isinstance(r, Rejected):
                    self._telemetry_refused(m, r)
                elif isinstance(r, BaseException):
                    raise r

        self._run(send_all())

    @staticmethod
    def _order_msg(o: Order, k: int) -> codec.OrderS:
        return codec.prosumer_message(
            "order",
            {
                "schema": "fpp.order/1",
                "msg_id": o.id,
                "prosumer": o.agent,
                "interval": k,
                "side": o.side,
                "quantity_kw": o.quantity_kw,
                "price_per_kwh": o.price_per_kwh,
                "energy_class": o.energy_class,
            },
        )

    @staticmethod
    def _offer_msg(o: Order, k: int) -> codec.FlexOfferS:
        lo, hi, a, c = offer_from_order(o)
        return codec.prosumer_message(
            "offer",
            {
                "schema": "fpp.offer/1",
                "msg_id": o.id,
                "prosumer": o.agent,
                "interval": k,
                "p_min_kw": lo,
                "p_max_kw": hi,
                "cost_a": a,
                "cost_b": c,
                "energy_class": o.energy_class,
            },
        )

    def _telemetry_msg(self, pid: str, k: int) -> codec.TelemetryS:
        return codec.prosumer_message(
            "telemetry",
            {
                "schema": "fpp.telemetry/1",
                "msg_id": f"{self.run_id}-{k}-{pid}-tel",
                "prosumer": pid,
                "interval": k,
                "e_export_kwh": round(self.e_export_kwh[pid], 9),
                "e_import_kwh": round(self.e_import_kwh[pid], 9),
            },
        )

    def _submissions(self, msgs: list[Any]) -> list[Any]:
        """What to gather to submit ``msgs``: in process, each message's acknowledgement future (sent at
        once, no task per message); over MQTT, each client's retrying :meth:`ProsumerClient.submit`."""
        if self._hub is not None:
            return [self._clients[m.prosumer].send(m) for m in msgs]  # type: ignore[attr-defined]
        return [self._clients[m.prosumer].submit(m) for m in msgs]

    def _telemetry_refused(self, msg: codec.TelemetryS, exc: Rejected) -> None:
        self.refused.append(f"{msg.prosumer} telemetry {msg.interval}: {exc}")
        log.warning("telemetry of %s for interval %d refused: %s", msg.prosumer, msg.interval, exc)

    async def _gate(self, k: int, gate_id: str) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self._results[gate_id] = fut
        payload = json.dumps(
            {"schema": "fpp.gate/1", "msg_id": gate_id, "interval": k, "t_s": k * self.interval_s}
        ).encode()
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:  # resend until answered: the platform treats a retried gate idempotently
                    if not await self._publish_gate(payload):
                        continue
                    try:
                        data = await asyncio.wait_for(asyncio.shield(fut), 5.0)
                        break
                    except TimeoutError:
                        log.info("no result for gate %s yet, sending it again", gate_id)
        finally:
            self._results.pop(gate_id, None)
        if "code" in data:
            raise Fault(
                f"platform refused gate closure of interval {k}: {data['code']}: {data['detail']}"
            )
        return data

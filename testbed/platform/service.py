"""The platform as an asyncio MQTT service (``fpp platform``).

It connects to a broker (or starts the embedded one), subscribes to the inbound topics, passes each
message to :class:`~testbed.platform.core.PlatformCore` in arrival order, and publishes what the core
returns at QoS 1. On a lost connection it reconnects with back-off and subscribes again; its session is
persistent (fixed client id, clean session off), so a broker that keeps sessions queues orders for it
while it is away. Nothing is acknowledged before the ledger has it, so a crash loses no acknowledged order.
The session's client id is random, made once per ledger and kept in it (:func:`platform_client_id`), so a
restart resumes the session and nobody who knows only the ledger URL can take the id over.

Clock: ``sim`` (default) clears an interval when the clock account publishes its gate closure (the mosaik
bridge does, in simulation time); ``wall`` closes the gate of interval k itself at wall time
``k * interval_s - gate_lead_s`` (Unix seconds).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time

import aiomqtt

from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from testbed.platform.client import Connection
from testbed.platform.core import Out, PlatformCore
from testbed.platform.ledger import Ledger
from testbed.platform.mqtt_session import subscribe

log = logging.getLogger(__name__)
MAX_BATCH = 1000
"""At most this many inbound messages share one ledger transaction."""
MAX_PUBLISHING = 20
"""Publishes awaiting their PUBACK at once (paho's own in-flight window is 20); the others wait their turn.
aiomqtt walks every pending call on each publish, so without this bound a gate closure's or a busy second's
thousands of replies cost time quadratic in their number (measured in BENCHMARKS.md, Platform)."""


def platform_client_id(ledger: Ledger) -> str:
    """The platform's MQTT client id for this ledger: 128 random bits made on first use and kept in the
    ledger (a restarted platform resumes its session; two ledgers never share one)."""
    return "fpp-platform-" + ledger.setting("mqtt_client_id", secrets.token_hex(16))


class PlatformService:
    def __init__(
        self,
        core: PlatformCore,
        connection: Connection,
        *,
        clock: str = "sim",
        gate_lead_s: float = 60.0,
        client_id: str | None = None,
    ) -> None:
        if clock not in ("sim", "wall"):
            raise ValueError(f"clock must be 'sim' or 'wall', not {clock!r}")
        self.core = core
        self.connection = connection
        self.clock = clock
        self.gate_lead_s = gate_lead_s
        self.client_id = client_id or platform_client_id(core.ledger)
        self.connected = asyncio.Event()
        self.connections = 0
        self.batches = 0
        """inbound batches handled, each in one ledger transaction (group commit)"""
        self.messages = 0
        self._client: aiomqtt.Client | None = None
        self._pending: set[asyncio.Task] = set()

    announces = True
    """Publish the open interval (retained) on every connection; a platform worker other than the first does not."""

    def subscriptions(self) -> list[str]:
        """The inbound topic filters, one per kind: a wildcard such as ``fpp/v1/p/+/+`` would also bring every
        reply the platform publishes (No Local drops only its own, not those of other platforms or workers)."""
        return [*p.inbound_subscriptions(), *sp.SUBSCRIPTIONS]

    async def run(self) -> None:
        """Serve until cancelled, reconnecting after a lost broker."""
        backlog = self.core.recover()
        tasks = [asyncio.create_task(self._wall_clock(), name="wall-clock")] if self.clock == "wall" else []
        delay = 0.1
        try:
            while True:
                try:
                    async with self.connection.client(
                        self.client_id, clean_session=False, max_concurrent_outgoing_calls=MAX_PUBLISHING
                    ) as client:
                        self._client = client
                        await subscribe(client, self.subscriptions())
                        self.connections += 1
                        log.info(
                            "platform connected to %s (connection %d)",
                            self.connection.address.url,
                            self.connections,
                        )
                        await self._publish_all(([self.core.open_message()] if self.announces else []) + backlog)
                        backlog = []
                        self.connected.set()
                        delay = 0.1
                        async for message in client.messages:
                            # group commit: whatever has arrived by now is handled in one ledger transaction
                            batch = [(str(message.topic), bytes(message.payload or b""))]
                            while len(client.messages) and len(batch) < MAX_BATCH:
                                m = await anext(client.messages)
                                batch.append((str(m.topic), bytes(m.payload or b"")))
                            self.batches += 1
                            self.messages += len(batch)
                            self._spawn(self._dispatch(batch))
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    self._client = None
                    log.warning("platform lost the broker (%s); reconnecting in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            for t in tasks:
                t.cancel()

    def _dispatch(self, batch: list[tuple[str, bytes]]) -> list[Out]:
        """Handle a batch of inbound messages in one ledger commit; the replies to publish after it."""
        if self.clock == "wall":  # this platform closes gates itself: refuse the clock's
            refused = sum(1 for topic, _ in batch if topic == p.GATE_TOPIC)
            batch = [m for m in batch if m[0] != p.GATE_TOPIC]
        else:
            refused = 0
        try:
            outs = self.core.handle_batch(batch) if batch else []
        except Exception:  # the core answers every message itself; this is the last line of defence
            log.exception("handling a batch of %d messages failed; serving on", len(batch))
            outs = []
        error = p.ErrorMsg(msg_id=None, code="wall_clock", detail="this platform closes gates on the wall clock")
        return outs + [Out(p.CLOCK_ERROR_TOPIC, p.encode(error)) for _ in range(refused)]

    def _spawn(self, outs: list[Out]) -> None:
        """Publish without holding up the next inbound message (the ledger already has it)."""
        if outs:
            task = asyncio.create_task(self._publish_all(outs))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _publish_all(self, outs: list[Out]) -> None:
        client = self._client
        if client is None or not outs:
            return
        try:
            await asyncio.gather(
                *(client.publish(o.topic, o.payload, qos=1, retain=o.retain, timeout=5.0) for o in outs)
            )
        except aiomqtt.MqttError as exc:  # the sender retries; its message is in the ledger
            log.warning("could not publish %d replies: %s", len(outs), exc)

    async def _wall_clock(self) -> None:
        interval_s = self.core.config.interval_s
        while True:
            now = time.time()
            k = math.floor((now + self.gate_lead_s) / interval_s) + 1
            last = self.core.last_closed
            if last is not None and k <= last:
                k = last + 1
            await asyncio.sleep(max(0.0, k * interval_s - self.gate_lead_s - now))
            await self.connected.wait()
            try:
                outs = self.core.close_gate(k, time.time())
            except Exception:  # a bug must not stop the clock: log it and close the next gate
                log.exception("closing the gate of interval %d failed", k)
                outs = []
            await self._publish_all(outs)

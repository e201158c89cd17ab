"""The ``inproc`` transport: the platform core and its ledger inside the caller's process, no sockets, no broker.

The messages are the same bytes as over MQTT: a client encodes what it sends, :class:`InprocHub` hands the
encoded messages to :meth:`PlatformCore.handle_batch <testbed.platform.core.PlatformCore.handle_batch>` (the
same core, protocol and ledger as ``fpp platform``) and delivers each encoded reply to whoever subscribed to
its topic, where the client decodes it as it would a message from the broker. What is published within one
turn of the event loop is handled as one batch, in one ledger transaction, before any reply is delivered
(group commit, as the MQTT service does with what has arrived together).

Subscriptions are exact topics (the replies of the platform go to one topic each); a retained reply
(``market/open``, ``market/result``) is kept and given to a later subscriber, as a broker would.
Use a hub from one thread, the one running its event loop (the ledger is not thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.domain.prosumer import Tariff
from testbed.platform import codec
from testbed.platform import protocol as p
from testbed.platform.client import SUBMIT_KINDS, Message, ProsumerClient
from testbed.platform.core import Out, PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger

log = logging.getLogger(__name__)
Handler = Callable[[str, bytes], None]


class InprocHub:
    """Routes encoded messages between clients and a :class:`PlatformCore` in the same event loop."""

    def __init__(self, core: PlatformCore) -> None:
        self.core = core
        self.messages_in = 0
        self.messages_out = 0
        self.batches = 0
        self._subs: dict[str, list[Handler]] = {}
        self._retained: dict[str, bytes] = {}
        self._inbox: list[tuple[str, bytes]] = []
        self._scheduled = False
        self._deliver([*core.recover(), core.open_message()])

    def close(self) -> None:
        """Close the core's ledger (what was answered is committed)."""
        self.core.ledger.close()

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._subs.setdefault(topic, []).append(handler)
        if topic in self._retained:
            handler(topic, self._retained[topic])

    def unsubscribe(self, topic: str, handler: Handler) -> None:
        handlers = self._subs.get(topic, [])
        if handler in handlers:
            handlers.remove(handler)

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue an inbound message; the queue is handled as one batch at the next turn of the loop."""
        self._inbox.append((topic, payload))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        batch, self._inbox, self._scheduled = self._inbox, [], False
        self.messages_in += len(batch)
        self.batches += 1
        failed = self.core.stats["failed_batches"]
        outs = self.core.handle_batch(batch)  # returns only after the batch is committed
        if self.core.stats["failed_batches"] > failed:  # nothing of it is kept or answered: send it again
            log.warning("in-process batch of %d messages not committed; sending it again in %.1f s", len(batch), 0.5)
            asyncio.get_running_loop().call_later(0.5, self._requeue, batch)
        self._deliver(outs)

    def _requeue(self, batch: list[tuple[str, bytes]]) -> None:
        for topic, payload in batch:
            self.publish(topic, payload)

    def _deliver(self, outs: list[Out]) -> None:
        for o in outs:
            self.messages_out += 1
            if o.retain:
                self._retained[o.topic] = o.payload
            for handler in list(self._subs.get(o.topic, ())):
                try:
                    handler(o.topic, o.payload)
                except Exception:  # one client's bug must not stop the others' replies
                    log.exception("in-process subscriber of %s failed", o.topic)


@dataclass(frozen=True)
class InprocPlatform:
    """How to open the platform in process: the same settings ``fpp platform`` takes.

    ``prosumers``: ``(id, bus, energy_class)`` registry rows, written to the ledger on :meth:`open`.
    ``power_safe``: see :class:`~testbed.platform.ledger.Ledger`; off by default here, because an in-process
    platform serves a simulated run (a killed run keeps every commit; a power cut may cost the ledger file).
    """

    ledger_url: str
    prosumers: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    ledger_prefix: str = "fpp_"
    mechanism: str = "double-auction"
    interval_s: float = 900.0
    tariff: Tariff | None = None
    power_safe: bool = False

    def open(self) -> InprocHub:
        """Open the ledger and the core (in the thread that will use them) and return their hub."""
        ledger = Ledger(self.ledger_url, prefix=self.ledger_prefix, power_safe=self.power_safe)
        try:
            if self.prosumers:
                ledger.upsert_prosumers(self.prosumers)
            core = PlatformCore(
                ledger, PlatformConfig(interval_s=self.interval_s, mechanism=self.mechanism, tariff=self.tariff)
            )
            return InprocHub(core)
        except BaseException:
            ledger.close()
            raise


class InprocProsumerClient(ProsumerClient):
    """A :class:`ProsumerClient` whose messages go through an :class:`InprocHub` instead of a broker: it
    encodes what it submits and decodes every reply exactly as over MQTT."""

    def __init__(self, pid: str, hub: InprocHub, **kw: object) -> None:
        super().__init__(pid, None, **kw)  # type: ignore[arg-type]
        self.hub = hub
        self._topics = [p.prosumer_topic(pid, k) for k in p.OUTBOUND_KINDS]
        if self.subscribe_results:
            self._topics.append(p.RESULT_TOPIC)

    async def __aenter__(self) -> InprocProsumerClient:
        for t in self._topics:
            self.hub.subscribe(t, self._on_message)
        self.connections += 1
        self.connected.set()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in self._topics:
            self.hub.unsubscribe(t, self._on_message)
        self.connected.clear()

    async def _send(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.hub.publish(topic, payload)

    async def submit(self, msg: Message) -> codec.AckS:
        """Publish ``msg`` and wait for its acknowledgement; raise :class:`Rejected` if it is refused.

        No timer per message: the hub answers every message of a committed batch at the next turn of the loop
        and sends a batch whose commit failed again itself. The caller bounds the wait (the bridge waits
        ``timeout_s`` for all of an interval's messages together).
        """
        return await self.send(msg)

    def send(self, msg: Message) -> asyncio.Future:
        """Publish ``msg`` now and return the future of its acknowledgement (:class:`Rejected` if refused):
        what :meth:`submit` awaits, without a task or coroutine per message for a caller that sends many."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting[msg.msg_id] = fut  # the reply that settles it removes it
        self.hub.publish(p.prosumer_topic(self.pid, SUBMIT_KINDS[type(msg)]), codec.encode_message(msg))
        return fut

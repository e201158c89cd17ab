"""A prosumer's energy management system as its own MQTT client (its own id and credentials).

:class:`ProsumerClient` is an async context manager. It keeps one connection, reconnecting and
re-subscribing after a lost broker; :meth:`ProsumerClient.submit` publishes a message and waits for its
acknowledgement, re-sending the same message (same ``msg_id``) until the platform acknowledges it, so a
retry is never applied twice and an order is never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

import aiomqtt

from testbed.platform import codec
from testbed.platform import protocol as p
from testbed.platform.broker import BrokerAddress, parse_broker_url
from testbed.platform.mqtt_session import MQTT_LOG, Session, reply_filters, subscribe, version_of, wanted

Message = p.Order | p.FlexOffer | p.Telemetry | codec.OrderS | codec.FlexOfferS | codec.TelemetryS
"""What a prosumer submits: a reference model, or its struct (:func:`codec.prosumer_message`)."""
SUBMIT_KINDS: dict[type, str] = {p.Order: "order", p.FlexOffer: "offer", p.Telemetry: "telemetry", **codec.KIND_OF}

log = logging.getLogger(__name__)


class _NoBacklogWarnings(logging.Filter):
    """aiomqtt warns "There are N pending publish calls" whenever more than ten publishes await their
    acknowledgement; at a gate closure the platform publishes hundreds at once by design. Drop those."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("There are %d pending publish calls")


MQTT_LOG.addFilter(_NoBacklogWarnings())


@dataclass(frozen=True)
class Connection:
    """How to reach a broker: address, credentials and TLS (passed through to aiomqtt)."""

    address: BrokerAddress
    username: str | None = None
    password: str | None = None
    tls_context: ssl.SSLContext | None = None
    mqtt_version: int | None = 4
    """4 (3.1.1, the default: the cheaper one for a Python client, measured) or 5: that version only; None: MQTT 5
    where the broker speaks it, else 3.1.1 (see :mod:`testbed.platform.mqtt_session`)."""

    @classmethod
    def from_url(cls, url: str, **kw: object) -> Connection:
        """A connection to the broker at ``mqtt://host:port`` or ``mqtts://host:port``."""
        return cls(parse_broker_url(url), **kw)  # type: ignore[arg-type]

    def client(self, identifier: str, *, clean_session: bool = True, **kw: object) -> Session:
        """``async with connection.client(id) as c``: an aiomqtt client speaking ``mqtt_version`` (see
        :mod:`testbed.platform.mqtt_session`); extra keywords go to aiomqtt."""
        return Session(self, identifier, clean_session=clean_session, **kw)


class Rejected(Exception):
    """The platform refused a message; ``error`` is its error message."""

    def __init__(self, error: codec.ErrorMsgS) -> None:
        super().__init__(f"{error.code}: {error.detail} (msg_id={error.msg_id})")
        self.error = error


class ProsumerClient:
    def __init__(
        self,
        pid: str,
        connection: Connection,
        *,
        retry_s: float = 2.0,
        give_up_s: float = 120.0,
        subscribe_results: bool = False,
        client_id: str | None = None,
    ) -> None:
        self.pid = pid
        self.client_id = client_id or f"fpp-{pid}"
        self.connection = connection
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.subscribe_results = subscribe_results
        self.connected = asyncio.Event()
        self.connections = 0
        # the platform's replies as read (structs of testbed.platform.codec, with the protocol's field names)
        self.settlements: dict[tuple[int, str], codec.SettlementS] = {}
        self.dispatch: dict[int, float] = {}
        self.errors: list[codec.ErrorMsgS] = []
        self.acks: list[codec.AckS] = []
        self.results: dict[int, codec.MarketResultS] = {}
        self._waiting: dict[str, asyncio.Future] = {}
        # made only when someone waits for what has not arrived yet
        self._dispatch_events: dict[int, asyncio.Event] = {}
        self._result_events: dict[int, asyncio.Event] = {}
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> ProsumerClient:
        self._task = asyncio.create_task(self._run(), name=f"prosumer-{self.pid}")
        waiting = asyncio.create_task(self.connected.wait())
        await asyncio.wait([self._task, waiting], return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():  # it ended before connecting (a UserError such as a broker without MQTT 5)
            waiting.cancel()
            self._task.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, aiomqtt.MqttError):
                pass

    async def _run(self) -> None:
        # MQTT 5: one subscription fpp/v1/p/<pid>/+ with No Local; 3.1.1: one per reply kind (mqtt_session)
        keep = wanted(self.pid, p.OUTBOUND_KINDS) | ({p.RESULT_TOPIC} if self.subscribe_results else set())
        delay = 0.1
        while True:
            try:
                async with self.connection.client(self.client_id) as client:
                    filters, no_local = reply_filters(self.pid, version_of(client), p.OUTBOUND_KINDS)
                    if self.subscribe_results:
                        filters.append(p.RESULT_TOPIC)
                    await subscribe(client, filters, no_local=no_local)
                    self._client = client
                    self.connections += 1
                    self.connected.set()
                    delay = 0.1
                    async for m in client.messages:
                        topic = str(m.topic)
                        if topic in keep:  # the wildcard also brings the prosumer's other kinds (services)
                            self._on_message(topic, bytes(m.payload or b""))
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self._client = None
                log.info("%s lost the broker (%s); reconnecting in %.1f s", self.pid, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _on_message(self, topic: str, payload: bytes) -> None:
        kind = topic.rsplit("/", 1)[-1]
        try:
            msg = codec.decode_reply(kind, payload)
        except p.ProtocolError as exc:  # forged or broken (an open broker lets anyone publish here): drop it
            log.warning("%s: dropped a reply on %s that is not a valid %s: %s", self.pid, topic, kind, exc)
            return
        if kind == "ack":
            self.acks.append(msg)
            fut = self._waiting.pop(msg.msg_id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "error":
            self.errors.append(msg)
            fut = self._waiting.pop(msg.msg_id or "", None)
            if fut is not None and not fut.done():
                fut.set_exception(Rejected(msg))
        elif kind == "settlement":
            self.settlements[(msg.interval, msg.kind)] = msg
        elif kind == "dispatch":
            self.dispatch[msg.interval] = msg.p_kw
            event = self._dispatch_events.pop(msg.interval, None)
            if event is not None:
                event.set()
        elif kind == "result":
            self.results[msg.interval] = msg
            event = self._result_events.pop(msg.interval, None)
            if event is not None:
                event.set()

    async def publish_raw(self, kind: str, payload: bytes, qos: int = 1) -> None:
        """Publish bytes on this prosumer's ``kind`` topic as they are (tests use it for bad input)."""
        await self.connected.wait()
        await self._send(p.prosumer_topic(self.pid, kind), payload, qos=qos)

    async def _send(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish on the broker (the in-process transport replaces this)."""
        while self._client is None:
            await self.connected.wait()
        await self._client.publish(topic, payload, qos=qos, timeout=self.retry_s)

    async def submit(self, msg: Message) -> codec.AckS:
        """Publish ``msg`` until acknowledged; raise :class:`Rejected` if the platform refuses it."""
        kind = SUBMIT_KINDS[type(msg)]
        payload = codec.encode_message(msg)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting[msg.msg_id] = fut
        try:
            async with asyncio.timeout(self.give_up_s):
                while True:
                    await self.connected.wait()
                    try:
                        await self._send(p.prosumer_topic(self.pid, kind), payload)
                    except aiomqtt.MqttError:
                        await asyncio.sleep(0.05)
                        continue
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), self.retry_s)
                    except TimeoutError:
                        log.info(
                            "%s: no ack for %s after %.1f s, sending again",
                            self.pid,
                            msg.msg_id,
                            self.retry_s,
                        )
        finally:
            self._waiting.pop(msg.msg_id, None)

    def forget_before(self, k: int) -> None:
        """Drop the replies read so far about intervals before ``k``, and the acknowledgements and errors read
        (their waiters have had them). A market bridge calls it every interval: a year-long run kept every reply
        of its 35,136 intervals otherwise (the process reached 8.6 GB)."""
        self.acks.clear()
        self.errors.clear()
        for key in [key for key in self.settlements if key[0] < k]:
            del self.settlements[key]
        for d in (self.dispatch, self.results):
            for j in [j for j in d if j < k]:
                del d[j]

    async def wait_dispatch(self, k: int, timeout_s: float = 60.0) -> float:
        if k not in self.dispatch:  # often already here: no event and no timer then
            event = self._dispatch_events.setdefault(k, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout_s)
        return self.dispatch[k]

    async def wait_result(self, k: int, timeout_s: float = 60.0) -> codec.MarketResultS:
        if k not in self.results:
            event = self._result_events.setdefault(k, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout_s)
        return self.results[k]

"""One account speaking the grid-service protocol over MQTT: the operator (the buyers' side) or a member.

:class:`ServicesAccount` is an async context manager with one connection. :meth:`ServicesAccount.request`
publishes a message and waits for the platform's acknowledgement (and, for ``close`` and ``settle``, its
result), re-sending the same message (same ``msg_id``) until answered, so a retry is never applied twice.
What the platform sends the account on its own (adverts, awards, dispatches, settlements) is kept in
:attr:`ServicesAccount.inbox` by kind.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any

import aiomqtt

from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from testbed.platform.client import Connection
from testbed.platform.mqtt_session import V5, subscribe, version_of

log = logging.getLogger(__name__)


def _retrieve(client: aiomqtt.Client | None) -> None:
    """The embedded broker drops a client that says goodbye without acknowledging it; aiomqtt records that as an
    "unexpected disconnection" on a future nobody awaits any more: read it, so that asyncio does not warn."""
    gone = getattr(client, "_disconnected", None)
    if gone is not None and gone.done() and not gone.cancelled():
        gone.exception()


class ServiceRefused(Exception):
    """The platform refused a services message; ``code`` and ``detail`` are its error."""

    def __init__(self, code: str, detail: str, msg_id: str | None) -> None:
        super().__init__(f"{code}: {detail} (msg_id={msg_id})")
        self.code, self.detail, self.msg_id = code, detail, msg_id


class ServicesAccount:
    def __init__(self, account: str, connection: Connection, *, operator: bool = False, client_id: str | None = None,
                 retry_s: float = 5.0, give_up_s: float = 60.0) -> None:
        self.account = account
        self.operator = operator
        self.connection = connection
        self.client_id = client_id or f"fpp-services-{account}"
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.inbox: dict[str, list[dict]] = defaultdict(list)
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._last: aiomqtt.Client | None = None
        self._task: asyncio.Task | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._results: dict[str, asyncio.Future] = {}
        self._keep = frozenset(t for t in self.topics if not t.endswith("/+"))

    @property
    def topics(self) -> list[str]:
        """The topics this account reads (the adverts as their filter)."""
        if self.operator:
            return [sp.OPERATOR_ACK_TOPIC, sp.OPERATOR_ERROR_TOPIC, sp.RESULT_TOPIC]
        kinds = ("ack", "error", *sp.MEMBER_OUT_KINDS)
        return [p.prosumer_topic(self.account, k) for k in kinds] + [sp.ADVERT_TOPICS]

    def filters(self, version: int) -> tuple[list[str], bool]:
        """What to subscribe to and whether with No Local: under MQTT 5 one wildcard for the account's own
        replies (``fpp/v1/services/+`` or ``fpp/v1/p/<id>/+``; No Local keeps its own requests away), under
        3.1.1 one filter per topic (the wildcard would echo them)."""
        if version != V5:
            return self.topics, False
        if self.operator:
            return [f"{sp.SERVICES}/+"], True
        return [p.prosumer_topic(self.account, "+"), sp.ADVERT_TOPICS], True

    def _wanted(self, topic: str) -> bool:
        return topic in self._keep or (not self.operator and topic.startswith(f"{sp.SERVICES}/advert/"))

    def topic(self, kind: str) -> str:
        return f"{sp.SERVICES}/{kind}" if self.operator else p.prosumer_topic(self.account, kind)

    async def __aenter__(self) -> ServicesAccount:
        self._task = asyncio.create_task(self._run(), name=f"services-{self.account}")
        async with asyncio.timeout(self.give_up_s):
            await self.connected.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, aiomqtt.MqttError):
                pass
        _retrieve(self._last)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            session = self.connection.client(self.client_id)
            try:
                async with session as client:
                    self._last = client
                    filters, no_local = self.filters(version_of(client))
                    await subscribe(client, filters, no_local=no_local)
                    self._client = client
                    self.connected.set()
                    delay = 0.1
                    async for m in client.messages:
                        topic = str(m.topic)
                        if self._wanted(topic):  # a wildcard also matches the account's other topics
                            self._on_message(topic, bytes(m.payload or b""))
            except aiomqtt.MqttError as exc:
                _retrieve(session.client)
                self.connected.clear()
                self._client = None
                log.info("%s lost the broker (%s); reconnecting in %.1f s", self.account, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _on_message(self, topic: str, payload: bytes) -> None:
        data = json.loads(payload)
        kind = topic.rsplit("/", 1)[-1]
        if topic.startswith(f"{sp.SERVICES}/advert/"):
            kind = "advert"
        if kind == "ack":
            fut = self._acks.get(data.get("msg_id", ""))
            if fut is not None and not fut.done():
                fut.set_result(data)
        elif kind == "error":
            fut = self._acks.get(data.get("msg_id") or "")
            if fut is not None and not fut.done():
                fut.set_exception(ServiceRefused(data.get("code", ""), data.get("detail", ""), data.get("msg_id")))
            self.inbox["error"].append(data)
        elif kind == "result":
            fut = self._results.get(data.get("request_msg_id", ""))
            if fut is not None and not fut.done():
                fut.set_result(data)
        else:
            self.inbox[kind].append(data)

    async def request(self, kind: str, msg: dict[str, Any]) -> dict[str, Any]:
        """Publish ``msg`` on this account's ``kind`` topic until acknowledged; return the acknowledgement, or
        for ``close`` and ``settle`` the result; raise :class:`ServiceRefused` when the platform refuses it."""
        msg_id = msg["msg_id"]
        loop = asyncio.get_running_loop()
        ack, result = loop.create_future(), loop.create_future()
        self._acks[msg_id] = ack
        wants_result = kind in ("close", "settle")
        if wants_result:
            self._results[msg_id] = result
        payload = json.dumps(msg).encode()
        try:
            async with asyncio.timeout(self.give_up_s):
                while True:
                    await self.connected.wait()
                    client = self._client
                    try:
                        if client is not None:
                            await client.publish(self.topic(kind), payload, qos=1, timeout=self.retry_s)
                    except aiomqtt.MqttError:
                        await asyncio.sleep(0.05)
                        continue
                    try:
                        answer = await asyncio.wait_for(asyncio.shield(ack), self.retry_s)
                        return await asyncio.wait_for(asyncio.shield(result), self.retry_s) if wants_result \
                            else answer
                    except TimeoutError:
                        log.info("%s: no answer to %s after %.1f s, sending it again", self.account, msg_id,
                                 self.retry_s)
                        if ack.done() and ack.exception() is None:
                            ack = self._acks[msg_id] = loop.create_future()
        finally:
            self._acks.pop(msg_id, None)
            self._results.pop(msg_id, None)

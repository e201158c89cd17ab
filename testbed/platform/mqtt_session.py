"""MQTT 3.1.1 or 5 for each connection, and the subscriptions each version allows.

Every connection of the platform, its workers, the prosumer agents and the clock is made here
(:class:`Session`, what :meth:`testbed.platform.client.Connection.client` returns), in the version its
:class:`~testbed.platform.client.Connection` asks for: 3.1.1 by default, 5, or ``None`` for "MQTT 5 where the
broker speaks it". With ``None`` a broker that answers "unsupported protocol version" (the embedded ``amqtt``
broker speaks 3.1.1 only) is remembered for this process and spoken to in 3.1.1 from then on, so the failed
attempt is paid once per broker.

3.1.1 is the default because it is the cheaper one here: paho parses the properties of every MQTT 5 packet,
which cost the 1,000 prosumer clients of ``benchmarks/platform_throughput.py`` about a fifth more CPU per order,
while Mosquitto spent the same (BENCHMARKS.md, Platform). Platform workers need MQTT 5 (shared subscriptions).

Why MQTT 5 matters here:

- **No Local** (a subscription option): the broker does not send a client its own messages. A prosumer
  then needs one subscription, ``fpp/v1/p/<id>/+``, instead of one per reply kind; under 3.1.1 that
  wildcard would also send it back every order it publishes (an echo per order). With an ACL the broker's
  read rules already keep the echo away, but an open broker needs No Local.
- **Shared subscriptions** (``$share/<group>/<filter>``): the broker hands each message to one member of the
  group, so several platform workers share the inbound load (:mod:`testbed.platform.workers`). MQTT 5
  forbids No Local on a shared subscription (a protocol error), so those never ask for it.
- A persistent session (the platform's) is clean start off plus a session expiry interval, where 3.1.1 had
  clean session off; :class:`Session` maps one to the other.
"""

from __future__ import annotations

import logging
import secrets
import socket
import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from testbed.domain.errors import UserError
from testbed.platform import protocol as p

if TYPE_CHECKING:
    from testbed.platform.client import Connection

log = logging.getLogger(__name__)
MQTT_LOG = logging.getLogger("testbed.platform.mqtt")
V5 = 5
V311 = 4
VERSIONS = {V5: aiomqtt.ProtocolVersion.V5, V311: aiomqtt.ProtocolVersion.V311}
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT 5 session expiry interval [s] that means "never", as a 3.1.1 persistent session."""
_REFUSED = (1, 132)
"""CONNACK codes for "unsupported protocol version": 1 in 3.1.1 terms, 0x84 in MQTT 5's."""
_KNOWN: dict[tuple[str, int], int] = {}
"""The version each broker (host, port) was found to speak in this process: a fact about a peer, learned once."""
_VERSION: weakref.WeakKeyDictionary[aiomqtt.Client, int] = weakref.WeakKeyDictionary()
"""The version each connected client speaks."""


def known_version(host: str, port: int) -> int | None:
    """``V311`` if the broker at ``host:port`` refused MQTT 5 in this process, ``V5`` if it took an MQTT 5
    connection, None if not known yet."""
    return _KNOWN.get((host, port))


class Session:
    """``async with Session(...) as client``: an :class:`aiomqtt.Client` connected with MQTT 5, or 3.1.1 when
    the broker refuses 5 (or ``connection.mqtt_version`` asks for 3.1.1). ``clean_session=False`` keeps the
    session while the client is away, in either version."""

    def __init__(self, connection: Connection, identifier: str, *, clean_session: bool = True, **kw: Any) -> None:
        self.connection = connection
        self.identifier = identifier
        self.clean_session = clean_session
        self.kw = kw
        self.client: aiomqtt.Client | None = None
        self.probing = False

    def _make(self, version: int) -> aiomqtt.Client:
        c = self.connection
        tls = c.tls_context
        if tls is None and c.address.tls:
            import ssl

            tls = ssl.create_default_context()
        if version == V5:
            session: dict[str, Any] = {"clean_start": self.clean_session}
            if not self.clean_session:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
                session["properties"] = props
        else:
            session = {"clean_session": self.clean_session}
        return aiomqtt.Client(
            c.address.host,
            c.address.port,
            username=c.username,
            password=c.password,
            identifier=self.identifier,
            logger=MQTT_LOG,
            tls_context=tls,
            # small request/reply packets: without TCP_NODELAY, Nagle's algorithm holds them back
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            protocol=VERSIONS[version],
            **session,
            **self.kw,
        )

    async def __aenter__(self) -> aiomqtt.Client:
        c = self.connection
        known = known_version(c.address.host, c.address.port)
        version = c.mqtt_version or known
        if c.mqtt_version != V311 and known is None and not self.clean_session and not self.probing:
            # a 3.1.1-only broker may not answer an MQTT 5 CONNECT that carries properties at all (amqtt drops
            # it unanswered): ask first with an anonymous clean connection that can touch no session
            probed = await self._probe()
            version = version or probed
            known = known_version(c.address.host, c.address.port)
        if c.mqtt_version == V5 and known == V311 and not self.probing:
            raise self._no_v5("it refused an MQTT 5 connection in this process")
        made = version or V5
        client = self._make(made)
        try:
            await client.__aenter__()
        except aiomqtt.MqttCodeError as exc:
            if c.mqtt_version == V5 and _refused_v5(exc) and not self.probing:  # asked for 5 only: a mistake
                raise self._no_v5(f"it answered {exc}") from None
            if version is not None or not _refused_v5(exc):
                raise
            made = self._learn_311(exc)
            client = self._make(made)
            await client.__aenter__()
        _VERSION[client] = made
        self.client = client
        return client

    def _no_v5(self, why: str) -> UserError:
        return UserError(
            f"the broker at {self.connection.address.url} does not speak MQTT 5",
            [f"{why}; MQTT 5 is needed for shared subscriptions (platform workers)"],
        )

    def _learn_311(self, exc: Exception) -> int:
        a = self.connection.address
        log.info("broker %s refused MQTT 5 (%s): speaking 3.1.1 to it from now on", a.url, exc)
        _KNOWN[(a.host, a.port)] = V311
        return V311

    async def _probe(self) -> int:
        """The version the broker speaks, from one anonymous MQTT 5 CONNECT under a random client id: any
        answer but "unsupported protocol version" (accepted, or "not authorized") means MQTT 5."""
        probe = Session(
            replace(self.connection, username=None, password=None, mqtt_version=V5),
            f"fpp-probe-{secrets.token_hex(8)}",
            **{k: v for k, v in self.kw.items() if k == "timeout"},
        )
        probe.probing = True
        try:
            async with probe:
                pass
        except aiomqtt.MqttCodeError as exc:
            if _refused_v5(exc):
                return self._learn_311(exc)
        a = self.connection.address
        _KNOWN[(a.host, a.port)] = V5
        return V5

    async def __aexit__(self, *exc: Any) -> None:
        if self.client is not None:
            await self.client.__aexit__(*exc)


def _refused_v5(exc: aiomqtt.MqttCodeError) -> bool:
    return getattr(exc.rc, "value", exc.rc) in _REFUSED


def version_of(client: aiomqtt.Client) -> int:
    """The MQTT protocol level ``client`` (connected by a :class:`Session`) speaks: ``V5`` or ``V311``."""
    return _VERSION.get(client, V311)


def is_shared(topic_filter: str) -> bool:
    return topic_filter.startswith("$share/")


def shared(group: str, topic_filter: str) -> str:
    """``topic_filter`` as a shared subscription of ``group`` (each message goes to one member)."""
    return f"$share/{group}/{topic_filter}"


async def subscribe(client: aiomqtt.Client, filters: list[str], *, no_local: bool = False) -> None:
    """Subscribe to every filter at QoS 1 in one SUBSCRIBE packet (one round trip). ``no_local`` (MQTT 5
    only): the broker does not send the client its own messages; never set on shared subscriptions, where
    MQTT 5 forbids it. Raises :class:`aiomqtt.MqttError` if the broker refuses any filter."""
    if not filters:
        return
    if version_of(client) == V5:
        granted = await client.subscribe(
            [(f, SubscribeOptions(qos=1, noLocal=no_local and not is_shared(f))) for f in filters]
        )
    else:
        if no_local:
            raise ValueError("No Local needs MQTT 5; this connection speaks 3.1.1")
        if any(is_shared(f) for f in filters):  # a 3.1.1 broker would take $share/... as a plain topic
            raise UserError("shared subscriptions need an MQTT 5 broker", ["this broker speaks MQTT 3.1.1 only"])
        granted = await client.subscribe([(f, 1) for f in filters])
    refused = [f for f, g in zip(filters, granted, strict=True) if getattr(g, "value", g) >= 0x80]
    if refused:
        raise aiomqtt.MqttError(f"the broker refused the subscriptions {refused}")


def reply_filters(pid: str, version: int, kinds: tuple[str, ...]) -> tuple[list[str], bool]:
    """The filters for prosumer ``pid``'s replies of ``kinds`` and whether they need No Local.

    MQTT 5: one wildcard ``fpp/v1/p/<pid>/+`` with No Local (the prosumer's own orders stay away). 3.1.1: one
    filter per kind, as the wildcard would echo its own orders. Either way the caller keeps only ``kinds``
    (:func:`wanted`): the wildcard also matches the prosumer's other kinds.
    """
    if version == V5:
        return [p.prosumer_topic(pid, "+")], True
    return [p.prosumer_topic(pid, k) for k in kinds], False


def wanted(pid: str, kinds: tuple[str, ...]) -> frozenset[str]:
    """The topics a reader of ``pid``'s ``kinds`` handles; anything else the wildcard brings is dropped."""
    return frozenset(p.prosumer_topic(pid, k) for k in kinds)

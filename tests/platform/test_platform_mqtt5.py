"""MQTT 5 where the broker speaks it: one wildcard subscription per prosumer with No Local (Mosquitto), and the
old one-filter-per-kind subscriptions over 3.1.1 where it does not (the embedded amqtt broker)."""

import asyncio

import pytest

from testbed.domain.errors import UserError
from testbed.platform import protocol as p
from testbed.platform.broker import EmbeddedBrokerProcess, MosquittoBroker, mosquitto_available
from testbed.platform.client import Connection, ProsumerClient
from testbed.platform.mqtt_session import V5, V311, known_version, reply_filters, subscribe, version_of

from .helpers import make_core, order, serving

needs_mosquitto = pytest.mark.skipif(not mosquitto_available(), reason="needs mosquitto (MQTT 5)")


async def _received(conn: Connection, filters_of, publish_own: bool, wait_s: float = 0.5) -> list[str]:
    """Topics a reader of p0's replies receives after it publishes an order and the platform account an ack."""
    async with conn.client("reader-p0") as reader, conn.client("replier") as replier:
        filters, no_local = filters_of(version_of(reader))
        await subscribe(reader, filters, no_local=no_local)
        if publish_own:
            await reader.publish(p.prosumer_topic("p0", "order"), b"{}", qos=1)
        await replier.publish(p.prosumer_topic("p0", "ack"), b"{}", qos=1)
        await replier.publish(p.prosumer_topic("p1", "ack"), b"{}", qos=1)  # another prosumer's: not for p0
        got: list[str] = []
        try:
            async with asyncio.timeout(wait_s):
                async for m in reader.messages:
                    got.append(str(m.topic))
        except TimeoutError:
            pass
        return got


@needs_mosquitto
def test_one_wildcard_with_no_local_gets_the_replies_and_no_echo(broker):
    """MQTT 5 (Mosquitto): fpp/v1/p/p0/+ with No Local brings p0's ack but not the order p0 published itself.
    The same wildcard without No Local (3.1.1) echoes the order: why 3.1.1 keeps one filter per kind."""
    if not isinstance(broker, MosquittoBroker):
        pytest.skip("the session broker is not Mosquitto")
    v5 = Connection(broker.address, mqtt_version=V5)
    got = asyncio.run(_received(v5, lambda v: reply_filters("p0", v, p.OUTBOUND_KINDS), publish_own=True))
    assert got == [p.prosumer_topic("p0", "ack")]
    assert reply_filters("p0", V5, p.OUTBOUND_KINDS) == (["fpp/v1/p/p0/+"], True)

    old = Connection(broker.address, mqtt_version=V311)
    echo = asyncio.run(_received(old, lambda v: ([p.prosumer_topic("p0", "+")], False), publish_own=True))
    assert echo == [p.prosumer_topic("p0", "order"), p.prosumer_topic("p0", "ack")]
    # 3.1.1 keeps one filter per kind: no echo either
    kinds = asyncio.run(_received(old, lambda v: reply_filters("p0", v, p.OUTBOUND_KINDS), publish_own=True))
    assert kinds == [p.prosumer_topic("p0", "ack")]
    assert reply_filters("p0", V311, p.OUTBOUND_KINDS)[0] == [p.prosumer_topic("p0", k) for k in p.OUTBOUND_KINDS]


@needs_mosquitto
def test_prosumers_trade_over_mqtt5_with_one_subscription(broker, sqlite_url):
    if not isinstance(broker, MosquittoBroker):
        pytest.skip("the session broker is not Mosquitto")
    conn = Connection(broker.address, mqtt_version=None)  # MQTT 5 where the broker speaks it

    async def main():
        core = make_core(*sqlite_url, [("p0", "b0", None), ("p1", "b1", None)])
        async with serving(core, conn), ProsumerClient("p0", conn) as c0, ProsumerClient("p1", conn) as c1:
            a0 = await c0.submit(p.Order.model_validate(order("p0", "s", 1, "sell", 2.0, 0.10)))
            a1 = await c1.submit(p.Order.model_validate(order("p1", "b", 1, "buy", 2.0, 0.20)))
            versions = (version_of(c0._client), version_of(c1._client))
            # p1's reply topics carry nothing for p0: p0 saw its own ack only
            return a0, a1, versions, [a.msg_id for a in c0.acks], core

    a0, a1, versions, acks0, core = asyncio.run(main())
    assert (a0.msg_id, a1.msg_id) == ("s", "b") and versions == (V5, V5) and acks0 == ["s"]
    assert version_of_default_is_311()
    assert core.ledger.count_messages("order") == 2
    core.ledger.close()


def test_amqtt_refuses_mqtt5_and_gets_the_old_subscriptions(sqlite_url):
    """The embedded broker speaks 3.1.1 only: the first connection learns it (one refused MQTT 5 attempt),
    later ones go straight to 3.1.1, and orders are acknowledged as before."""
    with EmbeddedBrokerProcess() as amqtt:
        conn = Connection(amqtt.address, mqtt_version=None)  # MQTT 5 where the broker speaks it
        assert known_version(amqtt.address.host, amqtt.address.port) is None

        async def main():
            core = make_core(*sqlite_url, [("p0", "b0", None)])
            async with serving(core, conn), ProsumerClient("p0", conn) as c0:
                ack = await c0.submit(p.Order.model_validate(order("p0", "o1", 1)))
                return ack, version_of(c0._client), core

        ack, version, core = asyncio.run(main())
        assert ack.msg_id == "o1" and version == V311
        assert known_version(amqtt.address.host, amqtt.address.port) == V311
        core.ledger.close()

        async def forced():  # asking for MQTT 5 only is one clear error, for a raw session and a prosumer client
            with pytest.raises(UserError, match="does not speak MQTT 5") as raw:
                async with Connection(amqtt.address, mqtt_version=V5).client("v5-only"):
                    pass
            with pytest.raises(UserError, match="does not speak MQTT 5"):
                async with ProsumerClient("p0", Connection(amqtt.address, mqtt_version=V5)):
                    pass
            return raw.value

        err = asyncio.run(forced())
        assert "shared subscriptions" in err.render()


def test_no_local_is_refused_on_311():
    """No Local does not exist in 3.1.1: asking for it there is a programming error, not silently dropped."""

    class Fake:
        pass

    with pytest.raises(ValueError, match="No Local needs MQTT 5"):
        asyncio.run(subscribe(Fake(), ["a/+"], no_local=True))  # type: ignore[arg-type]


def version_of_default_is_311() -> bool:
    """A connection speaks 3.1.1 unless asked otherwise (the cheaper one for paho, see mqtt_session)."""
    return Connection.from_url("mqtt://127.0.0.1:1883").mqtt_version == V311

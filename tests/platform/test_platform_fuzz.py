"""Property-based fuzzing of what senders can put on the platform's topics (hypothesis).

Whatever arrives (on a prosumer's own topic, another prosumer's, the clock's, with bytes, broken JSON,
wrong types, huge numbers, valid messages in any order), the platform answers each message with an ack or
one error with a known code, never raises, never reports ``internal`` (an unexpected exception), stores a
message only under the prosumer it names, gives the clock account no trades, and still clears correctly
afterwards. The long run of the same properties is ``benchmarks/fuzz_long.py`` (FPP_FUZZ_SCALE).
"""

import asyncio
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.platform import protocol as p
from testbed.platform.client import Connection, ProsumerClient

from .helpers import make_core, order, serving

SCALE = int(os.environ.get("FPP_FUZZ_SCALE", "1"))
PROSUMERS = [("p01", "bus1", "green"), ("p02", "bus2", None)]
SENDERS = ["p01", "p02", "clock", "platform", "zz"]
CODES = {
    "oversized", "unknown_kind", "malformed_json", "schema_version", "invalid", "unknown_prosumer", "role",
    "identity", "duplicate_id", "late", "too_early", "not_cleared", "already_settled",
}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["3", "1_0", "0x10", "buy", "sell", "green", "", "p01", "p02", "clock"]),
)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)


def base(kind: str, pid: str, k: int, msg_id: str) -> dict:
    if kind == "order":
        return order(pid, msg_id, k, side="sell" if k % 2 else "buy", q=1.0 + k % 3, price=0.1 + 0.01 * (k % 5))
    if kind == "offer":
        return {"schema": "fpp.offer/1", "msg_id": msg_id, "prosumer": pid, "interval": k,
                "p_min_kw": -1.0, "p_max_kw": 2.0, "cost_a": 0.1, "cost_b": 0.05}
    if kind == "telemetry":
        return {"schema": "fpp.telemetry/1", "msg_id": msg_id, "prosumer": pid, "interval": k,
                "e_export_kwh": 0.5, "e_import_kwh": 0.1}
    return {"schema": "fpp.gate/1", "msg_id": msg_id, "interval": k, "t_s": 900.0 * k}


@st.composite
def messages(draw) -> tuple[str, bytes]:
    # biased towards registered senders, a few intervals and a few ids, so that sequences reach clearing,
    # settlement, retries and reused ids; the rest is noise
    sender = draw(st.sampled_from(["p01"] * 4 + ["p02"] * 3 + ["clock", "platform", "zz"]))
    kind = draw(st.sampled_from(["order", "offer", "telemetry", "telemetry", "gate", "gate"]))
    if kind == "gate":
        topic = draw(st.sampled_from([p.GATE_TOPIC, p.GATE_TOPIC, p.GATE_TOPIC, p.prosumer_topic(sender, "gate")]))
    else:
        topic = p.prosumer_topic(sender, kind)
    shape = draw(st.sampled_from(["valid"] * 6 + ["field", "drop", "extra", "other", "bytes"]))
    if shape == "bytes":
        return topic, draw(st.binary(max_size=64))
    k = draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3, -1, 193, 2**53, 2**60]))
    msg_id = draw(st.sampled_from(["m1", "m2", "m3", "m4"]) | st.text(min_size=1, max_size=8))
    payload_pid = draw(st.sampled_from(SENDERS)) if shape == "other" else sender
    data = base(kind, payload_pid, k, msg_id)
    if shape == "field":
        data[draw(st.sampled_from(sorted(data)))] = draw(json_values)
    elif shape == "drop":
        del data[draw(st.sampled_from(sorted(data)))]
    elif shape == "extra":
        data[draw(st.text(max_size=8))] = draw(json_values)
    return topic, json.dumps(data).encode()


@st.composite
def valid_messages(draw) -> tuple[str, bytes]:
    """Well-formed messages in a tiny space (3 senders, 3 intervals, 3 ids), so that a short sequence
    reaches clearing, settlement, retries, reused ids and late or early messages."""
    sender = draw(st.sampled_from(["p01", "p02", "clock"]))
    kind = draw(st.sampled_from(["order", "offer", "telemetry", "gate"]))
    k = draw(st.sampled_from([0, 1, 2]))
    msg_id = draw(st.sampled_from(["m1", "m2", "m3"]))
    topic = p.GATE_TOPIC if kind == "gate" else p.prosumer_topic(sender, kind)
    return topic, json.dumps(base(kind, sender, k, msg_id)).encode()


def check_replies(outs) -> None:
    for o in outs:
        body = json.loads(o.payload)  # every reply is JSON
        if o.topic.endswith("/error"):
            assert body["code"] in CODES, body  # never "internal": no unexpected exception


@settings(max_examples=120 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_messages() | valid_messages() | messages(), max_size=40))
def test_any_sequence_of_messages_is_answered_and_leaves_the_platform_correct(batch):
    core = make_core("sqlite://:memory:", "fpp_", PROSUMERS)
    for topic, payload in batch:
        outs = core.handle(topic, payload)  # never raises
        check_replies(outs)
    assert core.stats.get("internal", 0) == 0
    for kind in ("order", "offer", "telemetry"):
        for m in core.ledger.messages_of_kind(kind):
            assert m.payload["prosumer"] == m.sender and m.sender in ("p01", "p02")
    assert all("clock" not in (t[2], t[3]) for t in core.ledger.trades())
    # and it still trades: p01 sells 2 kW at 0.10, p02 buys 1 kW at 0.20 in the next open interval
    k = (core.last_closed if core.last_closed is not None else -1) + 1
    ack_s = core.handle(p.prosumer_topic("p01", "order"), json.dumps(order("p01", "final-s", k, q=2.0, price=0.10)).encode())
    ack_b = core.handle(p.prosumer_topic("p02", "order"), json.dumps(order("p02", "final-b", k, side="buy", q=1.0, price=0.20)).encode())
    assert [o.topic for o in ack_s + ack_b] == [p.prosumer_topic("p01", "ack"), p.prosumer_topic("p02", "ack")]
    outs = core.handle(p.GATE_TOPIC, json.dumps(base("gate", "", k, "final-gate")).encode())
    (result,) = [json.loads(o.payload) for o in outs if o.topic == p.RESULT_TOPIC]
    assert result["status"] == "optimal"
    traded = [(t["seller"], t["buyer"]) for t in result["trades"]]
    assert ("p01", "p02") in traded
    core.ledger.close()


@settings(max_examples=4 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(messages(), min_size=5, max_size=40))
def test_the_service_over_a_real_broker_survives_any_batch(broker, batch):
    """The same messages through Mosquitto (or amqtt) and the asyncio service: afterwards p01 still gets
    its order acknowledged on the same connection of the platform."""

    async def main():
        core = make_core("sqlite://:memory:", "fpp_", PROSUMERS)
        conn = Connection(broker.address)
        async with serving(core, conn) as service:
            async with conn.client(f"fuzz-{id(batch)}") as raw:
                for topic, payload in batch:
                    await raw.publish(topic, payload, qos=1)
            async with ProsumerClient("p01", conn) as c:
                k = (core.last_closed if core.last_closed is not None else -1) + 1
                ack = await asyncio.wait_for(c.submit(p.Order.model_validate(order("p01", "alive", k))), 20)
            return core, service, ack

    core, service, ack = asyncio.run(main())
    assert ack.msg_id == "alive" and service.connections == 1 and core.stats.get("internal", 0) == 0
    core.ledger.close()

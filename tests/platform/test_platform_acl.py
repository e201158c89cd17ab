"""Security with Mosquitto: per-prosumer credentials and the generated ACL (``fpp platform acl``)."""

import asyncio
import json

import aiomqtt
import pytest

from testbed.cli import main as fpp
from testbed.platform import protocol as p
from testbed.platform.acl import acl_text, mosquitto_passwd
from testbed.platform.agent import ProsumerClient
from testbed.platform.broker import MosquittoBroker, mosquitto_available
from testbed.platform.service import Connection
from testbed.platform.testing import make_core, order, serving

pytestmark = pytest.mark.skipif(
    not (mosquitto_available() and mosquitto_passwd()),
    reason="needs mosquitto and mosquitto_passwd for password and ACL files",
)


def test_acl_lets_prosumers_publish_only_under_their_own_id(tmp_path, sqlite_url, capsys):
    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n  - {id: p0, bus: b0}\n  - {id: p1, bus: b1}\n")
    out = tmp_path / "acl"
    assert fpp(["platform", "acl", "--prosumers", str(registry), "--out", str(out)]) == 0
    creds = json.loads((out / "credentials.json").read_text())
    assert set(creds) == {"platform", "clock", "p0", "p1"}
    assert "p0:" + creds["p0"] not in (out / "passwd").read_text()  # hashed, not plain

    with MosquittoBroker(password_file=out / "passwd", acl_file=out / "acl") as broker:

        def conn(user, password=None):
            return Connection(broker.address, username=user, password=password or creds[user])

        async def main():
            core = make_core(*sqlite_url, [("p0", "b0", None), ("p1", "b1", None)])
            async with serving(core, conn("platform")), ProsumerClient("p0", conn("p0")) as c0:
                ok = await c0.submit(p.Order.model_validate(order("p0", "own", 1)))
                # p0 tries to publish as p1 and to close a gate: the broker drops both
                async with conn("p0").client("intruder") as raw:
                    await raw.publish(
                        p.prosumer_topic("p1", "order"), json.dumps(order("p1", "forged", 1)).encode(), qos=1
                    )
                    await raw.publish(
                        p.GATE_TOPIC,
                        json.dumps({"schema": "fpp.gate/1", "msg_id": "g", "interval": 1, "t_s": 0}).encode(),
                        qos=1,
                    )
                # an order p0 sends afterwards is handled after anything the broker let through
                after = await c0.submit(p.Order.model_validate(order("p0", "after", 1)))
                refused = None
                try:
                    async with conn("p1", "wrong-password").client("bad"):
                        pass
                except aiomqtt.MqttError as exc:
                    refused = exc
            return core, ok, after, refused

        core, ok, after, refused = asyncio.run(main())
    assert ok.msg_id == "own" and after.msg_id == "after"
    assert [m.msg_id for m in core.ledger.messages("order", 1)] == ["own", "after"]
    assert core.ledger.find_message("p1", "forged") is None and core.ledger.interval(1) is None
    assert refused is not None
    core.ledger.close()


def test_acl_text_names_each_topic_rule():
    text = acl_text()
    assert "pattern write fpp/v1/p/%u/order" in text
    assert "pattern read fpp/v1/p/%u/settlement" in text
    assert "user clock\ntopic write fpp/v1/clock/gate" in text
    assert "pattern write fpp/v1/p/+/" not in text

"""The platform core without MQTT, on both ledgers: identity, idempotency, gate rules, errors keep serving."""

import json

from testbed.platform import protocol as p

from .helpers import make_core, order

PROSUMERS = [("a", "bus1", "green"), ("b", "bus2", None)]


def send(core, pid, kind, obj):
    payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return core.handle(p.prosumer_topic(pid, kind), payload)


def kinds(outs):
    return [(o.topic.rsplit("/", 2)[-2], o.topic.rsplit("/", 1)[-1], json.loads(o.payload)) for o in outs]


def test_order_is_stored_then_acknowledged(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    ((who, kind, ack),) = kinds(send(core, "a", "order", order("a", "m1", 3)))
    assert (who, kind, ack["msg_id"], ack["duplicate"]) == ("a", "ack", "m1", False)
    stored = core.ledger.find_message("a", "m1")
    assert stored is not None and stored.payload["quantity_kw"] == 1.0


def test_retry_is_acknowledged_again_and_applied_once(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    send(core, "a", "order", order("a", "m1", 3))
    ((_, kind, ack),) = kinds(send(core, "a", "order", order("a", "m1", 3)))
    assert kind == "ack" and ack["duplicate"] is True
    assert len(core.ledger.messages("order", 3)) == 1


def test_reused_id_with_other_content_is_an_error(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    send(core, "a", "order", order("a", "m1", 3))
    ((_, kind, err),) = kinds(send(core, "a", "order", order("a", "m1", 3, q=2.0)))
    assert (kind, err["code"], err["msg_id"]) == ("error", "duplicate_id", "m1")
    assert core.ledger.messages("order", 3)[0].payload["quantity_kw"] == 1.0


def test_same_msg_id_from_two_prosumers_are_two_messages(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    send(core, "a", "order", order("a", "m1", 3))
    send(core, "b", "order", order("b", "m1", 3, side="buy"))
    assert len(core.ledger.messages("order", 3)) == 2


def test_payload_id_must_match_topic_id(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    ((who, kind, err),) = kinds(send(core, "b", "order", order("a", "m1", 3)))
    assert (who, kind, err["code"]) == ("b", "error", "identity")
    assert core.ledger.count_messages() == 0


def test_unknown_prosumer_gets_an_error_on_its_own_topic(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    ((who, kind, err),) = kinds(send(core, "zed", "order", order("zed", "m1", 3)))
    assert (who, kind, err["code"]) == ("zed", "error", "unknown_prosumer")


def test_bad_inputs_each_get_an_error_and_the_core_keeps_serving(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    bad = [
        b"{",
        b"null",
        json.dumps({**order("a", "x", 3), "schema": "fpp.order/9"}).encode(),
        b'{"schema": "fpp.order/1", "quantity_kw": NaN}',
        json.dumps(order("a", "y", 3, q=-2)).encode(),
        b"x" * 20000,
    ]
    codes = [kinds(send(core, "a", "order", b))[0][2]["code"] for b in bad]
    assert codes == [
        "malformed_json",
        "malformed_json",
        "schema_version",
        "malformed_json",
        "invalid",
        "oversized",
    ]
    assert kinds(send(core, "a", "order", order("a", "ok", 3)))[0][1] == "ack"
    assert core.stats["errors"] == 6 and core.ledger.count_messages() == 1


def test_orders_after_gate_closure_are_late(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    core.handle(
        p.GATE_TOPIC,
        json.dumps({"schema": "fpp.gate/1", "msg_id": "g5", "interval": 5, "t_s": 4440.0}).encode(),
    )
    ((_, kind, err),) = kinds(send(core, "a", "order", order("a", "m1", 5)))
    assert (kind, err["code"]) == ("error", "late")
    ((_, kind, err),) = kinds(send(core, "a", "order", order("a", "m2", 4)))
    assert err["code"] == "late"
    ((_, kind, _),) = kinds(send(core, "a", "order", order("a", "m3", 6)))
    assert kind == "ack"
    ((_, kind, err),) = kinds(send(core, "a", "order", order("a", "m4", 5 + 193)))
    assert err["code"] == "too_early"


def test_gates_must_move_forward_and_reuse_ids_only_as_retries(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    gate = {"schema": "fpp.gate/1", "msg_id": "g5", "interval": 5, "t_s": 4440.0}
    core.handle(p.GATE_TOPIC, json.dumps(gate).encode())
    outs = core.handle(p.GATE_TOPIC, json.dumps({**gate, "msg_id": "other"}).encode())
    assert [json.loads(o.payload)["code"] for o in outs] == ["duplicate_id"]
    outs = core.handle(p.GATE_TOPIC, json.dumps({**gate, "msg_id": "g4", "interval": 4}).encode())
    assert [json.loads(o.payload)["code"] for o in outs] == ["late"]
    assert outs[0].topic == p.CLOCK_ERROR_TOPIC


def test_telemetry_before_clearing_is_refused(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    tele = {
        "schema": "fpp.telemetry/1",
        "msg_id": "t1",
        "prosumer": "a",
        "interval": 2,
        "e_export_kwh": 0.5,
        "e_import_kwh": 0.0,
    }
    ((_, kind, err),) = kinds(send(core, "a", "telemetry", tele))
    assert (kind, err["code"]) == ("error", "not_cleared")


def test_restarted_core_resumes_from_the_ledger(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    send(core, "a", "order", order("a", "m1", 7))
    core.handle(
        p.GATE_TOPIC,
        json.dumps({"schema": "fpp.gate/1", "msg_id": "g6", "interval": 6, "t_s": 5300.0}).encode(),
    )
    core.ledger.close()
    again = make_core(*ledger_url, [])  # registry comes from the ledger
    assert set(again.prosumers) == {"a", "b"} and again.last_closed == 6
    ((_, kind, ack),) = kinds(send(again, "a", "order", order("a", "m1", 7)))
    assert kind == "ack" and ack["duplicate"] is True
    assert kinds(send(again, "a", "order", order("a", "m2", 6)))[0][2]["code"] == "late"

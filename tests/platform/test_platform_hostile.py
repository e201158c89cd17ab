"""A registered prosumer (or anyone on an open broker) acting against the platform: each case is a defect
that was reproduced on the code before this test existed, and must now be refused with one clear error
while the platform keeps serving."""

import asyncio
import json
import sqlite3

import pytest

from testbed.platform import protocol as p
from testbed.platform.client import Connection, ProsumerClient, Rejected
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger

from .helpers import TARIFF, make_core, order, serving

PROSUMERS = [("p01", "bus1", "green"), ("p02", "bus2", None)]


def send(core, topic, obj):
    payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return [(o.topic, json.loads(o.payload)) for o in core.handle(topic, payload)]


def gate(k, msg_id, t_s=0.0):
    return {"schema": "fpp.gate/1", "msg_id": msg_id, "interval": k, "t_s": t_s}


def telemetry(msg_id, k=5, pid="p01"):
    return {
        "schema": "fpp.telemetry/1",
        "msg_id": msg_id,
        "prosumer": pid,
        "interval": k,
        "e_export_kwh": 0.8,
        "e_import_kwh": 0,
    }


def replies(outs, kind):
    return [body for topic, body in outs if topic.endswith("/" + kind)]


def close_up_to(core, k):
    for i in range(k + 1):
        assert replies(send(core, p.GATE_TOPIC, gate(i, f"g{i}")), "ack"), i


# ---- 1. a second telemetry for a settled interval crashed the platform ---------------------------------


def test_second_telemetry_for_a_settled_interval_is_refused_not_a_crash(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    close_up_to(core, 5)
    topic = p.prosumer_topic("p01", "telemetry")
    assert replies(send(core, topic, telemetry("tele-a")), "ack")
    (err,) = replies(send(core, topic, telemetry("tele-b")), "error")  # raised IntegrityError before
    assert (err["code"], err["msg_id"]) == ("already_settled", "tele-b")
    # one imbalance settlement: 0.8 kWh exported against no trade, paid at the export price 0.08
    rows = [r for r in core.ledger.settlements() if r[2] == "imbalance"]
    assert [(r[0], r[1], r[5]) for r in rows] == [(5, "p01", pytest.approx(-0.8 * 0.08))]
    # a retry of the first one is still an acknowledged duplicate
    (ack,) = replies(send(core, topic, telemetry("tele-a")), "ack")
    assert ack["duplicate"] is True
    core.ledger.close()


def _break_settlements(url: str, prefix: str) -> None:
    """A real ledger fault the platform cannot foresee: a trigger (as a DBA or a corrupted schema might
    leave one) that aborts every insert into the settlements table. It stays across restarts."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            f"CREATE TRIGGER broken BEFORE INSERT ON {prefix}settlements "
            "BEGIN SELECT RAISE(ABORT, 'injected ledger fault'); END"
        )


def test_unexpected_exception_is_answered_internal_and_recorded_so_a_retry_cannot_crash(sqlite_url):
    url, prefix = sqlite_url
    core = make_core(url, prefix, PROSUMERS)
    close_up_to(core, 5)
    _break_settlements(url, prefix)
    topic = p.prosumer_topic("p01", "telemetry")
    bad = json.dumps(telemetry("tele-x")).encode()
    (err,) = replies(send(core, topic, bad), "error")
    assert (err["code"], err["msg_id"]) == ("internal", "tele-x") and "new msg_id" in err["detail"]
    assert core.ledger.find_message("p01", "tele-x") is None  # the transaction was rolled back
    assert core.stats["internal"] == 1
    # it keeps serving: an order for the next interval is acknowledged
    assert replies(send(core, p.prosumer_topic("p02", "order"), order("p02", "o1", 6)), "ack")
    core.ledger.close()
    # restarted on the same (still broken) ledger, the retried message is answered from the record
    core2 = PlatformCore(Ledger(url, prefix=prefix), PlatformConfig(tariff=TARIFF))
    (err2,) = replies(send(core2, topic, bad), "error")
    assert (err2["code"], err2["msg_id"]) == ("internal", "tele-x")
    assert core2.stats["internal"] == 0  # not run again: refused from the record
    assert list(core2.ledger.failures().values()) == [err["detail"]]
    core2.ledger.close()


def test_service_answers_a_message_that_makes_the_core_raise_and_keeps_serving(broker, sqlite_url):
    url, prefix = sqlite_url
    core = make_core(url, prefix, PROSUMERS)
    close_up_to(core, 5)
    _break_settlements(url, prefix)

    async def main():
        conn = Connection(broker.address)
        async with serving(core, conn) as service, ProsumerClient("p01", conn) as c:
            try:
                await c.submit(p.Telemetry.model_validate(telemetry("tele-x")))
                raise AssertionError("the broken ledger was not reported")
            except Rejected as exc:
                code = exc.error.code
            ack = await c.submit(p.Order.model_validate(order("p01", "o1", 6)))
            return code, ack, service.connections

    code, ack, connections = asyncio.run(main())
    assert code == "internal" and ack.msg_id == "o1" and connections == 1
    core.ledger.close()


# ---- 2. the clock account could trade ------------------------------------------------------------------


def test_clock_account_cannot_trade(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    close_up_to(core, 0)
    outs = send(core, p.prosumer_topic("clock", "order"), order("clock", "c1", 1, side="buy", q=5.0))
    assert not replies(outs, "ack")
    (err,) = replies(outs, "error")
    assert err["code"] == "role"
    send(core, p.prosumer_topic("p01", "order"), order("p01", "s1", 1, side="sell", q=5.0, price=0.1))
    (result,) = replies(send(core, p.GATE_TOPIC, gate(1, "g1")), "result")
    assert result["trades"] == [] and core.ledger.find_message("clock", "c1") is None
    core.ledger.close()


@pytest.mark.parametrize("topic", ["fpp/v1/p/p01/gate", "fpp/v1/p/clock/gate", "fpp/v1/p/p01/ack"])
def test_only_the_clock_topic_carries_gates(topic):
    assert p.parse_topic(topic) is None


# ---- 3. one gate far ahead closed the market for good --------------------------------------------------


@pytest.mark.parametrize("k", [9007199254740992, 193])
def test_gate_beyond_the_horizon_is_refused_and_the_market_stays_open(ledger_url, k):
    core = make_core(*ledger_url, PROSUMERS)
    (err,) = replies(send(core, p.GATE_TOPIC, gate(k, "far")), "error")
    assert err["code"] in ("too_early", "invalid")  # 2**53 is also beyond the field's range
    assert core.ledger.intervals() == []
    assert replies(send(core, p.prosumer_topic("p01", "order"), order("p01", "o1", 3)), "ack")
    close_up_to(core, 2)
    (err,) = replies(send(core, p.GATE_TOPIC, gate(2 + 193, "far2")), "error")
    assert err["code"] == "too_early"
    assert replies(send(core, p.GATE_TOPIC, gate(2 + 192, "edge")), "ack")  # exactly the horizon
    core.ledger.close()


def test_wall_clock_gates_may_jump_after_a_long_stop(sqlite_url):
    core = make_core(*sqlite_url, PROSUMERS, first_interval=1000)
    assert json.loads(core.open_message().payload)["interval"] == 1000
    late = send(core, p.prosumer_topic("p01", "order"), order("p01", "o1", 999))
    assert replies(late, "error")[0]["code"] == "late"
    outs = core.close_gate(1000 + 5000, 0.0)  # the platform's own clock after days away
    assert any(o.topic == p.RESULT_TOPIC for o in outs) and core.last_closed == 6000
    core.ledger.close()


# ---- 4. wrong types were converted instead of refused --------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("quantity_kw", "3"),
        ("quantity_kw", True),
        ("price_per_kwh", "0.1"),
        ("interval", "1_0"),
        ("interval", 10.0),
        ("interval", False),
        ("side", ["sell"]),
    ],
)
def test_wrong_types_are_refused_not_converted(sqlite_url, field, value):
    core = make_core(*sqlite_url, PROSUMERS)
    bad = {**order("p01", "m1", 10), field: value}
    (err,) = replies(send(core, p.prosumer_topic("p01", "order"), bad), "error")
    assert err["code"] == "invalid" and field in err["detail"]
    assert core.ledger.count_messages() == 0
    core.ledger.close()


@pytest.mark.parametrize("field, value", [("t_s", "0"), ("interval", "0"), ("t_s", None)])
def test_gate_with_wrong_types_is_refused(sqlite_url, field, value):
    core = make_core(*sqlite_url, PROSUMERS)
    (err,) = replies(send(core, p.GATE_TOPIC, {**gate(0, "g0"), field: value}), "error")
    assert err["code"] == "invalid" and core.ledger.intervals() == []
    core.ledger.close()


def test_integer_json_number_is_a_valid_float_and_duplicate_keys_are_refused(sqlite_url):
    core = make_core(*sqlite_url, PROSUMERS)
    assert replies(send(core, p.prosumer_topic("p01", "order"), order("p01", "m1", 3, q=2)), "ack")
    twice = b'{"schema":"fpp.order/1","msg_id":"m2","prosumer":"p01","interval":3,"side":"sell",' \
        b'"quantity_kw":1,"quantity_kw":1000,"price_per_kwh":0.1}'
    (err,) = replies(send(core, p.prosumer_topic("p01", "order"), twice), "error")
    assert err["code"] == "malformed_json" and "quantity_kw" in err["detail"]
    core.ledger.close()


# ---- 5. the platform's client id was predictable -------------------------------------------------------


def test_platform_client_id_is_random_per_ledger_and_kept_across_restarts(tmp_path):
    from testbed.platform.service import platform_client_id

    a1 = Ledger(f"sqlite:///{tmp_path}/a.db")
    first = platform_client_id(a1)
    a1.close()
    a2 = Ledger(f"sqlite:///{tmp_path}/a.db")
    again = platform_client_id(a2)
    b = Ledger(f"sqlite:///{tmp_path}/b.db")
    other = platform_client_id(b)
    assert first == again != other
    token = first.removeprefix("fpp-platform-")
    assert len(token) == 32 and int(token, 16) >= 0  # 128 random bits, nothing derived from the URL
    assert "a.db" not in first
    a2.close()
    b.close()

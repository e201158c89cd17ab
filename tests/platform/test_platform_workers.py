"""Platform workers sharing one PostgreSQL ledger (and, end to end, one Mosquitto through shared subscriptions):
a message applied once whichever workers it reaches, one arrival order, and no order acknowledged for an interval
whose clearing has already read the ledger. Skipped with the reason when PostgreSQL or Mosquitto is unreachable."""

import asyncio
import contextlib
import json
import threading
import time
import uuid

import pytest

from testbed.cli import main as fpp
from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform import protocol as p
from testbed.platform.broker import MosquittoBroker, mosquitto_available
from testbed.platform.client import Connection, ProsumerClient
from testbed.platform.core import PlatformConfig
from testbed.platform.ledger import Ledger
from testbed.platform.workers import SharedLedger, WorkerCore, WorkerService

from .conftest import PG_URL, postgres_reason
from .helpers import TARIFF, close_gate, order

_PG = postgres_reason()
pytestmark = pytest.mark.postgres
needs_pg = pytest.mark.skipif(_PG is not None, reason=_PG or "")
needs_mosquitto = pytest.mark.skipif(not mosquitto_available(), reason="shared subscriptions need Mosquitto (MQTT 5)")


@pytest.fixture
def prefix():
    """A fresh table prefix on the test database, dropped afterwards."""
    pre = f"w{uuid.uuid4().hex[:10]}_"
    yield pre
    led = Ledger(PG_URL, prefix=pre)
    led.drop_all()
    led.close()


def workers(prefix: str, n: int = 2, prosumers=(("p0", "b0", None), ("p1", "b1", None))) -> list[WorkerCore]:
    first = SharedLedger(PG_URL, prefix=prefix)
    first.upsert_prosumers(list(prosumers))
    cores = [WorkerCore(first, PlatformConfig(interval_s=900.0, tariff=TARIFF), 0)]
    cores += [WorkerCore(SharedLedger(PG_URL, prefix=prefix), PlatformConfig(interval_s=900.0, tariff=TARIFF), i)
              for i in range(1, n)]
    return cores


def in_thread(fn, *args):
    """Run ``fn(*args)`` in a thread; the thread and a one-element list that receives its result."""
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    t.start()
    return t, out


def replies(outs) -> list[tuple[str, dict]]:
    return [(o.topic.rsplit("/", 1)[-1], json.loads(o.payload)) for o in outs]


@needs_pg
def test_a_duplicate_reaching_two_workers_at_once_is_applied_once(prefix):
    """Worker 0 holds an order uncommitted; its retry reaches worker 1, which waits on the ledger's key, and is
    acknowledged as a duplicate once worker 0 commits. One row, one acceptance, two acknowledgements."""
    a, b = workers(prefix)
    msg = (p.prosumer_topic("p0", "order"), json.dumps(order("p0", "o1", 1)).encode())
    with a.ledger.batch():
        first = a.handle(*msg)
        t, second = in_thread(b.handle_batch, [msg])
        time.sleep(0.5)
        assert t.is_alive(), "worker 1 answered while worker 0 had not committed"
    t.join(10)
    assert replies(first) == [("ack", {**replies(first)[0][1], "duplicate": False})]
    ((kind, ack),) = replies(second[0])
    assert (kind, ack["msg_id"], ack["duplicate"]) == ("ack", "o1", True)
    assert a.ledger.count_messages("order") == 1
    assert (a.stats["accepted"], b.stats["accepted"], b.stats["duplicates"]) == (1, 0, 1)
    assert b.stats["internal"] == 0
    for c in (a, b):
        c.ledger.close()


@needs_pg
def test_the_same_id_with_other_content_at_another_worker_is_refused(prefix):
    a, b = workers(prefix)
    assert replies(a.handle_batch([(p.prosumer_topic("p0", "order"), json.dumps(order("p0", "o1", 1)).encode())]))[
        0][0] == "ack"
    other = json.dumps(order("p0", "o1", 1, q=5.0)).encode()
    ((kind, err),) = replies(b.handle_batch([(p.prosumer_topic("p0", "order"), other)]))
    assert (kind, err["code"]) == ("error", "duplicate_id")
    for c in (a, b):
        c.ledger.close()


@needs_pg
def test_messages_taken_by_different_workers_keep_their_order(prefix):
    """p0's offer, acknowledged by worker 1, then its amended offer at worker 0: the amendment is later in the
    ledger (one PostgreSQL sequence), so it is the offer that counts. Per-process counters would number both 1."""
    a, b = workers(prefix)
    offer = {"schema": "fpp.offer/1", "prosumer": "p0", "interval": 1, "p_min_kw": -2.0, "p_max_kw": 2.0,
             "cost_a": 0.1, "cost_b": 0.1}
    b.handle_batch([(p.prosumer_topic("p0", "offer"), json.dumps({**offer, "msg_id": "first"}).encode())])
    a.handle_batch([(p.prosumer_topic("p0", "offer"), json.dumps({**offer, "msg_id": "second"}).encode())])
    b.handle_batch([(p.prosumer_topic("p0", "offer"), json.dumps({**offer, "msg_id": "third"}).encode())])
    assert [m.msg_id for m in a.ledger.messages("offer", 1)] == ["first", "second", "third"]
    for c in (a, b):
        c.ledger.close()


@needs_pg
def test_a_gate_waits_for_open_order_batches_and_later_orders_are_late(prefix):
    """Worker 1 has an order for interval 1 uncommitted when the gate of interval 1 reaches worker 0: the
    clearing waits for that commit and includes the order; an order worker 1 takes afterwards is refused as
    late, although worker 1 itself never saw the gate."""
    a, b = workers(prefix)
    gate = (p.GATE_TOPIC, json.dumps({"schema": "fpp.gate/1", "msg_id": "g1", "interval": 1, "t_s": 0}).encode())
    with b.ledger.batch():
        assert replies(b.handle(p.prosumer_topic("p1", "order"),
                                json.dumps(order("p1", "buy", 1, "buy", 1.0, 0.2)).encode()))[0][0] == "ack"
        a.handle_batch([(p.prosumer_topic("p0", "order"), json.dumps(order("p0", "sell", 1)).encode())])
        t, cleared = in_thread(a.handle_batch, [gate])
        time.sleep(0.5)
        assert t.is_alive(), "the gate closed while worker 1 still held an order for the interval"
    t.join(20)
    result = next(body for kind, body in replies(cleared[0]) if kind == "result")
    assert (result["n_orders"], result["status"], len(result["trades"])) == (2, "optimal", 1)
    late = replies(b.handle_batch([(p.prosumer_topic("p1", "order"),
                                    json.dumps(order("p1", "late", 1, "buy")).encode())]))
    assert [(k, body["code"]) for k, body in late] == [("error", "late")]
    assert a.ledger.find_message("p1", "late") is None
    for c in (a, b):
        c.ledger.close()


@needs_pg
@needs_mosquitto
def test_two_workers_share_the_load_through_mosquitto(prefix):
    """Two workers on shared subscriptions: 12 prosumers' orders are spread over both, each stored once; the
    same order published twice at once is acknowledged twice and applied once; worker 0 clears the interval
    with every order of both workers."""
    pids = [f"p{i:02d}" for i in range(12)]
    cores = workers(prefix, 2, [(pid, f"b{pid}", None) for pid in pids])
    with MosquittoBroker() as broker:
        conn = Connection(broker.address)

        async def main():
            services = [WorkerService(c, conn, group="testgroup", client_id=f"t-{prefix}") for c in cores]
            tasks = [asyncio.create_task(s.run()) for s in services]
            try:
                async with asyncio.timeout(20):
                    for s in services:
                        await s.connected.wait()
                async with contextlib.AsyncExitStack() as stack:
                    clients = [await stack.enter_async_context(ProsumerClient(pid, conn)) for pid in pids]
                    for j in range(3):
                        await asyncio.gather(*(c.submit(p.Order.model_validate(
                            order(c.pid, f"{c.pid}-{j}", 1, "sell" if i % 2 else "buy", 1.0, 0.15)))
                            for i, c in enumerate(clients)))
                    twice = json.dumps(order("p00", "twice", 1)).encode()
                    await asyncio.gather(clients[0].publish_raw("order", twice),
                                         clients[0].publish_raw("order", twice))
                    async with asyncio.timeout(10):
                        while sum(a.msg_id == "twice" for a in clients[0].acks) < 2:
                            await asyncio.sleep(0.02)
                    twice_acks = sorted(a.duplicate for a in clients[0].acks if a.msg_id == "twice")
                    result = await close_gate(conn, 1, "gate-1")
                return twice_acks, result
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        twice_acks, result = asyncio.run(main())
    accepted = [c.stats["accepted"] for c in cores]
    assert twice_acks == [False, True]
    assert sum(accepted) == 12 * 3 + 1 and min(accepted) > 0, accepted
    assert cores[0].ledger.count_messages("order") == 37 and result["n_orders"] == 37
    assert sum(c.stats["duplicates"] for c in cores) == 1 and sum(c.stats["internal"] for c in cores) == 0
    for c in cores:
        c.ledger.close()


@needs_pg
@needs_mosquitto
def test_fpp_platform_workers_serve_and_stop(tmp_path, prefix):
    """``fpp platform --workers 2`` as its own process: one serving line once both workers are connected, orders
    acknowledged, a gate cleared, and both workers stopped by SIGTERM to the supervisor."""
    pids = [f"p{i}" for i in range(6)]
    with PlatformProcess(
        [{"id": pid} for pid in pids], ledger_url=PG_URL, ledger_prefix=prefix, workdir=tmp_path / "run",
        extra_args=["--workers", "2"],
    ) as platform:
        conn = Connection(platform.address)

        async def main():
            async with contextlib.AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(ProsumerClient(pid, conn)) for pid in pids]
                await asyncio.gather(*(c.submit(p.Order.model_validate(order(c.pid, f"{c.pid}-{j}", 1)))
                                       for c in clients for j in range(4)))
            return await close_gate(conn, 1, "gate-1")

        result = asyncio.run(main())
    log_text = (tmp_path / "run" / "platform.log").read_text()
    assert result["n_orders"] == 24
    assert "worker 0: stopped" in log_text and "worker 1: stopped" in log_text


def test_workers_need_postgresql_and_an_mqtt5_broker(tmp_path, capsys):
    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n  - {id: p0}\n")
    code = fpp(["platform", "--workers", "2", "--ledger", f"sqlite:///{tmp_path}/l.db", "--prosumers", str(registry)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--workers needs a PostgreSQL ledger" in err and "--workers needs --broker" in err
    code = fpp(["platform", "--workers", "2", "--worker-index", "2", "--broker", "mqtt://127.0.0.1:1",
                "--ledger", PG_URL, "--prosumers", str(registry)])
    assert code == 2 and "--worker-index 2: must lie in 0..1" in capsys.readouterr().err


@needs_pg
@needs_mosquitto
def test_workers_under_the_generated_acl_each_log_in_with_their_own_account(tmp_path, prefix):
    """`fpp platform acl --workers 2` writes an account per worker: with client ids pinned to accounts, both
    workers stay connected and share the orders. A prosumer that joins the workers' shared group receives no
    order (the ACL refuses it every topic but its own replies); the orders the broker handed it are lost there,
    and reach the platform when their senders retry (the group's real name is random, see worker_group)."""
    from testbed.platform.acl import write_acl
    from testbed.platform.mqtt_session import V5, shared, subscribe

    pids = [f"p{i}" for i in range(8)]
    creds = write_acl(pids, tmp_path / "acl", workers=2)
    assert {"platform", "platform-w1"} <= set(creds)
    cores = workers(prefix, 2, [(pid, None, None) for pid in pids])
    with MosquittoBroker(password_file=tmp_path / "acl" / "passwd", acl_file=tmp_path / "acl" / "acl") as broker:

        def conn(user, version=4):
            return Connection(broker.address, username=user, password=creds[user], mqtt_version=version)

        async def main():
            accounts = ("platform", "platform-w1")
            services = [WorkerService(c, conn(a), group="g1") for c, a in zip(cores, accounts, strict=True)]
            tasks = [asyncio.create_task(s.run()) for s in services]
            try:
                async with asyncio.timeout(20):
                    for s in services:
                        await s.connected.wait()
                async with conn("p7", V5).client("p7") as thief:
                    await subscribe(thief, [shared("g1", f"{p.ROOT}/p/+/order")])
                    async with contextlib.AsyncExitStack() as stack:
                        clients = [await stack.enter_async_context(ProsumerClient(pid, conn(pid))) for pid in pids[:7]]
                        await asyncio.gather(*(c.submit(p.Order.model_validate(order(c.pid, f"{c.pid}-{j}", 1)))
                                               for c in clients for j in range(3)))
                    stolen = []
                    try:
                        async with asyncio.timeout(0.3):
                            async for m in thief.messages:
                                stolen.append(str(m.topic))
                    except TimeoutError:
                        pass
                return stolen, [s.connections for s in services]
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        stolen, connections = asyncio.run(main())
    accepted = [c.stats["accepted"] for c in cores]
    assert stolen == [] and connections == [1, 1]
    assert sum(accepted) == 21 and min(accepted) > 0, accepted
    for c in cores:
        c.ledger.close()


def test_worker_accounts_may_not_be_prosumer_ids(tmp_path):
    from testbed.domain.errors import UserError
    from testbed.platform.acl import acl_text, write_acl

    assert "user platform-w1\ntopic readwrite fpp/v1/#" in acl_text(2) and "platform-w1" not in acl_text(1)
    with pytest.raises(UserError, match="collide with platform worker accounts"):
        write_acl(["p0", "platform-w1"], tmp_path / "acl", workers=2)


@needs_pg
def test_a_worker_on_a_broker_without_mqtt5_is_one_clear_error(tmp_path, prefix, capsys):
    """The embedded amqtt broker speaks 3.1.1: a worker says so and stops (exit 2), instead of reconnecting."""
    from testbed.platform.broker import EmbeddedBrokerProcess

    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n  - {id: p0}\n")
    with EmbeddedBrokerProcess() as amqtt:
        code = fpp(["platform", "--workers", "2", "--worker-index", "1", "--broker", amqtt.address.url,
                    "--ledger", PG_URL, "--ledger-prefix", prefix, "--prosumers", str(registry)])
    err = capsys.readouterr().err
    assert code == 2 and "does not speak MQTT 5" in err and "Traceback" not in err


@needs_pg
def test_worker_0_closes_wall_clock_gates_after_open_batches(prefix):
    """On the wall clock worker 0 closes gates itself (close_gate): it too waits for another worker's open
    order batch, clears with that order, and the other worker then refuses the interval as late."""
    a, b = workers(prefix)
    with b.ledger.batch():
        b.handle(p.prosumer_topic("p1", "order"), json.dumps(order("p1", "buy", 1, "buy", 1.0, 0.2)).encode())
        t, cleared = in_thread(a.close_gate, 1, 0.0)
        time.sleep(0.5)
        assert t.is_alive(), "the wall clock closed the gate while worker 1 still held an order for the interval"
    t.join(20)
    result = next(body for kind, body in replies(cleared[0]) if kind == "result")
    assert result["n_orders"] == 1 and result["gate_msg_id"] == "wall-1"
    late = replies(b.handle_batch([(p.prosumer_topic("p1", "order"), json.dumps(order("p1", "x", 1)).encode())]))
    assert [(k, body["code"]) for k, body in late] == [("error", "late")]
    for c in (a, b):
        c.ledger.close()

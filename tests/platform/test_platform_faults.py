"""Faults: the broker restarts mid-run, the platform process is killed mid-interval and restarted.

Both use a broker of their own (really stopped and started again on the same port) and check the ledger
afterwards: every acknowledged order is there exactly once.
"""

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from testbed.platform import protocol as p
from testbed.platform.broker import EmbeddedBrokerProcess, MosquittoBroker, mosquitto_available
from testbed.platform.client import Connection, ProsumerClient
from testbed.platform.ledger import Ledger

from .helpers import close_gate, make_core, order, serving

PIDS = [f"p{i}" for i in range(6)]
PROSUMERS = [(pid, f"bus{i}", None) for i, pid in enumerate(PIDS)]


def own_broker():
    return MosquittoBroker() if mosquitto_available() else EmbeddedBrokerProcess()


def test_broker_restart_mid_run_loses_no_acknowledged_order(ledger_url):
    broker = own_broker().start()
    try:

        async def main():
            core = make_core(*ledger_url, PROSUMERS)
            conn = Connection(broker.address)
            async with serving(core, conn) as service:
                clients = {pid: ProsumerClient(pid, conn, retry_s=0.5) for pid in PIDS}
                for c in clients.values():
                    await c.__aenter__()
                first = [
                    p.Order.model_validate(order(pid, f"{pid}-a{j}", 2)) for pid in PIDS for j in range(3)
                ]
                acked = list(await asyncio.gather(*(clients[m.prosumer].submit(m) for m in first)))
                broker.stop()  # the broker process really goes away
                second = [
                    p.Order.model_validate(order(pid, f"{pid}-b{j}", 2)) for pid in PIDS for j in range(3)
                ]
                pending = [asyncio.create_task(clients[m.prosumer].submit(m)) for m in second]
                await asyncio.sleep(1.0)
                assert not any(t.done() for t in pending)  # nobody can be acknowledged without a broker
                broker.start()  # same port
                acked += await asyncio.gather(*pending)
                # a fresh order after the restart: proves the client resubscribed to its ack topic
                acked.append(await clients["p0"].submit(p.Order.model_validate(order("p0", "p0-c", 2))))
                reconnects = [c.connections for c in clients.values()] + [service.connections]
                for c in clients.values():
                    await c.__aexit__(None, None, None)
            return core, acked, reconnects

        core, acked, reconnects = asyncio.run(main())
    finally:
        broker.close()
    assert all(n >= 2 for n in reconnects), reconnects
    stored = sorted(m.msg_id for m in core.ledger.messages("order", 2))
    assert stored == sorted({a.msg_id for a in acked}) and len(stored) == 37
    core.ledger.close()


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _platforms_reaped():
    """Every platform process a test started is ended and its stdout pipe closed when the test ends (a pipe
    left to the garbage collector is reported as an unclosed file in whichever test runs next)."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def start_platform(broker, url, prefix, registry, tmp_path):
    with open(tmp_path / "platform.log", "ab") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "testbed",
                "platform",
                "--broker",
                broker.address.url,
                "--ledger",
                url,
                "--ledger-prefix",
                prefix,
                "--prosumers",
                str(registry),
            ],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            cwd=tmp_path,
        )
    STARTED.append(proc)
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise RuntimeError(f"platform did not start: {line!r} {(tmp_path / 'platform.log').read_text()}")
    return proc


def test_platform_killed_mid_interval_and_restarted(tmp_path, ledger_url):
    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n" + "".join(f"  - {{id: {pid}, bus: b{pid}}}\n" for pid in PIDS))
    url, prefix = ledger_url
    broker = own_broker().start()
    proc = start_platform(broker, url, prefix, registry, tmp_path)
    try:

        async def main():
            nonlocal proc
            conn = Connection(broker.address)
            clients = {pid: ProsumerClient(pid, conn, retry_s=0.5) for pid in PIDS}
            for c in clients.values():
                await c.__aenter__()
            first = [
                p.Order.model_validate(order(pid, f"{pid}-a{j}", 5, **side(pid)))
                for pid in PIDS
                for j in range(4)
            ]
            acked = list(await asyncio.gather(*(clients[m.prosumer].submit(m) for m in first)))
            second = [
                p.Order.model_validate(order(pid, f"{pid}-b{j}", 5, **side(pid)))
                for pid in PIDS
                for j in range(4)
            ]
            pending = [asyncio.create_task(clients[m.prosumer].submit(m)) for m in second]
            await asyncio.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)  # mid-interval, some of the second batch in flight
            proc.wait()
            await asyncio.sleep(0.5)
            proc = await asyncio.to_thread(start_platform, broker, url, prefix, registry, tmp_path)
            acked += await asyncio.gather(*pending)
            for c in clients.values():
                await c.__aexit__(None, None, None)
            # the clock closes the gate; the platform is killed right after and the clock retries
            result = await close_gate(conn, 5, "gate-5", 4500.0)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc = await asyncio.to_thread(start_platform, broker, url, prefix, registry, tmp_path)
            again = await close_gate(conn, 5, "gate-5", 4500.0)
            return acked, result, again

        acked, result, again = asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.close()
    led = Ledger(url, prefix=prefix)
    stored = [m.msg_id for m in led.messages("order", 5)]
    assert sorted(stored) == sorted({a.msg_id for a in acked}) and len(stored) == 48
    # sellers p0, p2, p4 offer 3 x 8 kW at 0.15, buyers p1, p3, p5 bid for 3 x 8 kW at 0.20: all 24 kW trade
    assert result["status"] == "optimal" and again == result
    ledger_trades = [(t[2], t[3], t[4]) for t in led.trades()]
    assert ledger_trades == [(t["seller"], t["buyer"], t["p_kw"]) for t in result["trades"]]
    assert sum(t[2] for t in ledger_trades) == pytest.approx(24.0)
    assert [r[0] for r in led.intervals()] == [5]
    led.close()


def side(pid: str) -> dict:
    return {"side": "sell", "price": 0.15} if int(pid[1:]) % 2 == 0 else {"side": "buy", "price": 0.20}


def test_group_commit_killed_between_batches_loses_no_acknowledged_order(tmp_path, sqlite_url):
    """Six agents stream 40 orders each while the platform is SIGKILLed three times. Right after each kill,
    before the restart, every order acknowledged so far is in the ledger (an ack follows its batch's
    commit); at the end every order is there exactly once, however the batches fell."""
    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n" + "".join(f"  - {{id: {pid}, bus: b{pid}}}\n" for pid in PIDS))
    url, prefix = sqlite_url
    broker = own_broker().start()
    proc = start_platform(broker, url, prefix, registry, tmp_path)
    checked: list[int] = []
    try:

        async def stream(client: ProsumerClient, acked: list[str]) -> None:
            for j in range(40):
                m = p.Order.model_validate(order(client.pid, f"{client.pid}-s{j}", 3, **side(client.pid)))
                acked.append((await client.submit(m)).msg_id)

        async def main():
            nonlocal proc
            conn = Connection(broker.address)
            clients = [ProsumerClient(pid, conn, retry_s=0.3, give_up_s=60) for pid in PIDS]
            for c in clients:
                await c.__aenter__()
            acked: list[str] = []
            tasks = [asyncio.create_task(stream(c, acked)) for c in clients]
            for _ in range(3):
                n = len(acked)
                while len(acked) < n + 30:  # let some batches commit and be acknowledged
                    await asyncio.sleep(0.005)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                seen = list(acked)  # acknowledged before the kill (no platform now: no new acks)
                led = Ledger(url, prefix=prefix)
                stored = {m.msg_id for m in led.messages("order", 3)}
                led.close()
                assert set(seen) <= stored, sorted(set(seen) - stored)[:5]
                checked.append(len(seen))
                proc = await asyncio.to_thread(start_platform, broker, url, prefix, registry, tmp_path)
            await asyncio.gather(*tasks)
            for c in clients:
                await c.__aexit__(None, None, None)
            return acked

        acked = asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.close()
    assert len(checked) == 3 and checked[0] >= 30
    led = Ledger(url, prefix=prefix)
    stored = [m.msg_id for m in led.messages("order", 3)]
    led.close()
    assert len(stored) == len(set(stored)) == 240
    assert set(acked) == set(stored)


def test_platform_killed_mid_contract_resumes_from_the_ledger_and_pays_once(tmp_path, sqlite_url):
    """A grid-service contract through a platform process killed twice: after the offers, and right after the
    settlement; the operator's retries get the stored results and nobody is awarded or paid twice."""
    from testbed.platform.services_client import ServicesAccount
    from tests.platform.test_platform_services import CONTRACT, offer

    registry = tmp_path / "prosumers.yaml"
    registry.write_text("prosumers:\n  - {id: h1, bus: b1}\n  - {id: h2, bus: b1}\n")
    url, prefix = sqlite_url
    broker = own_broker().start()
    proc = start_platform(broker, url, prefix, registry, tmp_path)

    def restart():
        nonlocal proc
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = start_platform(broker, url, prefix, registry, tmp_path)

    try:

        async def main():
            conn = Connection(broker.address)
            async with ServicesAccount("operator", conn, operator=True, client_id="op", retry_s=0.5) as op, \
                    ServicesAccount("h1", conn, client_id="h1", retry_s=0.5) as h1, \
                    ServicesAccount("h2", conn, client_id="h2", retry_s=0.5) as h2:
                await op.request("contract", {"schema": "fpp.contract/1", "msg_id": "c1", "contract": CONTRACT})
                for acc in (h1, h2):
                    await acc.request("service_offer", offer(acc.account, f"o-{acc.account}", cap=6.0))
                await asyncio.to_thread(restart)  # killed after the offers were acknowledged
                sel = await op.request("close", {"schema": "fpp.service_close/1", "msg_id": "close-1",
                                                 "contract_id": "dso-trafo-0"})
                for acc in (h1, h2):
                    await acc.request("baseline", {"schema": "fpp.baseline/1", "msg_id": f"b-{acc.account}",
                                                   "prosumer": acc.account, "contract_id": "dso-trafo-0",
                                                   "p_baseline_kw": 0.0})
                await op.request("dispatch", {"schema": "fpp.service_dispatch/1", "msg_id": "d1",
                                              "contract_id": "dso-trafo-0", "step_s": 900.0, "required_kw": [10.0] * 4})
                for acc in (h1, h2):
                    await acc.request("delivery", {"schema": "fpp.delivery/1", "msg_id": f"m-{acc.account}",
                                                   "prosumer": acc.account, "contract_id": "dso-trafo-0",
                                                   "step_s": 900.0, "p_meter_kw": [5.0] * 4})
                first = await op.request("settle", {"schema": "fpp.service_settle/1", "msg_id": "s1",
                                                    "contract_id": "dso-trafo-0"})
                await asyncio.to_thread(restart)  # killed right after settling; the operator asks again
                again = await op.request("settle", {"schema": "fpp.service_settle/1", "msg_id": "s1",
                                                    "contract_id": "dso-trafo-0"})
                return sel, first, again

        sel, first, again = asyncio.run(main())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.close()
    assert sel["status"] == "filled" and sel["members"] == ["h1", "h2"]
    assert again == first and first["result"]["total"] == pytest.approx(1.0)  # delivered in full
    led = Ledger(url, prefix=prefix)
    assert len(led.service_awards()) == 2 and len(led.service_settlements()) == 2
    assert [r[2] for r in led.contracts()] == ["settled"]
    led.close()

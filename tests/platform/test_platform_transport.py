"""The two transports of the market: ``mqtt`` (platform process, broker) and ``inproc`` (the same core, ledger
and encoded messages in the bridge's process) give the same ledger and the same market KPIs."""

import json

import pytest

from testbed.domain.prosumer import Tariff
from testbed.platform.kpis import kpis_from_ledger
from tests.platform.test_platform_bridge import run_world

TARIFF = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)


def ledger_content(led):
    """Everything a market run leaves in its ledger, in order (message payloads by sender and id)."""
    msgs = sorted(
        (m.sender, m.msg_id, m.kind, m.interval, m.hash, json.dumps(m.payload, sort_keys=True))
        for kind in ("order", "offer", "telemetry")
        for m in led.messages_of_kind(kind)
    )
    return {
        "intervals": [(k, st, g, t, json.loads(res)) for k, st, g, t, res in led.intervals()],
        "trades": led.trades(),
        "settlements": led.settlements(),
        "provenance": led.provenance(),
        "messages": msgs,
    }


@pytest.mark.parametrize("mechanism", ["double-auction", "pool"])
def test_inproc_and_mqtt_give_the_same_ledger_and_kpis(broker, tmp_path, mechanism):
    premiums = {"p 01": 0.02, "p 02": 0.02}
    runs = {}
    for transport in ("mqtt", "inproc"):
        (tmp_path / transport).mkdir()
        led = run_world(broker, tmp_path / transport, mechanism, premiums, transport=transport)
        try:
            runs[transport] = (ledger_content(led), kpis_from_ledger(led, TARIFF))
        finally:
            led.close()
    (mq_ledger, mq_kpis), (ip_ledger, ip_kpis) = runs["mqtt"], runs["inproc"]
    # the runs are not empty: intervals 1..3 clear with trades, 0..2 are settled from telemetry
    assert len(mq_ledger["intervals"]) == 4 and len(mq_ledger["trades"]) >= 3
    assert any(s[2] == "imbalance" for s in mq_ledger["settlements"])
    assert ip_ledger == mq_ledger
    assert ip_kpis == mq_kpis


def test_inproc_sends_a_batch_again_when_its_commit_failed(tmp_path):
    """The hub answers nothing of a batch whose commit failed and hands it to the core again: the agents' orders
    are then acknowledged once (not as duplicates) and stored once."""
    import asyncio

    from testbed.platform import protocol as p
    from testbed.platform.inproc import InprocPlatform, InprocProsumerClient

    from .helpers import order
    from .test_platform_group_commit import FailingCommit

    platform = InprocPlatform(f"sqlite:///{tmp_path}/l.db", [("p0", "b0", None), ("p1", "b1", None)])

    async def main():
        hub = platform.open()
        hub.core.ledger._conn = FailingCommit(hub.core.ledger._conn)  # the first COMMIT fails
        clients = [await InprocProsumerClient(pid, hub).__aenter__() for pid in ("p0", "p1")]
        async with asyncio.timeout(10):
            acks = await asyncio.gather(
                *(c.submit(p.Order.model_validate(order(c.pid, f"{c.pid}-1", 1))) for c in clients)
            )
        return hub, acks

    hub, acks = asyncio.run(main())
    assert [(a.msg_id, a.duplicate) for a in acks] == [("p0-1", False), ("p1-1", False)]
    assert hub.core.stats["failed_batches"] == 1 and hub.batches == 2
    assert hub.core.ledger.count_messages("order") == 2
    hub.close()


def test_inproc_with_grid_service_contracts_is_one_clear_error(capsys):
    """The grid-service contracts speak MQTT to the platform process: ``inproc`` cannot carry them."""
    from pathlib import Path

    from testbed.cli import main as fpp

    fpp_yaml = Path(__file__).resolve().parents[2] / "scenarios" / "fpp.yaml"
    assert fpp(["validate", str(fpp_yaml), "--set", "market.transport=inproc"]) == 2
    err = capsys.readouterr().err
    assert "market.transport: inproc cannot carry services:" in err and "Traceback" not in err
    assert fpp(["validate", str(fpp_yaml), "--set", "market.transport=mqtt"]) == 0


def test_a_client_forgets_replies_of_past_intervals_once_told():
    """The bridge calls ``forget_before(k)`` each interval: a year's replies are not kept (8.6 GB before)."""
    from testbed.platform import codec
    from testbed.platform.client import ProsumerClient

    c = ProsumerClient("p1", None)  # never connected: only its bookkeeping is used here
    for k in (3, 4, 5):
        c._on_message("fpp/v1/p/p1/dispatch", json.dumps(
            {"schema": "fpp.dispatch/1", "interval": k, "prosumer": "p1", "p_kw": float(k)}).encode())
    c._on_message("fpp/v1/p/p1/ack", json.dumps(
        {"schema": "fpp.ack/1", "msg_id": "m1", "kind": "order", "interval": 5}).encode())
    assert sorted(c.dispatch) == [3, 4, 5] and len(c.acks) == 1
    assert isinstance(c.acks[0], codec.AckS)
    c.forget_before(5)
    assert c.dispatch == {5: 5.0} and c.acks == []

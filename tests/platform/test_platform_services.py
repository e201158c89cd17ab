"""Grid-service contracts on the platform core (no broker): advertise, offer, select, dispatch, deliver, settle.

The numbers are worked by hand from docs/fpp.md: a 10 kW up contract for one hour at 0.10 EUR/(kW·h) pays
1.00 EUR of availability; with a pro-rata penalty a coalition that delivers 7.5 of 10 kWh is paid 0.75.
"""

import json

import pytest

from testbed.platform import protocol as p
from testbed.platform import services_protocol as sp
from tests.platform.helpers import make_core

WINDOW = {"start": "2026-07-01T18:00:00", "end": "2026-07-01T19:00:00"}
CONTRACT = {
    "id": "dso-trafo-0", "buyer": "dso", "service": {"kind": "congestion_relief", "element": "trafo:0"},
    "window": WINDOW, "direction": "up", "capacity_kw": 10.0,
    "location": {"eligible_buses": {"b1": 1.0, "b2": 0.8}, "min_sensitivity": 0.5}, "confidence": 0.9,
    "availability_price_per_kw_h": 0.10, "utilisation_price_per_kwh": 0.0, "penalty": {"kind": "pro_rata"},
    "currency": "EUR",
}


def send(core, topic, data):
    return core.handle(topic, json.dumps(data).encode())


def op(core, kind, msg_id, **fields):
    schema = {"contract": "fpp.contract/1", "close": "fpp.service_close/1", "dispatch": "fpp.service_dispatch/1",
              "settle": "fpp.service_settle/1"}[kind]
    return send(core, f"{sp.SERVICES}/{kind}", {"schema": schema, "msg_id": msg_id, **fields})


def offer(pid, msg_id, bus="b1", cap=6.0, sd=0.0, price=0.02, **extra):
    return {"schema": "fpp.service_offer/1", "msg_id": msg_id, "contract_id": "dso-trafo-0", "member": pid,
            "bus": bus, "capacity_kw": cap, "capacity_sd_kw": sd, "price_per_kw_h": price, **extra}


def kinds(outs):
    return [(o.topic.rsplit("/", 1)[-1], json.loads(o.payload)) for o in outs]


def errors(outs):
    return [d["code"] for k, d in kinds(outs) if k == "error"]


@pytest.fixture
def core(sqlite_url):
    return make_core(sqlite_url[0], sqlite_url[1], [("h1", "b1", None), ("h2", "b1", None), ("h3", "b2", None),
                                          ("h9", "b9", None)])


def advertise(core):
    outs = op(core, "contract", "c1", contract=CONTRACT)
    assert [k for k, _ in kinds(outs)] == ["0", "ack"]  # the retained advert on .../advert/0, then the ack
    assert outs[0].retain


def test_bad_offers_get_protocol_errors_and_are_never_applied(core):
    advertise(core)
    topic = p.prosumer_topic("h1", "service_offer")
    cases = {
        "invalid": offer("h1", "o1", cap=-2.0),  # negative capacity
        "invalid_offer": offer("h1", "o2", window={"start": "2026-07-01T17:00:00", "end": "2026-07-01T19:00:00"}),
        "unknown_contract": offer("h1", "o3", contract_id="nope"),
        "identity": offer("h2", "o4"),  # another prosumer's id on h1's topic
    }
    for code, data in cases.items():
        assert errors(send(core, topic, data)) == [code], code
    assert errors(send(core, topic, offer("h1", "o5", capacity_kw="6"))) == ["invalid"]  # no string -> number
    assert errors(send(core, topic, offer("h1", "o6", capacity_kw=True))) == ["invalid"]  # no bool -> number
    assert errors(send(core, p.prosumer_topic("h9", "service_offer"), offer("h9", "o7", bus="b9"))) == ["invalid_offer"]
    assert errors(send(core, topic, offer("h1", "o8", bus="b2", sensitivity=0.8))) == ["invalid_offer"]  # not its bus
    assert core.ledger.count_messages("service_offer") == 0


def test_life_cycle_settles_by_hand_and_a_failing_member_pays_its_own_penalty(core):
    advertise(core)
    for pid, bus, cap in (("h1", "b1", 6.0), ("h2", "b1", 6.0), ("h3", "b2", 2.0)):
        outs = send(core, p.prosumer_topic(pid, "service_offer"), offer(pid, f"o-{pid}", bus=bus, cap=cap))
        assert [k for k, _ in kinds(outs)] == ["ack"]
    retry = send(core, p.prosumer_topic("h1", "service_offer"), offer("h1", "o-h1", cap=6.0))
    assert kinds(retry)[0][1]["duplicate"] is True  # idempotent
    assert errors(send(core, p.prosumer_topic("h1", "service_offer"), offer("h1", "o-h1", cap=5.0))) == ["duplicate_id"]

    outs = op(core, "close", "close-1", contract_id="dso-trafo-0")
    sel = [d for k, d in kinds(outs) if k == "result"][0]
    # h1 + h2 = 12 kW firm (no uncertainty) at 0.02 * 12 = 0.24 EUR beats any set with h3 (h3 counts 1.6 kW)
    assert sel["status"] == "filled" and sel["members"] == ["h1", "h2"]
    assert sel["cost"] == pytest.approx(0.24) and sel["revenue"] == pytest.approx(1.0)
    assert {d["member"] for k, d in kinds(outs) if k == "award"} == {"h1", "h2"}
    assert errors(send(core, p.prosumer_topic("h3", "service_offer"), offer("h3", "late", bus="b2"))) == ["closed"]
    assert errors(send(core, p.prosumer_topic("h3", "baseline"), {
        "schema": "fpp.baseline/1", "msg_id": "b3", "prosumer": "h3", "contract_id": "dso-trafo-0",
        "p_baseline_kw": 0.0})) == ["not_awarded"]
    for pid in ("h1", "h2"):
        outs = send(core, p.prosumer_topic(pid, "baseline"), {
            "schema": "fpp.baseline/1", "msg_id": f"b-{pid}", "prosumer": pid, "contract_id": "dso-trafo-0",
            "p_baseline_kw": -1.0})
        assert errors(outs) == []
    assert errors(op(core, "dispatch", "d0", contract_id="dso-trafo-0", step_s=900.0,
                     required_kw=[10.0] * 3)) == ["invalid"]  # 3 steps of 15 min do not make the hour
    outs = op(core, "dispatch", "d1", contract_id="dso-trafo-0", step_s=900.0, required_kw=[10.0] * 4)
    parts = {d["member"]: d["meter_kw"] for k, d in kinds(outs) if k == "service_dispatch"}
    assert parts == {"h1": [5.0] * 4, "h2": [5.0] * 4}  # 10 kW split by the awards 6:6
    # h1 delivers its 5 kW above its baseline of -1 kW; h2 delivers half of its part
    for pid, meter in (("h1", 4.0), ("h2", 1.5)):
        outs = send(core, p.prosumer_topic(pid, "delivery"), {
            "schema": "fpp.delivery/1", "msg_id": f"m-{pid}", "prosumer": pid, "contract_id": "dso-trafo-0",
            "step_s": 900.0, "p_meter_kw": [meter] * 4})
        assert errors(outs) == []
    outs = op(core, "settle", "s1", contract_id="dso-trafo-0")
    res = [d for k, d in kinds(outs) if k == "result"][0]["result"]
    # delivered (5 + 2.5) kW for 1 h of 10 kWh: pf 0.75; pro rata: availability 1.00, penalty 0.25
    assert res["performance_factor"] == pytest.approx(0.75)
    assert res["penalty"] == pytest.approx(0.25) and res["total"] == pytest.approx(0.75)
    m = res["members"]
    assert m["h1"]["penalty"] == pytest.approx(0.0) and m["h2"]["penalty"] == pytest.approx(0.25)
    # the surplus 1.00 - 0.24 is shared by Shapley; symmetric members get half each, whatever h2 delivered
    assert m["h1"]["shares"]["shapley"] == pytest.approx(0.38) and m["h2"]["shares"]["shapley"] == pytest.approx(0.38)
    assert m["h1"]["payout"] == pytest.approx(0.12 + 0.38) and m["h2"]["payout"] == pytest.approx(0.12 + 0.38 - 0.25)
    assert sum(v["payout"] for v in m.values()) == pytest.approx(res["total"])
    assert set(m["h1"]["shares"]) == {"shapley", "nucleolus", "least-core", "proportional"}
    # a retried settle republishes the stored result and pays nobody twice
    again = op(core, "settle", "s1", contract_id="dso-trafo-0")
    assert kinds(again)[-1][1]["duplicate"] is True
    assert len(core.ledger.service_settlements()) == 2
    assert errors(op(core, "settle", "s2", contract_id="dso-trafo-0")) == ["contract_state"]


def test_a_restarted_platform_resumes_mid_contract_from_the_ledger(sqlite_url):
    c1 = make_core(sqlite_url[0], sqlite_url[1], [("h1", "b1", None)])
    op(c1, "contract", "c1", contract=CONTRACT)
    send(c1, p.prosumer_topic("h1", "service_offer"), offer("h1", "o-h1", cap=12.0))
    op(c1, "close", "close-1", contract_id="dso-trafo-0")
    c1.ledger.close()
    c2 = make_core(sqlite_url[0], sqlite_url[1], [("h1", "b1", None)])  # the platform killed and started again
    assert c2.services.contracts["dso-trafo-0"]["state"] == "awarded"
    again = op(c2, "close", "close-1", contract_id="dso-trafo-0")  # the operator's retry
    assert [k for k, _ in kinds(again)][-1] == "ack" and len(c2.ledger.service_awards()) == 1
    assert errors(op(c2, "contract", "c2", contract=CONTRACT)) == ["duplicate_contract"]


def test_unfilled_contract_reports_its_shortfall_and_bad_contracts_are_refused(core):
    advertise(core)
    send(core, p.prosumer_topic("h1", "service_offer"), offer("h1", "o-h1", cap=4.0))
    sel = [d for k, d in kinds(op(core, "close", "x", contract_id="dso-trafo-0")) if k == "result"][0]
    assert sel["status"] == "unfilled" and sel["shortfall_kw"] == pytest.approx(6.0)
    assert core.ledger.service_awards() == []
    bad = {**CONTRACT, "id": "bad", "capacity_kw": "10"}
    assert errors(op(core, "contract", "c-bad", contract=bad)) == ["invalid_contract"]
    bad = {**CONTRACT, "id": "bad", "location": None}
    assert errors(op(core, "contract", "c-bad2", contract=bad)) == ["invalid_contract"]


def test_over_a_broker_a_bad_offer_is_refused_and_a_good_one_acknowledged(broker, sqlite_url):
    """The same exchange through the service and a real broker: the member's account gets the error code."""
    import asyncio

    from testbed.platform.client import Connection
    from testbed.platform.services_client import ServiceRefused, ServicesAccount
    from tests.platform.helpers import serving

    core = make_core(sqlite_url[0], sqlite_url[1], [("h1", "b1", None)])
    conn = Connection(broker.address)

    async def main():
        async with serving(core, conn), ServicesAccount("operator", conn, operator=True, client_id="t-op") as operator, \
                ServicesAccount("h1", conn, client_id="t-h1") as h1:
            await operator.request("contract", {"schema": "fpp.contract/1", "msg_id": "c1", "contract": CONTRACT})
            try:
                await h1.request("service_offer", offer("h1", "bad", cap=-1.0))
                refused = None
            except ServiceRefused as exc:
                refused = exc.code
            ack = await h1.request("service_offer", offer("h1", "good", cap=11.0))
            sel = await operator.request("close", {"schema": "fpp.service_close/1", "msg_id": "x",
                                                   "contract_id": "dso-trafo-0"})
            async with asyncio.timeout(10):
                while not h1.inbox.get("award"):
                    await asyncio.sleep(0.01)
            return refused, ack, sel, h1.inbox["advert"], h1.inbox["award"]

    refused, ack, sel, adverts, awards = asyncio.run(main())
    assert refused == "invalid" and ack["msg_id"] == "good"
    assert sel["status"] == "filled" and sel["members"] == ["h1"]
    assert adverts[0]["contract"]["id"] == "dso-trafo-0" and awards[0]["capacity_kw"] == 11.0
    core.ledger.close()


def test_a_coalition_of_one_settles_and_a_failure_inside_is_an_error_not_a_crash(core, monkeypatch):
    advertise(core)
    send(core, p.prosumer_topic("h1", "service_offer"), offer("h1", "o-h1", cap=12.0))
    op(core, "close", "close-1", contract_id="dso-trafo-0")
    send(core, p.prosumer_topic("h1", "baseline"), {"schema": "fpp.baseline/1", "msg_id": "b", "prosumer": "h1",
                                                    "contract_id": "dso-trafo-0", "p_baseline_kw": 0.0})
    op(core, "dispatch", "d1", contract_id="dso-trafo-0", step_s=900.0, required_kw=[10.0] * 4)
    send(core, p.prosumer_topic("h1", "delivery"), {"schema": "fpp.delivery/1", "msg_id": "m", "prosumer": "h1",
                                                    "contract_id": "dso-trafo-0", "step_s": 900.0,
                                                    "p_meter_kw": [10.0] * 4})
    import testbed.platform.services_core as sc

    def broken(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(sc, "settle_members", broken)  # a fault no input can produce: a bug in the arithmetic
    assert errors(op(core, "settle", "s0", contract_id="dso-trafo-0")) == ["internal"]
    monkeypatch.undo()
    res = [d for k, d in kinds(op(core, "settle", "s1", contract_id="dso-trafo-0")) if k == "result"][0]["result"]
    assert res["stability"]["shapley"]["in_core"] is True and res["total"] == pytest.approx(1.0)
    assert res["members"]["h1"]["payout"] == pytest.approx(1.0)  # alone it gets the whole contract

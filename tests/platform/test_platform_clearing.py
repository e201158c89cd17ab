"""Clearing through the platform with the market library: hand-computed results, settlement, provenance,
order independence, recovery of an interval closed but not cleared, and idempotent gates."""

import json

import pytest

from testbed.platform import protocol as p
from testbed.platform.kpis import kpis_from_ledger

from .helpers import TARIFF, make_core, order

PROSUMERS = [("p00", "bus0", "green"), ("p01", "bus1", None), ("p02", "bus2", None)]


def gate(core, k, msg_id=None):
    payload = {"schema": "fpp.gate/1", "msg_id": msg_id or f"g{k}", "interval": k, "t_s": 900.0 * k}
    outs = core.handle(p.GATE_TOPIC, json.dumps(payload).encode())
    return {o.topic: json.loads(o.payload) for o in outs}


def send(core, pid, kind, obj):
    return [json.loads(o.payload) for o in core.handle(p.prosumer_topic(pid, kind), json.dumps(obj).encode())]


def worked_example(core, k=1, order_of_arrival=("p00", "p01")):
    msgs = {
        "p00": order("p00", "s1", k, side="sell", q=3.5, price=0.19),
        "p01": order("p01", "b1", k, side="buy", q=2.0, price=0.21),
    }
    for pid in order_of_arrival:
        send(core, pid, "order", msgs[pid])
    return gate(core, k)


def test_double_auction_worked_example_of_the_docs(ledger_url):
    """docs/platform.md: sell 3.5 kW at 0.19, buy 2 kW at 0.21, grid 0.30/0.08.

    Merit order: the bid at 0.21 crosses the ask at 0.19 for 2 kW; the grid's bid at 0.08 does not cross
    the rest of the ask, so Q = 2 kW. The marginal ask is partly filled, so the clearing interval is
    [0.19, 0.19]: price 0.19. For 15 minutes: 0.5 kWh, 0.095 paid by p01 to p00.
    """
    core = make_core(*ledger_url, PROSUMERS)
    out = worked_example(core)
    result = out[p.RESULT_TOPIC]
    assert result["status"] == "optimal" and result["price_per_kwh"] == pytest.approx(0.19, abs=1e-9)
    assert [(t["seller"], t["buyer"], t["p_kw"], t["e_kwh"]) for t in result["trades"]] == [
        ("p00", "p01", pytest.approx(2.0), pytest.approx(0.5))
    ]
    assert out[p.prosumer_topic("p00", "dispatch")]["p_kw"] == pytest.approx(2.0)
    assert out[p.prosumer_topic("p01", "dispatch")]["p_kw"] == pytest.approx(-2.0)
    assert out[p.prosumer_topic("p01", "settlement")]["amount"] == pytest.approx(0.095)
    assert out[p.prosumer_topic("p00", "settlement")]["amount"] == pytest.approx(-0.095)
    assert out[p.CLOCK_ACK_TOPIC]["msg_id"] == "g1"
    # green provenance: p00 is registered green; time = interval start; buses from the registry
    assert core.ledger.provenance() == [(1, 0, 900.0, "p00", "bus0", "p01", "bus1", pytest.approx(0.5))]


def test_telemetry_settles_imbalance_and_bills_beat_retail(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    worked_example(core)
    # p00 exported all 3.5 kW for 15 min (0.875 kWh): 0.375 kWh beyond its trade at 0.08
    (ack, settle) = send(
        core,
        "p00",
        "telemetry",
        {
            "schema": "fpp.telemetry/1",
            "msg_id": "t1",
            "prosumer": "p00",
            "interval": 1,
            "e_export_kwh": 0.875,
            "e_import_kwh": 0.0,
        },
    )
    assert ack["msg_id"] == "t1" and settle["kind"] == "imbalance"
    assert settle["amount"] == pytest.approx(-0.03)
    send(
        core,
        "p01",
        "telemetry",
        {
            "schema": "fpp.telemetry/1",
            "msg_id": "t1",
            "prosumer": "p01",
            "interval": 1,
            "e_export_kwh": 0.0,
            "e_import_kwh": 0.5,
        },
    )
    k = kpis_from_ledger(core.ledger, TARIFF)
    # hand-computed: p00 -0.095 - 0.03 = -0.125 against retail -0.875*0.08 = -0.07; p01 0.095 vs 0.15
    assert k["bills"]["p00"] == pytest.approx({"platform": -0.125, "retail": -0.07, "saving": 0.055})
    assert k["bills"]["p01"] == pytest.approx({"platform": 0.095, "retail": 0.15, "saving": 0.055})
    assert k["traded_kwh"] == pytest.approx(0.5) and k["green_kwh"] == pytest.approx(0.5)


def test_result_does_not_depend_on_arrival_order(sqlite_url, tmp_path):
    a = make_core(*sqlite_url, PROSUMERS)
    b = make_core(f"sqlite:///{tmp_path}/other.db", "fpp_", PROSUMERS)
    for core, arrival in ((a, ("p00", "p01", "p02")), (b, ("p02", "p01", "p00"))):
        msgs = {
            "p00": order("p00", "s", 1, side="sell", q=3.0, price=0.15),
            "p01": order("p01", "b", 1, side="buy", q=2.0, price=0.20),
            "p02": order("p02", "b", 1, side="buy", q=2.0, price=0.20),
        }  # tie with p01
        for pid in arrival:
            send(core, pid, "order", msgs[pid])
        gate(core, 1)
    assert a.ledger.trades() == b.ledger.trades() and a.ledger.settlements() == b.ledger.settlements()
    # the tie at 0.20 shares the 3 kW pro rata: 1.5 kW each
    assert sorted(t[4] for t in a.ledger.trades()) == pytest.approx([1.5, 1.5])


def test_pool_clears_flexibility_offers_at_the_hand_computed_price(ledger_url):
    """Marginal costs: p00 0.01 p + 0.05 on [0, 4], p01 0.02 p + 0.25 on [-3, 0],
    p02 0.02 p + 0.15 on [-2, 1].

    At price 0.13: p00 = min(4, 8) = 4, p01 = clip(-6) = -3, p02 = -1; they balance with no grid, and
    0.13 lies inside the tariff band [0.08, 0.30].
    """
    core = make_core(*ledger_url, PROSUMERS, mechanism="pool")
    for pid, lo, hi, a, b in (
        ("p00", 0, 4, 0.01, 0.05),
        ("p01", -3, 0, 0.02, 0.25),
        ("p02", -2, 1, 0.02, 0.15),
    ):
        send(
            core,
            pid,
            "offer",
            {
                "schema": "fpp.offer/1",
                "msg_id": "o1",
                "prosumer": pid,
                "interval": 1,
                "p_min_kw": lo,
                "p_max_kw": hi,
                "cost_a": a,
                "cost_b": b,
            },
        )
    out = gate(core, 1)
    assert out[p.RESULT_TOPIC]["price_per_kwh"] == pytest.approx(0.13, abs=1e-6)
    dispatch = {pid: out[p.prosumer_topic(pid, "dispatch")]["p_kw"] for pid, _, _ in PROSUMERS}
    assert dispatch == pytest.approx({"p00": 4.0, "p01": -3.0, "p02": -1.0}, abs=1e-6)


def test_interval_closed_but_not_cleared_is_cleared_once_after_a_restart(ledger_url):
    core = make_core(*ledger_url, PROSUMERS)
    send(core, "p00", "order", order("p00", "s1", 1, side="sell", q=3.5, price=0.19))
    send(core, "p01", "order", order("p01", "b1", 1, side="buy", q=2.0, price=0.21))
    core.ledger.close_interval(1, "g1", 900.0)  # the gate was committed, then the process died
    core.ledger.close()
    again = make_core(*ledger_url, [])
    outs = again.recover()
    assert any(o.topic == p.RESULT_TOPIC for o in outs)
    assert len(again.ledger.trades()) == 1
    # the clock retries its gate: the stored result again, marked duplicate, nothing written twice
    out = gate(again, 1, "g1")
    assert out[p.CLOCK_ACK_TOPIC]["duplicate"] is True and len(out[p.RESULT_TOPIC]["trades"]) == 1
    assert len(again.ledger.trades()) == 1 and len(again.ledger.settlements()) == 2
    assert again.recover() == []

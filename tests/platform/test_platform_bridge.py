"""The mosaik bridge in a small world of its own: a toy fleet, the bridge, and the platform as a process."""

import contextlib
import json
import math
import sys

import mosaik
import mosaik_api_v3
import pytest

from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform.ledger import Ledger

FLEET = {  # constant load and PV per prosumer [kW]
    "p 00": {"load_kw": 0.5, "pv_kw": 4.0},
    "p 01": {"load_kw": 2.0, "pv_kw": 0.0},
    "p 02": {"load_kw": 1.0, "pv_kw": 0.0},
    "p 03": {"load_kw": 1.5, "pv_kw": 3.0},
}
IDS = list(FLEET)
SEEN: list[dict] = []  # what the toy fleet received from the bridge, step by step


class ToyFleet(mosaik_api_v3.Simulator):
    """Prosumers with constant load and PV, no battery; outputs arrays in IDS order like the real fleet."""

    def __init__(self):
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Fleet": {
                        "public": True,
                        "params": [],
                        "attrs": [
                            "load_kw",
                            "pv_kw",
                            "ev_kw",
                            "soc",
                            "p_kw",
                            "p_trade_kw",
                            "p_net_target_kw",
                        ],
                    }
                },
            }
        )

    def create(self, num, model):
        return [{"eid": "fleet", "type": model}]

    def step(self, time, inputs, max_advance):
        got = inputs.get("fleet", {})
        SEEN.append({a: next(iter(v.values())) for a, v in got.items()})
        return time + 1

    def get_data(self, outputs):
        out = {
            "load_kw": [v["load_kw"] for v in FLEET.values()],
            "pv_kw": [v["pv_kw"] for v in FLEET.values()],
            "ev_kw": [0.0] * len(FLEET),
            "soc": [0.0] * len(FLEET),
            "p_kw": [v["pv_kw"] - v["load_kw"] for v in FLEET.values()],
        }
        return {"fleet": {a: out[a] for a in outputs["fleet"]}}


sys.modules.setdefault("fpp_test_toy_fleet", sys.modules[__name__])


def run_world(broker, tmp_path, mechanism, premiums, transport="mqtt"):
    """Run the toy fleet and the bridge for four 15-minute intervals; return the ledger. ``transport``
    ``inproc``: the same platform core and ledger inside the bridge, no process and no broker."""
    SEEN.clear()
    url = f"sqlite:///{tmp_path}/ledger.db"
    mqtt_id = {wid: wid.replace(" ", "_") for wid in IDS}
    prosumers = [
        {"id": mqtt_id[w], "bus": f"bus{i}", "energy_class": "green" if v["pv_kw"] else None}
        for i, (w, v) in enumerate(FLEET.items())
    ]
    platform = (
        contextlib.nullcontext()
        if transport == "inproc"
        else PlatformProcess(
            prosumers,
            ledger_url=url,
            broker_url=broker.address.url,
            interval_s=900.0,
            mechanism=mechanism,
            workdir=tmp_path / "platform",
        )
    )
    with platform:
        world = mosaik.World(
            {
                "Fleet": {"python": "fpp_test_toy_fleet:ToyFleet"},
                "Bridge": {"python": "simulators.market_bridge.sim:MarketBridgeSim"},
            },
            skip_greetings=True,
            configure_logging=False,
        )
        fleet = world.start("Fleet", time_resolution=60.0).Fleet()
        bridge = world.start("Bridge", time_resolution=60.0).MarketBridge(
            agents=[
                {
                    "pid": mqtt_id[w],
                    "source_id": w,
                    "preferences": {"class_premium_per_kwh": {"green": premiums.get(w, 0.0)}},
                }
                for w in IDS
            ],
            mechanism=mechanism,
            fleet_ids=IDS,
            broker_url=broker.address.url,
            interval_s=900.0,
            tariff={"import_price_per_kwh": 0.30, "export_price_per_kwh": 0.08},
            run_id="t1",
            transport=transport,
            platform={"ledger_url": url, "prosumers": [[r["id"], r["bus"], r["energy_class"]] for r in prosumers]},
        )
        inputs = ("load_kw", "pv_kw", "ev_kw", "soc", "p_kw")
        world.connect(fleet, bridge, *inputs, time_shifted=True, initial_data={a: {} for a in inputs})
        world.connect(bridge, fleet, "p_trade_kw", "p_net_target_kw")
        world.run(until=60, print_progress=False)  # 60 steps of 60 s: intervals 0..3
    return Ledger(url)


def test_bridge_runs_a_market_each_interval_in_simulation_time(broker, tmp_path):
    """Four 15-minute intervals at 60 s steps; every interval has the same book (persistence forecast):

    sells p00 3.5 kW and p03 1.5 kW at 0.19 (green, registered with PV), buys p01 2 kW and p02 1 kW at
    0.19 (mid-spread of 0.30/0.08, no premiums). Bids and asks meet at 0.19 for 3 kW; the two asks share
    it pro rata to their 3.5 : 1.5 kW: p00 sells 2.1 kW, p03 0.9 kW. Price 0.19.
    """
    led = run_world(broker, tmp_path, "double-auction", {})
    rows = led.intervals()
    assert [r[0] for r in rows] == [0, 1, 2, 3] and all(r[1] == "cleared" for r in rows)
    # interval 0: the agents have measured nothing yet at step 0, so nobody bids
    assert json.loads(rows[0][4])["status"] == "no_orders"
    assert SEEN[0]["p_trade_kw"] == {w: 0.0 for w in IDS}
    trade_at_15 = SEEN[15]["p_trade_kw"]  # interval 1's result acts in the step of its gate closure
    assert trade_at_15 == pytest.approx({"p 00": 2.1, "p 01": -2.0, "p 02": -1.0, "p 03": 0.9})
    prices = {t[6] for t in led.trades()}
    assert len(prices) == 1 and math.isclose(prices.pop(), 0.19, abs_tol=1e-9)
    # telemetry for every interval but the last, whose last step the bridge never sees
    tele = led.messages_of_kind("telemetry")
    assert sorted({m.interval for m in tele}) == [0, 1, 2] and len(tele) == 12
    # p00 exported 3.5 kW for 15 min = 0.875 kWh, sold 2.1 kW = 0.525 kWh: 0.35 kWh at 0.08 imbalance
    imb = {(r[0], r[1]): r[5] for r in led.settlements() if r[2] == "imbalance"}
    assert imb[(1, "p_00")] == pytest.approx(-0.35 * 0.08)


def test_bridge_sends_flexibility_offers_to_the_pool(broker, tmp_path):
    """The same fleet under the pool, buyers with a green premium of 0.02 (bids 0.21, asks 0.19).

    Offers mirror the orders with marginal cost 0.001 p + price: sellers p = 1000 (lambda - 0.19), buyers
    take their whole 2 and 1 kW while lambda <= 0.208. Balance: 2 * 1000 (lambda - 0.19) = 3 kW, so
    lambda = 0.1915 and each seller sells 1.5 kW (p03's cap), inside the tariff band.
    """
    led = run_world(broker, tmp_path, "pool", {"p 01": 0.02, "p 02": 0.02})
    assert [r[1] for r in led.intervals()] == ["cleared"] * 4
    result = json.loads(led.intervals()[1][4])
    assert result["status"] == "optimal" and result["price_per_kwh"] == pytest.approx(0.1915, abs=1e-6)
    assert SEEN[15]["p_trade_kw"] == pytest.approx(
        {"p 00": 1.5, "p 01": -2.0, "p 02": -1.0, "p 03": 1.5}, abs=1e-6
    )
    assert led.count_messages("offer") == 12 and led.count_messages("order") == 0  # intervals 1..3

"""The comparison's pure layer: a two-home day worked by hand for every strategy, the welfare efficiency, the
bills adding up to the community cost, the optimum never beaten, the EV service kept, limits named.

The two-home day (4 steps of 1 h; price basis: import 0.30, export 0.08 per kWh):

- home A: PV and a battery (2 kWh, 2 kW, round trip 0.81 so sqrt = 0.9, empty at the start), PV minus
  load ``[2, 0, -1, -1]`` kW; home B: no devices, ``[-1, -1, -1, -1]`` kW.
- retail (self-consumption): A charges 2 kW at step 0 (stores 1.8 kWh), discharges 1 kW at step 2 (draws
  1.111 kWh, 0.6889 left) and 0.62 kW at step 3 (all that is left: 0.6889 * 0.9); A imports 0.38 kWh,
  B 4 kWh: 0.114 + 1.200 = **1.314**.
- central: the community's net is ``[1, -1, -2, -2]``; storing the step-0 surplus (1 kW, worth 0.08) returns
  0.81 kWh worth 0.30 each; storing imports does not pay (0.81 * 0.30 < 0.30). The community imports
  5 - 0.81 = 4.19 kWh: **1.257**.
- tou (signal: import ``[0.20, 0.20, 0.45, 0.45]``, export 0.08): A stores all 2 kW of PV at step 0
  (1.8 kWh) and tops up 0.2 kWh from the grid at 0.20 (0.2222 kW at step 1), then covers 1.8 of its 2 kWh of
  evening deficit; A imports 0.2222 + 0.2 kWh. At the basis: 0.4222 * 0.30 + 1.2 = **1.32667**; under the
  TOU tariff itself A pays 0.2 * 0.2222 + 0.45 * 0.2 = 0.13444 and B 1.30.
- p2p: at step 0 A sells 1 kW to B at 0.19 and its battery takes the other 1 kW (0.9 kWh, which gives
  0.81 kWh at step 2 and 0 at step 3): A gets 0.19 and imports 0.19 + 1 kWh (0.357): 0.167; B pays 0.19
  and imports 3 kWh (0.90): 1.09; together **1.257** (the central dispatch, reached by trading).
- welfare efficiency: retail 0, central 1, tou (1.314 - 1.32667) / (1.314 - 1.257) = -0.2222, p2p 1.
"""

from datetime import datetime

import numpy as np
import pytest

from simulators.prosumers.fleet import self_consumption_kw
from testbed.domain.compare import coordination
from testbed.domain.compare.bills import (
    community_bills,
    community_cost_at_connection,
    gini,
    market_bills,
    meter_bills,
    spread_of_gains,
    welfare_efficiency,
)
from testbed.domain.compare.dispatch import InfeasibleLimits, community_schedule, home_schedules
from testbed.domain.compare.homes import Homes, ev_day
from testbed.domain.compare.strategies import parse_strategies
from testbed.domain.compare.tariff import Prices, tou_prices
from testbed.domain.der.battery import BatteryBank
from testbed.domain.errors import UserError
from testbed.domain.market.network import NetworkRows
from testbed.domain.prosumer import Tariff

BASIS = Prices(np.full(4, 0.30), np.full(4, 0.08))
TOU = Prices(np.array([0.20, 0.20, 0.45, 0.45]), np.full(4, 0.08))
TOL = 1e-6  # currency; the LPs are solved by HiGHS's simplex to ~1e-9


def _no_ev(T, n):
    z = np.zeros(n)
    return dict(ev_capacity_kwh=z, ev_charge_kw=z, ev_efficiency=np.ones(n), ev_initial_kwh=z,
                ev_home=np.zeros((T, n), bool), ev_trip_kwh=np.zeros((T, n)), ev_ref_kw=np.zeros((T, n)))


def two_homes() -> Homes:
    return Homes(
        dt_h=1.0,
        net_kw=np.array([[2.0, -1], [0, -1], [-1, -1], [-1, -1]]),
        bus=np.array([0, 1]),
        n_bus=2,
        battery={"capacity_kwh": np.array([2.0, 0]), "power_kw": np.array([2.0, 0]),
                 "round_trip_efficiency": np.array([0.81, 1.0]), "initial_soc": np.zeros(2),
                 "soc_min": np.zeros(2), "soc_max": np.ones(2)},
        **_no_ev(4, 2),
    )


def retail_dispatch(h: Homes) -> np.ndarray:
    """The fleet's own self-consumption controller over the one battery model."""
    bank = BatteryBank(**h.battery)
    p = np.empty_like(h.net_kw)
    for t in range(h.n_steps):
        lo, hi = bank.limits_kw(h.dt_h)
        p[t] = h.net_kw[t] + bank.apply(self_consumption_kw(h.net_kw[t], lo, hi), h.dt_h)
    return p


def test_two_home_day_by_hand():
    h = two_homes()
    retail = meter_bills(retail_dispatch(h), BASIS, 1.0)
    assert retail == pytest.approx([0.114, 1.2], abs=TOL)
    assert retail.sum() == pytest.approx(1.314, abs=TOL)

    central = community_schedule(h, BASIS)
    assert central.objective == pytest.approx(1.257, abs=TOL)
    c_bills = community_bills(central.p_kw, BASIS, 1.0)
    assert c_bills.sum() == pytest.approx(1.257, abs=TOL)
    assert central.battery_kw[0, 0] == pytest.approx(-1.0, abs=1e-6)  # stores the surplus only

    tou = home_schedules(h, TOU)
    assert meter_bills(tou.p_kw, BASIS, 1.0).sum() == pytest.approx(1.2 + 0.4222222 * 0.30, abs=TOL)
    assert meter_bills(tou.p_kw, TOU, 1.0) == pytest.approx([0.2 * 0.2222222 + 0.45 * 0.2, 1.30], abs=TOL)
    assert tou.objective == pytest.approx(0.1344444 + 1.30, abs=TOL)

    p2p_p = np.array([[1.0, -1], [0, -1], [-0.19, -1], [-1, -1]])
    trade = np.array([[1.0, -1], [0, 0], [0, 0], [0, 0]])
    price = np.array([0.19, np.nan, np.nan, np.nan])
    p2p = market_bills(p2p_p, trade, price, BASIS, 1.0)
    assert p2p == pytest.approx([0.167, 1.09], abs=TOL)

    costs = {"retail": 1.314, "central": c_bills.sum(), "tou": 1.3266667, "p2p": p2p.sum()}
    eff = {k: welfare_efficiency(costs["retail"], v, costs["central"]) for k, v in costs.items()}
    assert eff["retail"] == 0 and eff["central"] == pytest.approx(1.0, abs=1e-9)
    assert eff["tou"] == pytest.approx(-0.2222222, abs=1e-5) and eff["p2p"] == pytest.approx(1.0, abs=1e-5)
    spread = spread_of_gains(meter_bills(tou.p_kw, BASIS, 1.0), retail)
    assert spread["homes_worse_off"] == 1 and spread["worst_loss"] == pytest.approx(0.0126667, abs=TOL)


def test_trades_without_a_price_are_refused():
    with pytest.raises(ValueError, match="no market price"):
        market_bills(np.zeros((1, 2)), np.array([[1.0, -1]]), np.array([np.nan]), Prices.flat(
            Tariff(import_price_per_kwh=0.3, export_price_per_kwh=0.08), 1), 1.0)


def random_homes(seed: int, n=12, T=24) -> Homes:
    rng = np.random.default_rng(seed)
    hours = np.arange(T)
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None)[:, None] * rng.uniform(0, 8, n)
    load = rng.uniform(0.2, 2.5, (T, n))
    has_b = rng.random(n) < 0.6
    has_e = rng.random(n) < 0.4
    ev = {"capacity_kwh": np.where(has_e, 40.0, 0), "charge_kw": np.where(has_e, 7.0, 0),
          "charge_efficiency": np.where(has_e, 0.95, 1.0), "trip_kwh": np.where(has_e, rng.uniform(4, 12, n), 0),
          "depart_h": np.where(has_e, 7.5, 0), "arrive_h": np.where(has_e, 17.25, 1.0),
          "initial_soc": np.where(has_e, 0.5, 0)}
    day = ev_day(ev, datetime(2016, 7, 24), T, 3600)
    return Homes(
        dt_h=1.0, net_kw=pv - load, bus=rng.integers(0, 3, n), n_bus=3,
        battery={"capacity_kwh": np.where(has_b, 10.0, 0), "power_kw": np.where(has_b, 5.0, 0),
                 "round_trip_efficiency": np.where(has_b, 0.9, 1.0), "initial_soc": np.where(has_b, 0.3, 0),
                 "soc_min": np.zeros(n), "soc_max": np.ones(n)},
        ev_capacity_kwh=ev["capacity_kwh"], ev_charge_kw=ev["charge_kw"], ev_efficiency=ev["charge_efficiency"],
        ev_initial_kwh=ev["initial_soc"] * ev["capacity_kwh"], ev_home=day["home"], ev_trip_kwh=day["trip_kwh"],
        ev_ref_kw=day["ref_kw"],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_central_is_never_beaten_and_bills_add_up(seed):
    h = random_homes(seed)
    tariff = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)
    basis = Prices.flat(tariff, h.n_steps)
    central = community_schedule(h, basis)
    c_bills = community_bills(central.p_kw, basis, h.dt_h)
    assert c_bills.sum() == pytest.approx(central.objective, abs=1e-6)
    assert c_bills.sum() == pytest.approx(community_cost_at_connection(central.p_kw, basis, h.dt_h), abs=1e-9)
    # the others, each valued at the same basis: uncontrolled EVs with self-consumption, and the TOU response
    retail_p = retail_dispatch(h) - h.ev_ref_kw
    tou = home_schedules(h, tou_prices(tariff, datetime(2016, 7, 24), h.n_steps, 3600))
    for p in (retail_p, tou.p_kw):
        assert c_bills.sum() <= meter_bills(p, basis, h.dt_h).sum() + 1e-6
        assert c_bills.sum() <= community_cost_at_connection(p, basis, h.dt_h) + 1e-6


def test_alike_batteries_solved_as_one_give_the_same_optimum():
    h = random_homes(5, n=16)
    from testbed.domain.compare.dispatch import battery_groups

    # some batteries twice the size with twice the power: alike up to their size, so still grouped
    big = np.arange(h.n) % 2 == 0
    for f in ("capacity_kwh", "power_kw"):
        h.battery[f][big] *= 2
    groups = battery_groups(h)
    assert len(groups) < h.has_battery.sum()  # some homes share a bus and a battery model
    A = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.5]])
    basis = Prices.flat(Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08), h.n_steps)
    free = community_schedule(h, basis).p_kw @ A[:, h.bus].T  # (T, 2) flows of the optimum without limits
    rows = NetworkRows(A, 0.9 * free.min(axis=0), np.array([99.0, 99.0]), ("trafo:T kw", "line:L kw"))
    one = community_schedule(h, basis, rows, aggregate=True)
    each = community_schedule(h, basis, rows, aggregate=False)
    assert one.objective == pytest.approx(each.objective, abs=1e-6)
    assert community_bills(one.p_kw, basis, 1.0).sum() == pytest.approx(each.objective, abs=1e-6)
    flows = one.p_kw @ rows.A[:, h.bus].T
    assert np.all(flows >= rows.lower - 1e-6)
    assert np.any(np.isclose(flows, rows.lower, atol=1e-5))  # the limits bind
    for members in groups:  # every member of a group runs at its share of the group's capacity
        per_kwh = one.battery_kw[:, members] / h.battery["capacity_kwh"][members]
        assert np.allclose(per_kwh, per_kwh[:, :1])
    assert any(big[g].any() and (~big[g]).any() for g in groups)  # sizes mixed within a group


def test_controlled_ev_charging_keeps_the_uncontrolled_service():
    h = random_homes(4)
    sched = home_schedules(h, tou_prices(Tariff(import_price_per_kwh=0.3, export_price_per_kwh=0.08),
                                         datetime(2016, 7, 24), h.n_steps, 3600))
    ref_e = h.ev_reference_kwh()
    e = h.ev_initial_kwh + np.cumsum(-h.ev_trip_kwh + h.ev_efficiency * sched.ev_kw * h.dt_h, axis=0)
    assert np.all(e <= h.ev_capacity_kwh + 1e-6) and np.all(e >= -1e-6)
    assert np.all(e[-1] >= ref_e[-1] - 1e-6)
    leaving = h.ev_home[:-1] & ~h.ev_home[1:]
    assert leaving.any()
    assert np.all(e[:-1][leaving] >= ref_e[1:-1][leaving] - 1e-6)
    assert np.all(sched.ev_kw <= h.ev_charge_kw * h.ev_home + 1e-9)
    # the signal moves charging away from the peak band (17-21 h) the uncontrolled cars charge in
    peak = slice(17, 21)
    assert sched.ev_kw[peak].sum() < h.ev_ref_kw[peak].sum()


def test_infeasible_feeder_limit_is_named():
    h = two_homes()
    # one row: the summed import through "trafo:T" may not exceed 1 kW; at steps 2 and 3 the homes need 2 kW
    # each and A's battery gives back at most 2 kW * 0.9 * 0.9 = 1.62 kWh, so 0.38 kWh cannot be served
    rows = NetworkRows(np.array([[1.0, 1.0]]), np.array([-1.0]), np.array([1e9]), ("trafo:T loading_kw",))
    with pytest.raises(InfeasibleLimits) as err:
        community_schedule(h, BASIS, rows)
    assert [s.name for s in err.value.shortfalls] == ["trafo:T loading_kw"]
    assert "trafo:T loading_kw: exceeded by" in err.value.render()
    assert err.value.shortfalls[0].excess == pytest.approx(0.38, abs=1e-6)
    loose = NetworkRows(np.array([[1.0, 1.0]]), np.array([-1.5]), np.array([1e9]), ("trafo:T loading_kw",))
    feasible = community_schedule(h, BASIS, loose)
    assert feasible.p_kw.sum(axis=1).min() >= -1.5 - 1e-9
    # binding: 1 kWh must come from the battery at steps 2-3, so it stores 1 / 0.81 = 1.2346 kWh of which the
    # 1 kWh surplus of step 0 covers only 1: imports 0.2346 + 1 + 1.5 + 1.5 kWh at 0.30
    assert feasible.objective == pytest.approx(0.30 * (1 / 0.81 - 1 + 4), abs=TOL)


def test_gini_by_hand():
    assert gini(np.array([1.0, 1, 1, 1])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0, 0, 4])) == pytest.approx(0.75)  # sum |xi - xj| = 24 over 2 * 16 * 1
    assert gini(np.zeros(3)) is None
    big = np.random.default_rng(0).uniform(-1, 3, 5000)
    small = big[:4000]
    assert gini(big) == pytest.approx(np.abs(big[:, None] - big[None]).sum() / (2 * 5000**2 * abs(big.mean())))
    assert gini(small) > 0


def test_strategy_names():
    assert parse_strategies("p2p,tou") == ("retail", "central", "p2p", "tou")
    with pytest.raises(UserError, match="unknown strategies 'bogus', 'x'"):
        parse_strategies("retail,bogus,x")
    assert parse_strategies("retail,fpp") == ("central", "retail", "fpp")  # the missing one comes first
    with pytest.raises(UserError, match="more than once"):
        parse_strategies("retail,retail")


def test_coordination_counts():
    h = random_homes(1)
    c = coordination.central_operator(h)
    expected = 2 * 24 * h.n + 6 * h.has_battery.sum() + 7 * h.has_ev.sum()
    assert c["private_parameters_total"] == expected
    assert c["messages"] == h.n + int((h.has_battery | h.has_ev).sum())
    assert coordination.no_coordination(5)["messages"] == 0
    m = coordination.market_messages(
        [("a", {"schema": "fpp.order/1", "msg_id": "1", "prosumer": "a", "interval": 0, "side": "buy",
                "quantity_kw": 1.5, "price_per_kwh": 0.2}),
         ("b", {"schema": "fpp.telemetry/1", "e_export_kwh": 0.1, "e_import_kwh": 0.0, "soc": None})],
        ["a", "b"], outbound=2)
    assert m["messages"] == 4 and m["private_parameters_total"] == 4


def test_tou_bands_by_the_hour():
    tariff = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)
    p = tou_prices(tariff, datetime(2016, 7, 24, 6, 0), 8, 3600)  # 06:00 .. 13:00
    assert p.import_per_kwh == pytest.approx([0.18, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30])
    p = tou_prices(tariff, datetime(2016, 7, 24, 16, 45), 6, 3600)  # 16:45 17:45 ... 21:45
    assert p.import_per_kwh == pytest.approx([0.30, 0.45, 0.45, 0.45, 0.45, 0.30])
    assert np.all(p.export_per_kwh == 0.08)


def test_peaks_and_minutes_outside_limits_by_hand():
    from testbed.domain.compare.bills import exchange_peaks, minutes_outside_limits

    assert exchange_peaks(np.array([5.0, -3.0, np.nan, 2.0])) == {"peak_import_kw": 5.0, "peak_export_kw": 3.0}
    vm = np.array([[1.0, 0.99], [1.0, 0.89], [1.11, 1.0], [1.0, 1.0]])
    loading = np.array([[50.0], [50.0], [50.0], [101.0]])
    # 15-minute steps: the 2nd (low voltage), 3rd (high voltage) and 4th (overload) count
    assert minutes_outside_limits(vm, loading, 0.9, 1.1, 0.25) == 45.0

"""Case validation: every problem at once, each with its path; no traceback for user mistakes."""

import pytest

from testbed.domain.errors import UserError
from testbed.domain.market import clear, parse_case


def ag(id_, lo=0.0, hi=1.0, a=0.0, b=0.1, **kw):
    return {"id": id_, "p_min_kw": lo, "p_max_kw": hi, "cost_a": a, "cost_b": b, **kw}


def _problems(case):
    with pytest.raises(UserError) as exc:
        parse_case(case)
    return exc.value.problems


def test_every_problem_is_listed_with_its_path():
    case = {"interval_h": 0.25, "classes": {"green": {}}, "agents": [
        ag("a"), ag("a"),
        ag("b", lo=5, hi=1),
        ag("c", a=-1),
        ag("d", energy_class="blue", preferences={"class_premium": {"red": 0.1},
                                                   "partner_premium": {"zz": 0.1}}),
        ag("e", b=float("nan")),
    ]}
    probs = _problems(case)
    text = "\n".join(probs)
    # field problems (negative cost_a, NaN) and cross checks come in one report
    assert "agents[3].cost_a" in text and "agents[5].cost_b" in text
    for needle in ("agents[0, 1].id: duplicate id 'a'", "agents[2].p_max_kw: 1.0 is below p_min_kw 5.0",
                   "agents[4].energy_class: unknown class 'blue'",
                   "agents[4].preferences.class_premium_per_kwh.red: unknown class 'red'",
                   "agents[4].preferences.partner_premium_per_kwh.zz: unknown agent 'zz'"):
        assert needle in text
    assert len(probs) == 7
    # once the fields are valid the same cross checks come from the model
    case["agents"][3]["cost_a"] = 0.01
    case["agents"][5]["cost_b"] = 0.1
    assert len(_problems(case)) == 5


def test_unknown_fields_and_types():
    probs = _problems({"interval_h": -1, "agents": [ag("a", colour="red")], "extra": 1})
    text = "\n".join(probs)
    assert "interval_h" in text and "agents[0].colour" in text and "extra" in text


def test_grid_and_network_cross_checks():
    case = {"interval_h": 1, "grid": {"import_price": 0.1, "export_price": 0.2},
            "agents": [ag("a", bus="b1"), ag("b")],
            "network": {"lines": [{"id": "l", "ptdf": {"bx": 1.0}, "limit_kw": 1}],
                        "charge_per_kwh_per_distance": 0.01}}
    text = "\n".join(_problems(case))
    assert "grid: export_price_per_kwh (0.2) exceeds import_price_per_kwh (0.1)" in text
    assert "agents[1].bus: needed" in text  # the other problems are still reported
    assert "network.lines[0].ptdf.bx" in text


def test_orders_checked_against_agents():
    case = {"interval_h": 1, "agents": [ag("a", lo=-2, hi=3)], "orders": [
        {"id": "o1", "agent": "a", "side": "sell", "quantity_kw": 4, "price_per_kwh": 0.1},
        {"id": "o2", "agent": "nobody", "side": "buy", "quantity_kw": 1, "price_per_kwh": 0.1},
        {"id": "o1", "agent": "a", "side": "buy", "quantity_kw": 1, "price_per_kwh": 0.1}]}
    text = "\n".join(_problems(case))
    assert "duplicate order id 'o1'" in text and "orders[1].agent: unknown agent 'nobody'" in text
    assert "offers 4 kW in total, above p_max_kw 3" in text


def test_reserved_grid_id_and_role():
    text = "\n".join(_problems({"interval_h": 1, "agents": [ag("grid"), ag("x", lo=-1, hi=-0.5,
                                                                             role="seller")]}))
    assert "agents[0].id: 'grid' is reserved" in text and "agents[1].role" in text


def test_bad_mechanism_and_options():
    case = {"interval_h": 1, "agents": [ag("a")]}
    with pytest.raises(UserError, match="unknown mechanism"):
        clear(case, "lottery")
    with pytest.raises(UserError, match="unknown option"):
        clear(case, "pool", partners=3)
    with pytest.raises(UserError) as exc:
        clear(case, "admm", rho=-1, max_iter=0)
    assert len(exc.value.problems) == 2


def test_tariff_and_preferences_keep_their_names_from_before_the_units():
    old = {"interval_h": 1, "grid": {"import_price": 0.3, "export_price": 0.05},
           "agents": [ag("a", preferences={"class_premium": {"green": 0.02}, "partner_premium": {"b": 0.01}}),
                      ag("b", energy_class="green")], "classes": {"green": {}}}
    new = {"interval_h": 1, "grid": {"import_price_per_kwh": 0.3, "export_price_per_kwh": 0.05},
           "agents": [ag("a", preferences={"class_premium_per_kwh": {"green": 0.02},
                                          "partner_premium_per_kwh": {"b": 0.01}}),
                      ag("b", energy_class="green")], "classes": {"green": {}}}
    assert parse_case(old) == parse_case(new)
    assert parse_case(new).grid.import_price_per_kwh == 0.3
    assert parse_case(new).agents[0].preferences.green_premium_per_kwh == 0.02

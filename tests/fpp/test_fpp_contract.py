"""Contracts as data: a valid contract, and every problem of a bad one reported at once with its path."""

import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import CONTRACT_SCHEMA_VERSION, parse_contract, parse_contracts

from .helpers import contract_data


def test_valid_contract_numbers(contract):
    assert contract.schema_version == CONTRACT_SCHEMA_VERSION == 1
    assert contract.duration_h == 2.0
    # availability revenue = 0.05 /kW/h * 40 kW * 2 h = 4.0
    assert contract.availability_revenue == pytest.approx(4.0)
    assert contract.sensitivity_at("b2") == 0.8
    assert contract.sensitivity_at("b9") == 0.0 and contract.sensitivity_at(None) == 0.0


def test_system_wide_services_count_every_bus_fully():
    c = parse_contract(contract_data(service={"kind": "frequency_response", "product": "gb-dc-low"},
                                     buyer="tso", direction="both", location=None))
    assert c.sensitivity_at("anywhere") == 1.0
    assert c.service.product == "gb-dc-low"


def test_round_trip_through_json(contract):
    again = parse_contract(contract.model_dump(mode="json"))
    assert again == contract


def test_every_problem_at_once_with_field_paths():
    bad = contract_data(
        capacity_kw=-1, currency="eur", confidence=1.0, direction="sideways", extra_field=3,
        service={"kind": "congestion_relief"}, location=None,
        window={"start": "2026-07-01T20:00", "end": "2026-07-01T18:00"},
        penalty={"kind": "threshold", "penalty_price_per_kwh": 1.0},
    )
    with pytest.raises(UserError) as err:
        parse_contract(bad)
    text = err.value.render()
    assert text.startswith("contract 'dso-1' is invalid")
    for where in ("capacity_kw:", "currency:", "confidence:", "direction:", "extra_field:", "service.element:",
                  "location: a congestion_relief contract needs a location", "window: end",
                  "penalty: pf_threshold is needed"):
        assert where in text, where
    assert len(err.value.problems) == 9


@pytest.mark.parametrize("changes, where", [
    ({"service": {"kind": "frequency_response", "product": "GB DC Low"}}, "service.product"),
    ({"service": {"kind": "energy_block"}, "direction": "both", "location": None}, "direction: an energy block"),
    ({"service": {"kind": "voltage_support", "buses": ["b1"], "v_min_pu": 1.1, "v_max_pu": 0.9}}, "service.v_max_pu"),
    ({"min_offer_kw": 50}, "min_offer_kw: 50 exceeds capacity_kw 40"),
    ({"location": {"eligible_buses": {"b1": 0.3}, "min_sensitivity": 0.5}}, "location: buses ['b1']"),
    ({"location": {"eligible_buses": {"b1": 1.5}, "min_sensitivity": 0.5}}, "location.eligible_buses.b1"),
    ({"window": {"start": "2026-07-01T18:00+02:00", "end": "2026-07-01T20:00"}}, "window.start"),
    ({"penalty": {"kind": "per_kwh"}}, "penalty: penalty_price_per_kwh is needed"),
])
def test_one_bad_field(changes, where):
    with pytest.raises(UserError) as err:
        parse_contract(contract_data(**changes))
    assert any(p.startswith(where) for p in err.value.problems), err.value.problems


def test_calendar_reports_every_contract_and_duplicate_ids():
    items = [contract_data(), contract_data(capacity_kw=0), contract_data(), "not a contract"]
    with pytest.raises(UserError) as err:
        parse_contracts(items, "services")
    problems = err.value.problems
    assert "services[1].capacity_kw: input should be greater than 0, got 0" in problems
    assert "services[3]: expected a mapping, not str" in problems
    assert "services[0, 1, 2].id: duplicate id 'dso-1'" in problems
    assert len(parse_contracts([contract_data(), contract_data(id="dso-2")])) == 2

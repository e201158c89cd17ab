"""The scenario's ``services:`` section: calendar contracts and DSO opportunity finding, and its bad input."""

import pytest

from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import parse_scenario

BASE = """\
schema_version: 1
name: t
seed: 1
time: {start: 2016-07-24T12:00:00, duration_h: 12, resolution_s: 900}
grid: {network: "simbench:1-LV-rural3--0-sw"}
prosumers:
  - id: a
    bus: LV3.101 Bus 5
    load: {profile: H0-A, annual_kwh: 3500}
    battery: {capacity_kwh: 10, power_kw: 5}
services:
  members: {reserve_soc: {min: 0.1, max: 0.3}, fail: [a]}
  dso: {availability_price_per_kw_h: 0.3, penalty: {kind: threshold, pf_threshold: 0.8}}
  calendar:
    - id: tso-fr
      buyer: tso
      service: {kind: frequency_response, product: gb-dc-low}
      window: {start: 2016-07-24T14:00, end: 2016-07-24T16:00}
      direction: up
      capacity_kw: 3
      confidence: 0.9
      availability_price_per_kw_h: 0.1
      utilisation_price_per_kwh: 0
      penalty: {kind: pro_rata}
      currency: EUR
"""


def problems_of(text):
    with pytest.raises(UserError) as err:
        parse_scenario(text, "s.yaml")
    return " | ".join(err.value.problems)


def test_services_section_parses():
    sc = parse_scenario(BASE)
    assert sc.services.dso.penalty == {"kind": "threshold", "pf_threshold": 0.8}
    assert sc.services.calendar[0]["id"] == "tso-fr" and sc.services.members.fail == ["a"]
    assert sc.services.members.reserve_soc.max == 0.3


@pytest.mark.parametrize("old, new, expected", [
    ("capacity_kw: 3", "capacity_kw: -3", "calendar[0].capacity_kw: input should be greater than 0, got -3"),
    ("end: 2016-07-24T16:00", "end: 2016-07-24T13:00", "calendar[0].window: end (2016-07-24T13:00:00) must be after"),
    ("end: 2016-07-24T16:00", "end: 2016-07-25T16:00", "services.calendar[0].window: [2016-07-24 14:00:00, "
                                                       "2016-07-25 16:00:00) is not inside the run"),
    ("start: 2016-07-24T14:00", "start: 2016-07-24T14:05", "window.start: 2016-07-24 14:05:00 is not on a step"),
    ("currency: EUR", "currency: GBP", "calendar[0].currency: 'GBP' differs from services.currency 'EUR'"),
    ("pf_threshold: 0.8}", "pf_threshold: 0.8, penalty_price_per_kwh: 1}", "dso.penalty:"),
    ("kind: frequency_response, product: gb-dc-low", "kind: congestion_relief, element: trafo:0",
     "calendar[0].location: a congestion_relief contract needs a location"),
    ("reserve_soc: {min: 0.1, max: 0.3}", "reserve_soc: {min: 0.1, max: 1.3}", "reserve_soc.max must be <= 1"),
    ("product: gb-dc-low", "product: gb-xx", "calendar[0].service.product: unknown frequency service 'gb-xx'"),
    ("  calendar:", "  frequency_event: {start: 2016-07-25T14:00, nadir_hz: 49.6, settle_hz: 49.8}\n  calendar:",
     "services.frequency_event.start: 2016-07-25 14:00:00 is not inside the run"),
    ("  calendar:", "  frequency_event: {start: 2016-07-24T14:00, nadir_hz: 49.9, settle_hz: 49.8}\n  calendar:",
     "need nadir_hz (49.9) <= settle_hz (49.8)"),
])
def test_bad_services_name_the_field(old, new, expected):
    assert old in BASE
    assert expected in problems_of(BASE.replace(old, new))


def test_repeated_contract_ids_are_named():
    entry = BASE.split("  calendar:\n")[1]
    assert "calendar: contract id 'tso-fr' is repeated" in problems_of(BASE + entry)

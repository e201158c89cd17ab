"""Gini of gains against hand-worked values."""

import math

import pytest

from testbed.domain.fpp.kpis import gini


def test_gini_by_hand():
    assert gini([5.0, 5.0, 5.0]) == 0.0
    # (1, 2, 3): sum |gi - gj| over ordered pairs = 2 * (1 + 2 + 1) = 8; 8 / (2 * 9 * 2) = 2/9
    assert gini([1.0, 2.0, 3.0]) == pytest.approx(2 / 9)
    # one of four takes all: sum = 2 * 3 * 4 = 24; 24 / (2 * 16 * 1) = 0.75 = (n - 1) / n
    assert gini([0.0, 0.0, 0.0, 4.0]) == pytest.approx(0.75)
    assert math.isnan(gini([])) and math.isnan(gini([-1.0, 1.0]))


def test_fpp_criteria_fail_on_an_unfilled_contract_and_on_a_member_worse_off():
    from testbed.domain.scenario.models import Services
    from testbed.orchestration.parts.fpp import FppPart

    part = FppPart(Services())
    ok = {"fpp": {"totals": {"unfilled": 0, "members_worse_off": 1, "members_worse_off_that_delivered": 0}}}
    assert [c.passed for c in part.criteria(ok)] == [True, True]
    bad = {"fpp": {"totals": {"unfilled": 1, "shortfall_kw": 4.0, "members_worse_off": 2,
                              "members_worse_off_that_delivered": 1}}}
    crit = part.criteria(bad)
    assert [c.passed for c in crit] == [False, False] and crit[1].detail == "shortfall 4.00 kW in all"

"""Members following their awards (the delivery model) and the fleet's precedence of a service target."""

import numpy as np

from simulators.fpp_delivery.model import Delivery, Schedule
from simulators.prosumers.mosaik_sim import merge_targets


def test_targets_follow_the_schedule_and_a_failing_member_does_not():
    d = Delivery([Schedule("a", "c1", start=2, baseline_kw=-1.0, meter_kw=(3.0, 4.0)),
                  Schedule("b", "c1", start=2, baseline_kw=0.5, meter_kw=(1.0, 1.0), fails=True)])
    assert d.targets(1) == {} and d.targets(4) == {}
    assert d.targets(2) == {"a": 2.0} and d.targets(3) == {"a": 3.0}
    for step, p in enumerate([0.0, 0.0, 2.0, 3.0, 9.0]):
        d.meter(step, {"a": p, "b": p / 2})
    assert d.metered == {("a", "c1"): [2.0, 3.0], ("b", "c1"): [1.0, 1.5]}  # both metered over the window only


def test_a_service_target_wins_over_a_trade_target_in_the_fleet():
    nan = np.nan
    merged = merge_targets(np.array([1.0, 2.0, nan, nan]), np.array([nan, 5.0, 6.0, nan]))
    assert np.array_equal(merged, [1.0, 5.0, 6.0, nan], equal_nan=True)
    assert merge_targets(None, np.array([3.0])).tolist() == [3.0] and merge_targets(None, None) is None

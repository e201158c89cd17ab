"""The market extension's pure helpers: platform ids for scenario ids, preferences drawn from the seed."""

import logging

from testbed.domain.scenario.models import Market
from testbed.orchestration.parts.market import draw_preferences, platform_ids
from testbed.platform import protocol as p
from testbed.platform.client import MQTT_LOG


def test_platform_ids_are_valid_unique_and_stable():
    ids = ["LV3.101 Load 1", "LV3.101_Load_1", "clock", "x" * 80, "ü"]
    out = platform_ids(ids)
    assert out["LV3.101 Load 1"] == "LV3.101_Load_1"
    assert out["LV3.101_Load_1"] == "LV3.101_Load_1-2"  # collision after replacement gets a suffix
    assert out["clock"] == "clock-2"  # reserved for the market clock account
    assert len(set(out.values())) == len(ids)
    assert all(p.PROSUMER_ID_RE.match(v) for v in out.values())
    assert platform_ids(ids) == out


def test_preferences_are_drawn_in_range_and_repeat_with_the_seed():
    m = Market.model_validate({"preferences": {"green_premium_per_kwh": {"min": 0.01, "max": 0.03},
                                               "subsidy_share": {"min": 0, "max": 0.5}}})
    a = draw_preferences(m, ["a", "b", "c"], seed=42)
    assert a == draw_preferences(m, ["a", "b", "c"], seed=42)
    assert a != draw_preferences(m, ["a", "b", "c"], seed=7)
    assert all(0.01 <= v.green_premium_per_kwh <= 0.03 and v.risk_aversion == 0 for v in a.values())


def test_backlog_warnings_of_aiomqtt_are_dropped_others_kept(caplog):
    with caplog.at_level(logging.WARNING, logger=MQTT_LOG.name):
        MQTT_LOG.warning("There are %d pending publish calls.", 12)
        MQTT_LOG.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]

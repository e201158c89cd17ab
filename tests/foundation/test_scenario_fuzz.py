"""Property-based fuzzing of scenario files (hypothesis): whatever a file holds, reading it gives a Scenario or
one UserError (exit status 2), never another exception; and a scenario that passes can be expanded into its
fleet (what `fpp run` does first) without an error. The long run is ``benchmarks/fuzz_long.py``."""

import copy
import os
from datetime import timedelta
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.domain.errors import UserError
from testbed.domain.scenario.fleet import LoadSite, expand_fleet
from testbed.domain.scenario.loader import parse_scenario
from testbed.domain.scenario.overrides import parse_assignment

SCALE = int(os.environ.get("FPP_FUZZ_SCALE", "1"))
DEMO = yaml.safe_load((Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml").read_text())
DEMO["prosumers"] = [
    {
        "id": "a",
        "bus": "LV3.101 Bus 5",
        "load": {"profile": "H0-A", "annual_kwh": 3500},
        "pv": {"kwp": 5},
        "battery": {"capacity_kwh": 10, "power_kw": 5},
        "ev": {"capacity_kwh": 40, "charge_kw": 11, "trip_kwh": 8, "depart_h": 7, "arrive_h": 18},
    }
]
SITES = [LoadSite(name=f"load{i}", bus_id=f"bus{i}") for i in range(25)]
FUZZ = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(DEMO) if p]


def _get(data, path):
    for part in path:
        data = data[part]
    return data


NUMBER_PATHS = [p for p in PATHS if isinstance(_get(DEMO, p), int | float) and not isinstance(_get(DEMO, p), bool)]

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.floats(min_value=-100, max_value=100),
        st.text(max_size=12),
        st.sampled_from(["PV99", "H0-A", "1e308", "mysql://x", "sqlite:///l.db", "9999-12-31T23:45:00", "simbench:x"]),
        st.datetimes(),
    ),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["min", "max", "x", "share"]), c, max_size=3),
    max_leaves=6,
)


def _set(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


def outcome(text: str, overrides=None):
    """The Scenario, or None for a UserError; any other exception fails the test."""
    try:
        return parse_scenario(text, "fuzz.yaml", overrides)
    except UserError as exc:
        assert exc.summary and "Traceback" not in str(exc)
        return None


def runnable(sc) -> None:
    """What a run does first with a validated scenario, without the grid: expand the fleet, walk the window."""
    if sc.fleet is not None:
        expand_fleet(sc.fleet, SITES, sc.seed)
    assert 0 < sc.time.n_steps <= 1_100_000
    sc.time.start + timedelta(seconds=sc.time.n_steps * sc.time.resolution_s)  # the last step's date exists


@settings(max_examples=400 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(PATHS), values | st.just(_DELETE))
        | st.tuples(st.sampled_from(NUMBER_PATHS), st.floats(min_value=-10, max_value=1e4) | st.integers(0, 10**6)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_scenarios_give_a_scenario_or_one_user_error(changes):
    data = copy.deepcopy(DEMO)
    for path, value in changes:
        try:
            _set(data, path, value)
        except (KeyError, IndexError, TypeError):  # an earlier change removed or replaced the parent
            continue
    sc = outcome(yaml.safe_dump(data, sort_keys=False))
    if sc is not None:
        runnable(sc)


@FUZZ
@given(st.text(alphabet="[]{}:-,&*!|>#'\"\n ab1.e\t%@`?", max_size=300))
def test_random_text_is_a_user_error(text):
    sc = outcome(text)
    assert sc is None or sc.name


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["seed", "time.duration_h", "fleet.ev.trip_kwh.max", "fleet.pv.profiles", "market.ledger",
                             "fleet.ev.depart_h", "prosumers[0].ev.trip_kwh", "prosumers[5].pv.kwp", "x.y", "fleet"]),
            st.text(alphabet="0123456789e.-+[]{}:, abPV_", max_size=40) | st.just("9" * 5000),
        ),
        max_size=3,
    )
)
def test_overrides_give_a_scenario_or_one_user_error(assignments):
    text = yaml.safe_dump(DEMO, sort_keys=False)
    try:
        overrides = dict(parse_assignment(f"{path}={value}") for path, value in assignments)
    except UserError:
        return
    sc = outcome(text, overrides)
    if sc is not None:
        runnable(sc)


@settings(max_examples=30 * SCALE, deadline=None)
@given(st.integers(min_value=33, max_value=3000), st.sampled_from(["[", "{a: ", "- "]), st.booleans())
def test_deep_or_duplicated_structure_is_a_user_error(depth, opener, duplicate):
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    nested = ("\n" if opener == "- " else "") + opener * depth + "1" + closer * depth
    text = yaml.safe_dump(DEMO, sort_keys=False) + ("seed: 1\n" if duplicate else "") + f"extra: {nested}\n"
    assert outcome(text) is None

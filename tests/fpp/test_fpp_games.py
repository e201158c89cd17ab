"""Reading a game file: every problem named at once; a missing coalition is an error, not 0."""

import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import parse_game

WORKED = {"players": ["a", "b", "c"], "coalitions": [
    {"members": ["a"], "value": 6}, {"members": ["b"], "value": 12}, {"members": ["c"], "value": 42},
    {"members": ["a", "b"], "value": 12}, {"members": ["a", "c"], "value": 42},
    {"members": ["b", "c"], "value": 42}, {"members": ["a", "b", "c"], "value": 42}]}


def test_worked_example_reads():
    g, weights = parse_game(WORKED)
    assert g.players == ("a", "b", "c") and weights is None
    assert g.value(["c", "a"]) == 42 and g.value([]) == 0 and g.grand_value == 42
    assert g.singleton_values().tolist() == [6, 12, 42]


def test_missing_coalition_is_named():
    data = {**WORKED, "coalitions": WORKED["coalitions"][:4] + WORKED["coalitions"][5:]}
    with pytest.raises(UserError) as err:
        parse_game(data)
    assert err.value.problems == ["coalitions: 1 of the 7 coalitions have no value (a missing coalition is not 0): "
                                  "{a, c}"]


def test_every_problem_at_once():
    data = {"players": ["a", "b", "a", 7], "coalitions": [
        {"members": ["a"], "value": "six"}, {"members": ["a", "z"], "value": 1}, {"members": ["b"], "value": None},
        {"members": ["b"], "value": 2}, {"members": ["b"], "value": 3}, {"members": [], "value": 1},
        {"members": ["a", "a"], "value": 1, "note": "x"}, "junk"], "colour": "red"}
    with pytest.raises(UserError) as err:
        parse_game(data)
    problems = err.value.problems
    for expected in [
        "colour: unknown field (a game has players, coalitions and optional weights)",
        "players[3]: a player is named by a non-empty string, got 7",
        "players: duplicate player 'a' (2 times)",
        "coalitions[0].value: expected a finite number, got 'six'",
        "coalitions[1].members: unknown player 'z'",
        "coalitions[2].value: expected a finite number, got None",
        "coalitions[4]: coalition ['b'] is listed again (first at coalitions[3])",
        "coalitions[5].value: the empty coalition is worth 0, got 1",
        "coalitions[6].note: unknown field",
        "coalitions[6].members: player 'a' listed twice",
        "coalitions[7]: expected a mapping with members and value",
    ]:
        assert expected in problems, expected
    assert err.value.summary == "the game is invalid"


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), [1]])
def test_non_numbers_are_refused(value):
    data = {**WORKED, "coalitions": [{"members": ["a"], "value": value}] + WORKED["coalitions"][1:]}
    with pytest.raises(UserError, match=r"coalitions\[0\].value: expected a finite number"):
        parse_game(data)


def test_weights_are_checked():
    g, w = parse_game({**WORKED, "weights": {"a": 1, "b": 2, "c": 3}})
    assert w == {"a": 1, "b": 2, "c": 3}
    with pytest.raises(UserError) as err:
        parse_game({**WORKED, "weights": {"a": -1, "b": "x", "d": 1}})
    assert set(err.value.problems) == {"weights.d: unknown player", "weights: no weight for player 'c'",
                                       "weights.a: expected a finite number >= 0, got -1",
                                       "weights.b: expected a finite number >= 0, got 'x'"}


def test_not_a_mapping():
    with pytest.raises(UserError, match=r"\(game\): expected a mapping, not list"):
        parse_game([1, 2])

"""Fair sharing against hand-computed and published games."""

import numpy as np
import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import TableGame, parse_contract, share, stability
from testbed.domain.fpp.games import contract_game, subset_sums
from testbed.domain.fpp.offer import ServiceOffer
from testbed.domain.fpp.sharing import least_core, nucleolus, proportional, shapley, shapley_sampled

from .helpers import contract_data

Z95 = 1.6448536269514722  # standard normal quantile at 0.95


def game(players, value):
    """A table game from a function of the coalition's list of players."""
    n = len(players)
    return TableGame(players, np.array([value([players[i] for i in range(n) if m >> i & 1]) for m in range(1 << n)]))


# The worked example: v(a)=6, v(b)=12, v(c)=42, v(ab)=12, v(ac)=42, v(bc)=42, v(abc)=42.
EXAMPLE = {"": 0, "a": 6, "b": 12, "c": 42, "ab": 12, "ac": 42, "bc": 42, "abc": 42}
WORKED = game(["a", "b", "c"], lambda s: EXAMPLE["".join(s)])


def test_worked_example_shapley_by_hand():
    # Marginal contributions over the six orders (a, b, c):
    # abc: 6, 6, 30 | acb: 6, 0, 36 | bac: 0, 12, 30 | bca: 0, 12, 30 | cab: 0, 0, 42 | cba: 0, 0, 42
    # averages: a = 12/6 = 2, b = 30/6 = 5, c = 210/6 = 35
    assert shapley(WORKED).shares == pytest.approx((2.0, 5.0, 35.0), abs=1e-12)


def test_sampled_shapley_is_within_its_standard_error_and_repeatable():
    a = shapley_sampled(WORKED, 20_000, seed=4)
    for got, want, se in zip(a.shares, (2.0, 5.0, 35.0), a.standard_error, strict=True):
        assert abs(got - want) < 4 * se
    assert sum(a.shares) == pytest.approx(42.0)  # every order adds up to v(N)
    assert shapley_sampled(WORKED, 20_000, seed=4) == a
    assert shapley_sampled(WORKED, 20_000, seed=5) != a


def test_worked_example_core_is_empty_and_prenucleolus_by_hand():
    # Stand-alone values add up to 60 > v(N) = 42: no imputation, and no core (x_a + x_c >= 42, x_b >= 12).
    # Largest excess: max(12 - x_b, x_b) >= 6 for any x (coalitions {b} and {a, c}), reached with x_b = 6;
    # then max(6 - x_a, x_a + x_b - 6 ...) is smallest at x_a = 0: prenucleolus (0, 6, 36), e* = 6.
    lc = least_core(WORKED)
    assert lc.max_excess == pytest.approx(6.0)
    nu = nucleolus(WORKED)
    assert nu.method == "prenucleolus" and "no imputation exists" in nu.note
    assert nu.shares == pytest.approx((0.0, 6.0, 36.0), abs=1e-9)
    st = stability(WORKED, shapley(WORKED).shares)
    assert st.efficient and st.in_core is False and st.max_excess == pytest.approx(7.0)  # {b}: 12 - 5
    assert st.worst_coalition == ("b",) and not st.individually_rational


@pytest.mark.parametrize("estate, expected", [
    (100, (100 / 3, 100 / 3, 100 / 3)),
    (200, (50.0, 75.0, 75.0)),
    (300, (50.0, 100.0, 150.0)),
])
def test_nucleolus_of_the_talmud_bankruptcy_problems(estate, expected):
    # Aumann and Maschler, "Game theoretic analysis of a bankruptcy problem from the Talmud", Journal of
    # Economic Theory 36 (1985) 195-213: claims 100, 200, 300; the Talmud's divisions of estates 100, 200
    # and 300 are the nucleoli of the games v(S) = max(0, E - sum of the claims outside S).
    claims = {"1": 100, "2": 200, "3": 300}
    g = game(list(claims), lambda s: max(0, estate - sum(d for p, d in claims.items() if p not in s)))
    nu = nucleolus(g)
    assert nu.method == "nucleolus" and nu.shares == pytest.approx(expected, abs=1e-7)
    # bankruptcy games are convex: the core is non-empty and holds the nucleolus and the Shapley value
    assert least_core(g).max_excess <= 1e-9
    assert stability(g, nu.shares).in_core and stability(g, shapley(g).shares).in_core


def test_majority_game_has_an_empty_core():
    # v(S) = 1 for two or three of three players: x_i + x_j >= 1 for all pairs needs 2 * x(N) >= 3 > 2.
    # By symmetry the least core and nucleolus are (1/3, 1/3, 1/3), each pair is 1/3 short: e* = 1/3.
    g = game(["a", "b", "c"], lambda s: 1.0 if len(s) >= 2 else 0.0)
    lc = least_core(g)
    assert lc.max_excess == pytest.approx(1 / 3)
    assert nucleolus(g).shares == pytest.approx((1 / 3,) * 3)
    assert stability(g, lc.shares).in_core is False


def test_glove_game_nucleolus_is_its_one_point_core():
    # Glove game: a owns a left glove, b and c right gloves, a pair is worth 1: core = {(1, 0, 0)}
    # (x_b > 0 would leave {a, c} short). Shapley: a is pivotal in 4 of 6 orders -> (2/3, 1/6, 1/6).
    g = game(["a", "b", "c"], lambda s: 1.0 if "a" in s and len(s) >= 2 else 0.0)
    assert nucleolus(g).shares == pytest.approx((1.0, 0.0, 0.0), abs=1e-9)
    assert shapley(g).shares == pytest.approx((2 / 3, 1 / 6, 1 / 6))


def test_proportional_and_weights():
    assert proportional(WORKED).shares == pytest.approx((4.2, 8.4, 29.4))  # 42 * (6, 12, 42) / 60
    assert proportional(WORKED, {"a": 1, "b": 1, "c": 2}).shares == pytest.approx((10.5, 10.5, 21.0))
    with pytest.raises(UserError, match="weights >= 0 with a positive sum"):
        proportional(WORKED, {"a": 0, "b": 0, "c": 0})
    with pytest.raises(UserError, match="--samples applies to shapley only"):
        share(WORKED, "nucleolus", samples=100)


def test_subset_sums():
    assert subset_sums(np.array([1.0, 2.0, 4.0])).tolist() == [0, 1, 2, 3, 4, 5, 6, 7]


def _offer(member, kw, sd, price, bus="b1"):
    return ServiceOffer(id=f"o-{member}", contract_id="dso-1", member=member, bus=bus, capacity_kw=kw,
                        capacity_sd_kw=sd, price_per_kw_h=price)


def test_contract_game_values_by_hand(contract):
    # 40 kW at 95 %, paid 0.05 * 2 h = 0.1 per kW held; members at b1 (counts fully):
    # h1: 30 kW +- 2, cost 0.01*30*2 = 0.6; h2: 20 kW +- 2, cost 0.02*20*2 = 0.8.
    # v(h1) = 0.1 * (30 - 1.645*2) - 0.6 = 1.7710; v(h2) = 0.1 * (20 - 3.290) - 0.8 = 0.8710;
    # v(h1 h2) = 0.1 * min(50 - 1.645*2.828, 40) - 1.4 = 2.6 (capped at 40 kW).
    g = contract_game(contract, [_offer("h1", 30, 2, 0.01), _offer("h2", 20, 2, 0.02)])
    z = 1.6448536269514722
    assert g.value(["h1"]) == pytest.approx(0.1 * (30 - 2 * z) - 0.6)
    assert g.value(["h2"]) == pytest.approx(0.1 * (20 - 2 * z) - 0.8)
    assert g.grand_value == pytest.approx(2.6) == g.value(["h1", "h2"])
    assert g.table().tolist() == pytest.approx([0.0, g.value(["h1"]), g.value(["h2"]), 2.6])
    assert proportional(g).shares == pytest.approx((2.6 * 30 / 50, 2.6 * 20 / 50))


@pytest.mark.parametrize("penalty, v1, v2", [
    # h1 alone firms 30 - 2 * 1.6449 = 26.710 kW of 40 (pf 0.668), h2 16.710 kW (pf 0.418); revenue 4.0
    ({"kind": "threshold", "pf_threshold": 0.6}, 4.0 - 0.6, 0.0),   # h2 below the threshold: paid nothing, declines
    ({"kind": "per_kwh", "penalty_price_per_kwh": 0.1},             # 4.0 - 0.1 * (40 - F) kWh * 2 h - cost
     4.0 - 0.1 * (40 - (30 - 2 * Z95)) * 2 - 0.6, 0.0),                 # h2: 4.0 - 4.658 - 0.8 < 0, declines
])
def test_contract_game_follows_the_penalty_rule(penalty, v1, v2):
    c = parse_contract(contract_data(penalty=penalty))
    g = contract_game(c, [_offer("h1", 30, 2, 0.01), _offer("h2", 20, 2, 0.02)])
    assert g.value(["h1"]) == pytest.approx(v1, abs=1e-5)
    assert g.value(["h2"]) == pytest.approx(v2, abs=1e-5)
    assert g.value([]) == 0.0 and g.grand_value == pytest.approx(4.0 - 1.4)


def test_a_loss_making_coalition_is_worth_nothing():
    # one member with 5 kW asking 0.2 per kW·h: the contract pays 0.05 * 5 kW * 2 h = 0.5, its cost is 2.0
    g = contract_game(parse_contract(contract_data()), [_offer("h1", 5, 0, 0.2)])
    assert g.grand_value == 0.0


def test_contract_game_exact_and_sampled_shapley_agree():
    c = parse_contract(contract_data(capacity_kw=30.0))
    rng = np.random.default_rng(2)
    offers = [_offer(f"h{i}", float(rng.uniform(2, 6)), float(rng.uniform(0.2, 1.5)), float(rng.uniform(0.005, 0.03)))
              for i in range(12)]
    g = contract_game(c, offers)
    exact = shapley(g)
    sampled = shapley_sampled(g, 4000, seed=1)
    assert sum(exact.shares) == pytest.approx(g.grand_value)
    for e, s, se in zip(exact.shares, sampled.shares, sampled.standard_error, strict=True):
        assert abs(e - s) < 4 * se + 1e-12


def test_too_many_players_for_a_table_or_an_lp():
    c = parse_contract(contract_data())
    g = contract_game(c, [_offer(f"h{i}", 1.0, 0.1, 0.01) for i in range(30)])
    with pytest.raises(UserError, match="at most 22"):
        shapley(g)
    with pytest.raises(UserError, match="at most 16 players"):
        nucleolus(g)
    st = stability(g, shapley_sampled(g, 50, seed=0).shares)
    assert st.in_core is None and st.efficient

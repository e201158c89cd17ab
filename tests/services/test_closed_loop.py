"""An FPP coalition's DC response in the closed-loop model (scenarios/tests/fpp-coalition-dc-closed-loop.yaml).

Hand-worked: the system (5 MW, H 4 s, D 1) loses 0.1 MW = 0.02 pu. Alone it settles where D·Δf = 0.02 pu,
1 Hz down; at 30 s, 29 s after the loss, Δf = −0.02 (1 − e^(−29/8)) pu, i.e. 49.027 Hz. With N batteries of
8 kW on the DC curve the steady state solves 0.0016·N·DC(Δf) + Δf/50 = 0.02 (Δf in Hz): for N = 10 about
49.58 Hz (DC between its 0.2 Hz and 0.5 Hz knees), found here by bisection on the service's own curve.
"""

from pathlib import Path

import pytest

from testbed.cli import main
from testbed.domain.errors import UserError
from testbed.domain.services.frequency import FREQUENCY_SERVICES
from testbed.domain.services.signals import swing_no_response
from testbed.domain.services.testfile import parse_test
from testbed.orchestration.service_test import load_test, run_service_test

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "scenarios/tests/fpp-coalition-dc-closed-loop.yaml"


def steady_state_hz(members: int) -> float:
    dc = FREQUENCY_SERVICES["gb-dc-low"]
    lo, hi = 0.0, 1.0  # Δf [Hz] below 50
    for _ in range(60):
        mid = (lo + hi) / 2
        gap = 0.0016 * members * dc.fraction(50.0 - mid) + mid / 50.0 - 0.02
        lo, hi = (mid, hi) if gap < 0 else (lo, mid)
    return 50.0 - (lo + hi) / 2


def test_no_response_trace_is_the_swing_equation():
    sig = swing_no_response(50.0, 5.0, 4.0, 1.0, 0.1, 1.0, 30.0)
    f, _, _ = sig.sample(30.0)
    assert float(f) == pytest.approx(49.0266, abs=1e-4) and sig.events_s == (1.0,)


def test_coalition_lifts_the_nadir_to_the_hand_worked_steady_state(tmp_path):
    test, signal = load_test(EXAMPLE)
    result = run_service_test(test, signal)
    cl = result.info["closed_loop"]
    assert result.verdict.status == "pass"
    assert steady_state_hz(10) == pytest.approx(49.585, abs=0.005)
    assert result.record.f_hz[-1] == pytest.approx(steady_state_hz(10), abs=0.01)  # settled where worked
    assert cl["nadir_hz"] <= result.record.f_hz[-1] + 1e-9 and cl["nadir_hz"] >= 49.5
    assert cl["nadir_without_coalition_hz"] == pytest.approx(49.0266, abs=2e-3)
    assert cl["nadir_lift_hz"] > 0.5 and cl["contracted_kw"] == 80


def test_too_small_a_coalition_fails_the_nadir(tmp_path):
    text = EXAMPLE.read_text().replace("count: 10", "count: 2")
    (tmp_path / "two.yaml").write_text(text)
    assert main(["test", str(tmp_path / "two.yaml"), "--out", str(tmp_path / "o")]) == 1
    test, signal = load_test(tmp_path / "two.yaml")
    v = run_service_test(test, signal).verdict
    failed = [c.name for c in v.failed()]
    assert failed == ["frequency nadir"]  # each battery still follows DC; the coalition is too small
    assert v.criteria[-1].figure == pytest.approx(steady_state_hz(2), abs=0.05) and steady_state_hz(2) < 49.5


def test_a_coalition_outside_a_closed_loop_is_refused():
    text = EXAMPLE.read_text()
    bad = text.replace("kind: closed-loop", "kind: steps\n  points: [{t_s: 0, f_hz: 49.5}]").replace(
        "  s_base_mw: 5\n  h_s: 4\n  d_pu: 1\n  loss_mw: 0.1\n  t_loss_s: 1\n", "").replace("  f_min_hz: 49.5\n", "")
    with pytest.raises(UserError) as err:
        parse_test(bad, "bad.yaml")
    assert "device.count 10: a coalition of devices is tested with a closed-loop signal" in err.value.render()
    emulated = text.replace("kind: simulated", "kind: emulated")
    with pytest.raises(UserError, match="closed-loop"):
        parse_test(emulated, "emulated.yaml")

"""Scoring: every criterion's pass and fail path on synthetic records, and the refusal of a verdict when the
samples came too late; IEEE 1547.1 step rules; the single-area model against the swing equation."""

import numpy as np
import pytest

from simulators.frequency.model import SingleAreaModel
from testbed.domain.services.frequency import FREQUENCY_SERVICES
from testbed.domain.services.scoring import Record, score_frequency_service
from testbed.domain.services.scoring_1547 import score_volt_var
from testbed.domain.services.signals import frequency_steps, ieee1547_voltage_steps
from testbed.domain.services.voltage import CHARACTERISTICS, first_order

DC = FREQUENCY_SERVICES["gb-dc-low"]
SIG = frequency_steps([(0, 50.0), (2, 49.8), (6, 49.5), (10, 50.0)], 14)
T = np.arange(0.05, 14.0, 0.05)
F = SIG.f_hz.at(T - 0.05)  # the frequency applied during the step before each sample


def follower(response_90_s: float, *, sign=1.0, freeze_after_s=None) -> np.ndarray:
    """A first-order device following the DC curve with a 90 % time of ``response_90_s``."""
    p = np.zeros_like(T)
    a = 1 - np.exp(-0.05 * np.log(10) / response_90_s)
    for i in range(1, T.size):
        if freeze_after_s is not None and T[i] > freeze_after_s:
            p[i] = p[i - 1]
            continue
        p[i] = p[i - 1] + (sign * 10 * float(DC.fraction(F[i])) - p[i - 1]) * a
    return p


def verdict(p, **kw):
    return score_frequency_service(DC, Record.from_arrays(T, F, p, period_s=0.05, **kw), 10.0, SIG.events_s)


def by_name(v, start):
    return next(c for c in v.criteria if c.name.startswith(start))


def test_a_compliant_device_passes_every_criterion():
    v = verdict(follower(0.3))
    assert v.status == "pass", v.summary()
    assert {c.name.split(" ")[0] for c in v.criteria} == {"initiation", "full", "samples", "energy", "performance"}
    assert by_name(v, "initiation").figure == pytest.approx(0.05)


def test_slow_device_fails_full_delivery_and_the_band():
    v = verdict(follower(3.0))
    assert v.status == "fail"
    assert by_name(v, "full delivery").passed is False and by_name(v, "full delivery").figure > 1.0
    assert by_name(v, "samples inside").passed is False


def test_device_that_never_starts_fails_initiation_with_its_span():
    v = verdict(np.zeros_like(T))
    c = by_name(v, "initiation")
    assert c.passed is False and "not reached" in c.detail
    assert by_name(v, "energy").passed is False and by_name(v, "energy").figure == pytest.approx(0.0)


def test_wrong_direction_fails_band_energy_and_performance():
    v = verdict(follower(0.3, sign=-1.0))
    assert by_name(v, "energy").figure < 0
    assert by_name(v, "performance").passed is False


def test_device_that_stops_following_fails_the_band():
    v = verdict(follower(0.3, freeze_after_s=7.0))
    assert by_name(v, "samples inside").passed is False


def test_late_samples_refuse_the_verdict():
    """DC allows 50 ms (a tenth of its 0.5 s initiation); samples 80 ms late cannot be judged, even when the
    response itself would pass or fail."""
    for p in (follower(0.3), follower(3.0)):
        v = verdict(p, lateness_s=np.full(T.size, 0.08))
        assert v.status == "inconclusive" and "lateness" in v.inconclusive
        assert all(c.passed is None for c in v.criteria) and all(c.figure is not None for c in v.criteria[:2])
    assert verdict(follower(0.3), lateness_s=np.full(T.size, 0.04)).status == "pass"


def test_timing_uses_the_samples_own_timestamps():
    """The same response sampled with jitter (each sample ±20 ms off its slot, timestamps kept) gets the same
    verdict."""
    rng = np.random.default_rng(1)
    t = T + rng.uniform(-0.02, 0.02, T.size)
    p = follower(0.3)
    v = score_frequency_service(DC, Record.from_arrays(t, F, p, period_s=0.05), 10.0, SIG.events_s)
    assert v.status == "pass"


def test_many_invalid_samples_refuse_the_verdict():
    valid = np.ones(T.size, bool)
    valid[50:60] = False
    v = verdict(follower(0.3), valid=valid)
    assert v.status == "inconclusive" and "invalid" in v.inconclusive


VV1 = CHARACTERISTICS["volt-var-1"]


def volt_var_record(offset_pu=0.0, tr_s=5.0):
    sig = ieee1547_voltage_steps(VV1, levels=(1.0,), hold_s=10.0)
    t = np.arange(0.0, sig.duration_s, 0.1)
    v = sig.vm_pu.at(t)
    q = np.zeros_like(t)
    for st in sig.steps:
        m = (t >= st.t_start_s) & (t < st.t_end_s)
        q0 = q[np.flatnonzero(t < st.t_start_s)[-1]] if st.t_start_s > 0 else 0.0
        q[m] = first_order(q0, float(VV1(st.x - offset_pu)), t[m] - st.t_start_s, tr_s)
    return sig, Record.from_arrays(t, np.full(t.size, 50.0), np.zeros_like(t), period_s=0.1, q_kvar=q * 10, vm_pu=v)


def test_volt_var_pass_and_both_fail_paths():
    sig, rec = volt_var_record()
    assert score_volt_var(VV1, sig.steps, rec, 10.0).status == "pass"
    sig, rec = volt_var_record(offset_pu=0.03)
    v = score_volt_var(VV1, sig.steps, rec, 10.0)
    assert v.criteria[0].passed is False and v.criteria[0].figure > 0
    sig, rec = volt_var_record(tr_s=60.0)
    v = score_volt_var(VV1, sig.steps, rec, 10.0)
    assert v.criteria[1].passed is False and v.criteria[0].passed is False  # not settled at 10 s either


def test_single_area_nadir_against_the_analytic_swing_equation():
    """Step loss of 1.8 GW on 30 GW, H = 4 s, D = 1, no response: Δf(t) = −(ΔP/D)(1 − e^(−D t / 2H)); the
    frequency settles (its nadir) at 50·(1 − 0.06) = 47 Hz (Kundur 1994 §11.1.4)."""
    m = SingleAreaModel(loss_mw=1800.0, s_base_mw=30000.0, h_s=4.0, d_pu=1.0, t_loss_s=1.0)
    fs, ts = [], []
    for _ in range(1600):
        fs.append(m.step(0.05))
        ts.append(m.t_s)
    analytic = np.array([m.analytic_no_response_hz(t) for t in ts])
    assert np.max(np.abs(np.array(fs) - analytic)) < 1e-3
    assert min(fs) == pytest.approx(47.0, abs=0.01)
    # no damping: the initial RoCoF −ΔP·f0/(2H) = −0.375 Hz/s holds on
    m0 = SingleAreaModel(loss_mw=1800.0, s_base_mw=30000.0, h_s=4.0, d_pu=0.0, t_loss_s=0.0)
    assert m0.step(2.0) == pytest.approx(50.0 - 0.75, abs=1e-9)


def test_response_lifts_the_nadir():
    base = SingleAreaModel(loss_mw=1800.0, h_s=4.0, d_pu=1.0, r_pu=0.05, t_gov_s=5.0)
    helped = SingleAreaModel(loss_mw=1800.0, h_s=4.0, d_pu=1.0, r_pu=0.05, t_gov_s=5.0)
    nadir_base = min(base.step(0.05) for _ in range(600))
    nadir_helped = min(helped.step(0.05, 600.0 if helped.t_s >= 1.0 else 0.0) for _ in range(600))
    assert nadir_helped > nadir_base + 0.05

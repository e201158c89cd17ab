"""``fpp test`` end to end: the example tests, every fail path on emulated devices (lock-step over real
Modbus), a device that stops answering (fault, exit 3), and test files with mistakes (exit 2)."""

import json
from pathlib import Path

import pytest

from testbed.cli import main
from testbed.domain.errors import UserError
from testbed.domain.services.testfile import parse_test
from testbed.orchestration.service_test import load_test, run_service_test

ROOT = Path(__file__).resolve().parents[2]

DC = """
name: DC {label}
service: gb-dc-low
contracted_kw: 10
signal: {{kind: steps, points: [{{t_s: 0, f_hz: 50}}, {{t_s: 1, f_hz: 49.5}}, {{t_s: 4, f_hz: 49.8}}, {{t_s: 6, f_hz: 50}}], duration_s: 8}}
device: {{kind: emulated, type: battery, rated_kw: 10, capacity_kwh: 20, response_s: 0.3{extra}}}
"""

DROOP = """
name: droop {label}
service: ieee1547-droop-50hz
step_s: 0.25
signal: {{kind: ieee1547-steps, levels: [1.0], hold_s: 10}}
device: {{kind: emulated, type: pv, rated_kw: 10{extra}}}
"""

VV = """
name: Volt-VAR {label}
service: volt-var-1
step_s: 0.25
signal: {{kind: ieee1547-steps, levels: [1.0], hold_s: 6}}
device: {{kind: emulated, type: pv, rated_kw: 10{extra}}}
"""


def run(template, label, misbehave=None):
    extra = "" if misbehave is None else f", misbehave: {misbehave}"
    test = parse_test(template.format(label=label, extra=extra), label)
    from testbed.domain.services.testfile import build_signal

    return run_service_test(test, build_signal(test)).verdict


def failed(v):
    return {c.name.split(":")[-1].split(" within")[0].strip() for c in v.failed()}


def test_dc_emulated_pass_and_fail_paths():
    assert run(DC, "compliant").status == "pass"
    v = run(DC, "slow", "{p_response_s: 3}")
    assert v.status == "fail" and "full delivery" in failed(v)
    v = run(DC, "stops following", "{stop_following_after_s: 3}")
    assert v.status == "fail" and any(n.startswith("samples inside") for n in failed(v))


def test_droop_emulated_pass_and_wrong_settings_fail():
    assert run(DROOP, "compliant").status == "pass"
    for bad in ("{deadband_hz: 0.5}", "{droop: 0.02}"):
        v = run(DROOP, "wrong setting", bad)
        assert v.status == "fail"
        assert v.criteria[0].passed is False, bad  # steady state outside ±1.5·MRA


VW = """
name: Volt-Watt {label}
service: volt-watt-1
step_s: 0.25
signal: {{kind: ieee1547-steps, levels: [1.0], hold_s: 20}}
device: {{kind: emulated, type: pv, rated_kw: 10{extra}}}
"""


def test_volt_watt_emulated_pass_and_fail_paths():
    # programmed over SunSpec 706; the compliant device follows IEEE 1547-2018's default curve
    assert run(VW, "compliant").status == "pass"
    v = run(VW, "offset", "{volt_watt_offset_pu: 0.03}")  # curtails 30 mV too late: outside ±1.5·MRA
    assert v.status == "fail" and v.criteria[0].passed is False
    v = run(VW, "slow P", "{p_response_s: 60}")  # 90 % of the change long after one response time (10 s)
    assert v.status == "fail" and v.criteria[1].passed is False


def test_volt_var_emulated_fail_paths():
    v = run(VV, "offset", "{volt_var_offset_pu: 0.04}")
    assert v.criteria[0].passed is False
    v = run(VV, "slow Q", "{q_response_s: 60}")
    assert v.criteria[1].passed is False


def test_device_that_stops_answering_is_a_fault_with_what_was_measured(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(DC.format(label="silent", extra=", misbehave: {stop_answering_after_s: 3}"))
    code = main(["test", str(f), "--out", str(tmp_path / "out")])
    assert code == 3
    data = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert data["status"] == "fault" and "stopped answering" in data["fault"]
    assert data["criteria"] and data["criteria"][0]["figure"] is not None  # judged on the first 3 s
    assert "<svg" in (tmp_path / "out" / "report.html").read_text()


def test_example_fcr_on_a_simulated_battery(tmp_path):
    code = main(["test", str(ROOT / "scenarios/tests/fcr-simulated-battery.yaml"), "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "verdict.json").read_text())
    assert data["status"] == "pass" and len(data["criteria"]) == 6
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 1 and "full delivery within 30 s" in page


def test_example_dc_on_an_emulated_battery():
    test, signal = load_test(ROOT / "scenarios/tests/dc-emulated-battery.yaml")
    assert run_service_test(test, signal).verdict.status == "pass"


@pytest.mark.slow
def test_example_volt_var_on_an_emulated_inverter(tmp_path):
    code = main(["test", str(ROOT / "scenarios/tests/volt-var-1-emulated-inverter.yaml"), "--out", str(tmp_path)])
    assert code == 0
    assert (tmp_path / "report.html").read_text().count("<svg") == 2


def test_example_volt_watt_on_an_emulated_inverter(tmp_path):
    code = main(["test", str(ROOT / "scenarios/tests/volt-watt-1-emulated-inverter.yaml"), "--out", str(tmp_path)])
    assert code == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("<svg") == 2 and "P / P_rated" in page


@pytest.mark.realtime
@pytest.mark.slow
def test_dc_on_an_emulated_battery_in_real_time(tmp_path):
    code = main(["test", str(ROOT / "scenarios/tests/dc-emulated-battery.yaml"), "--real-time", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "verdict.json").read_text())
    assert code == 0, data
    assert data["sample_lateness"]["samples"] > 300 and data["io_lateness"]["missed"] == 0


def test_test_file_mistakes_are_all_reported_at_once(tmp_path):
    text = """
name: bad
service: gb-dc-lo
contracted_kw: 20
signal: {kind: steps, points: [{t_s: 0, f_hz: 50}, {t_s: 5, f_hz: 44}], duration_s: 4}
device: {kind: simulated, type: battery, rated_kw: 10, capacity_kwh: 20, misbehave: {droop: 0.1}}
"""
    with pytest.raises(UserError) as err:
        parse_test(text, "bad.yaml")
    assert "service (line 3)" in err.value.render()
    good_service = text.replace("gb-dc-lo", "gb-dc-low")
    with pytest.raises(UserError) as err:
        parse_test(good_service, "bad.yaml")
    problems = err.value.problems
    assert any("contracted_kw 20" in p for p in problems)
    assert any("misbehave" in p for p in problems)
    assert any("duration_s" in p for p in problems)
    f = tmp_path / "bad.yaml"
    f.write_text(good_service)
    assert main(["test", str(f)]) == 2


def test_signal_outside_the_range_and_missing_models(tmp_path):
    text = DC.format(label="far", extra="").replace("f_hz: 49.5", "f_hz: 46")
    with pytest.raises(UserError) as err:
        parse_test(text, "far.yaml")
    assert "outside" in err.value.render()
    # an emulated battery serves no Volt-Watt model (706): refused before anything moves
    vw = VW.format(label="vw", extra="").replace("type: pv", "type: battery, capacity_kwh: 20")
    f = tmp_path / "vw.yaml"
    f.write_text(vw)
    assert main(["test", str(f), "--out", str(tmp_path / "o")]) == 2

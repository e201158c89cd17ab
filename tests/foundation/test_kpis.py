"""KPIs against hand-computed values."""

import numpy as np
import pytest

from testbed.domain.kpis import KpiAccumulator


def test_two_steps_hand_computed():
    acc = KpiAccumulator(dt_h=0.25, v_min_pu=0.9, v_max_pu=1.1, prosumer_ids=("a", "b"))
    acc.update(dict(converged=True, vm_pu=np.array([1.0, 0.95, 1.12]), line_loading_pct=np.array([10.0, 40.0]),
                    trafo_loading_pct=np.array([55.0]), losses_kw=2.0, ext_grid_p_kw=8.0,
                    load_kw=np.array([4.0, 6.0]), pv_kw=np.array([4.0, 0.0]), ev_kw=np.array([0.0, 0.0]),
                    battery_kw=np.array([-2.0, 0.0]), p_kw=np.array([-2.0, -6.0])))
    acc.update(dict(converged=False, vm_pu=np.full(3, np.nan), ext_grid_p_kw=np.nan,
                    load_kw=np.array([2.0, 2.0]), pv_kw=np.array([8.0, 0.0]), ev_kw=np.array([0.0, 0.0]),
                    battery_kw=np.array([1.0, 0.0]), p_kw=np.array([7.0, -2.0])))
    k = acc.result()
    assert k["steps"] == 2 and k["non_converged_steps"] == 1
    assert k["v_min_pu"] == 0.95 and k["v_max_pu"] == 1.12
    assert k["minutes_outside_voltage_limits"] == 15.0  # one 15-minute step with a bus above 1.1 pu
    assert k["peak_line_loading_pct"] == 40.0 and k["peak_trafo_loading_pct"] == 55.0
    assert k["grid_import_kwh"] == pytest.approx(2.0)  # 8 kW * 0.25 h; the failed step adds nothing
    assert k["losses_kwh"] == pytest.approx(0.5)
    assert k["load_kwh"] == pytest.approx((10 + 4) * 0.25)
    assert k["pv_kwh"] == pytest.approx((4 + 8) * 0.25)
    assert k["battery_charge_kwh"] == pytest.approx(0.5) and k["battery_discharge_kwh"] == pytest.approx(0.25)
    assert k["prosumer_import_kwh"] == pytest.approx((2 + 6 + 2) * 0.25)
    assert k["prosumer_export_kwh"] == pytest.approx(7 * 0.25)
    assert k["self_sufficiency"] == pytest.approx(1 - 2.5 / 3.5)
    assert k["self_consumption"] == pytest.approx(1 - 1.75 / 3.0)
    assert k["prosumers"]["a"] == {"import_kwh": pytest.approx(0.5), "export_kwh": pytest.approx(1.75)}


def test_bad_step_length():
    with pytest.raises(ValueError, match="dt_h must be > 0"):
        KpiAccumulator(dt_h=0, v_min_pu=0.9, v_max_pu=1.1)

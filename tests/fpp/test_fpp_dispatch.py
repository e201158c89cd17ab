"""The buyer's instruction: full capacity for congestion relief; frequency response from the product's curve."""

import numpy as np
import pytest

from testbed.domain.fpp import parse_contract
from testbed.domain.fpp.dispatch import instruction_kw
from testbed.domain.services.signals import loss_of_infeed, recorded


def contract(kind="frequency_response", product="gb-dr-low", direction="up"):
    service = {"kind": kind, "product": product} if kind == "frequency_response" else {"kind": "energy_block"}
    return parse_contract({
        "id": "c", "buyer": "tso", "service": service, "window": {"start": "2026-07-01T14:00", "end": "2026-07-01T15:00"},
        "direction": direction, "capacity_kw": 20.0, "confidence": 0.9, "availability_price_per_kw_h": 0.1,
        "utilisation_price_per_kwh": 0.0, "penalty": {"kind": "pro_rata"}, "currency": "EUR"})


def test_blocks_are_dispatched_in_full_and_frequency_response_only_by_the_frequency():
    assert instruction_kw(contract("energy_block"), 900).tolist() == [20.0] * 4
    assert instruction_kw(contract(), 900).tolist() == [0.0] * 4  # held, no event: not dispatched


def test_frequency_response_follows_the_curve_by_hand():
    # GB DR low: 0 at 0.015 Hz below 50, full at 0.2 Hz below. 49.8925 Hz is 0.1075 Hz below: (0.1075 - 0.015) /
    # 0.185 = 0.5 of 20 kW; 49.8 Hz asks for all of it; 50.1 Hz (high) asks nothing of a low service.
    f = recorded([0, 1799, 1800, 2699, 2700, 3600], [49.8925, 49.8925, 49.8, 49.8, 50.1, 50.1])
    got = instruction_kw(contract(), 900, f)
    assert got == pytest.approx([10.0, 10.0, 20.0, 0.0], abs=0.05)  # the linear ramps between samples: 1 s each
    assert instruction_kw(contract(direction="down"), 900, f).tolist() == [0.0] * 4


def test_a_loss_of_infeed_dispatches_in_the_steps_it_falls_in():
    f = loss_of_infeed(50.0, t_event_s=1200, rocof_hz_per_s=0.125, nadir_hz=49.6, settle_hz=49.85,
                       recovery_s=900, duration_s=3600)
    got = instruction_kw(contract(), 900, f)
    # nothing before the event; by the last quarter hour the frequency has all but settled at 49.85 Hz (0.15 Hz
    # below 50: (0.15 - 0.015) / 0.185 = 0.73 of 20 kW; exp(-5) of the deviation from it is left at 45 min)
    assert got[0] == 0.0 and got[1] > 0 and got[3] == pytest.approx(20.0 * (0.15 - 0.015) / 0.185, rel=0.02)
    assert got[2] > got[3] and np.all(got <= 20.0)

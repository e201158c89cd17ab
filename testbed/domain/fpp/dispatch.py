"""The buyer's instruction to a coalition over a contract's window (pure).

Congestion relief, voltage support and energy blocks are dispatched at the contract's full capacity for the whole
window (the forecast said the need lasts that long). Frequency response is held and dispatched by the frequency:
each second the product's response curve (:mod:`testbed.domain.services.frequency`, with a triggered service's
hold) gives the fraction of the capacity asked for, ``> 0`` for more export; an *up* contract is instructed
``capacity * max(fraction, 0)``, a *down* one ``capacity * max(-fraction, 0)``, a *both* one the signed value.
The instruction of a step is its mean over the step's seconds [kW]. Without a frequency trace (no event in the
window) a frequency-response contract is held and not dispatched: zeros.
"""

from __future__ import annotations

import numpy as np

from testbed.domain.fpp.contract import Contract
from testbed.domain.services.frequency import frequency_service, held_fraction
from testbed.domain.services.signals import TestSignal

SAMPLE_S = 1.0
"""The frequency trace is sampled once a second over the window."""


def instruction_kw(contract: Contract, step_s: float, frequency: TestSignal | None = None) -> np.ndarray:
    """The instruction per step of ``step_s`` seconds over the window [kW, counted at the location]; ``frequency``
    is the trace over the window (time 0 = the window's start), for frequency response only."""
    steps = round(contract.duration_h * 3600.0 / step_s)
    if contract.service.kind != "frequency_response":
        return np.full(steps, float(contract.capacity_kw))
    if frequency is None:
        return np.zeros(steps)
    service = frequency_service(contract.service.product, "contract.service.product")
    t = np.arange(0.0, steps * step_s, SAMPLE_S)
    f_hz, _, _ = frequency.sample(t)
    frac = held_fraction(service, t, f_hz)
    if contract.direction == "up":
        frac = np.maximum(frac, 0.0)
    elif contract.direction == "down":
        frac = np.maximum(-frac, 0.0)
    per_step = frac.reshape(steps, -1).mean(axis=1)
    return contract.capacity_kw * per_step

"""What a co-simulation uses when a device sample is invalid: the scenario's fault policy. Pure.

- ``hold``: keep the last valid measurement (the output is marked invalid);
- ``fallback-to-model``: use what the simulated model of the same device gives;
- ``abort``: stop the run with :class:`hil.errors.HilAbort`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.errors import HilAbort
from testbed.domain.errors import UserError

POLICIES = ("hold", "fallback-to-model", "abort")


@dataclass(frozen=True)
class Measurement:
    """What the co-simulation sees of a device (generator convention): ``p_kw``, ``q_kvar``, ``soc`` 0..1."""

    p_kw: float
    q_kvar: float
    soc: float | None
    valid: bool


def check_policy(policy: str, where: str) -> str:
    if policy not in POLICIES:
        raise UserError(f"{where}: unknown fault policy {policy!r}", [f"expected one of {', '.join(POLICIES)}"])
    return policy


def resolve(
    policy: str,
    sample: Measurement | None,
    last_valid: Measurement | None,
    model: Measurement | None,
    *,
    reason: str = "",
) -> Measurement:
    """The measurement to use this step.

    ``sample`` is the latest device sample (``None`` when none arrived), ``last_valid`` the last valid one,
    ``model`` what the simulated model would give. A valid sample is used as is.
    """
    if sample is not None and sample.valid:
        return sample
    if policy == "abort":
        raise HilAbort(f"device sample invalid and the fault policy is abort ({reason or 'no sample'})")
    if policy == "hold":
        if last_valid is None:
            return Measurement(0.0, 0.0, None, False)
        return Measurement(last_valid.p_kw, last_valid.q_kvar, last_valid.soc, False)
    if policy == "fallback-to-model":
        if model is None:
            raise ValueError("fallback-to-model needs the model's measurement")
        return Measurement(model.p_kw, model.q_kvar, model.soc, False)
    raise ValueError(f"unknown fault policy {policy!r}")

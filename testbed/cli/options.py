"""Checks of command-line option values, shared by the commands: each returns a problem line or None.

A command collects the problems of all its options and raises one :class:`~testbed.domain.errors.UserError`
(exit status 2) listing them, before it starts anything.
"""

from __future__ import annotations

import math


def positive_seconds(option: str, value: float | None, *, maximum: float = 86_400.0) -> str | None:
    """A time span: finite, > 0 and at most ``maximum`` seconds (``inf`` or ``nan`` would wait for ever)."""
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= maximum:
        return f"{option} {value}: must be a number of seconds > 0 and <= {maximum:g}"
    return None


def non_negative_seconds(option: str, value: float, *, maximum: float = 86_400.0) -> str | None:
    if not math.isfinite(value) or not 0 <= value <= maximum:
        return f"{option} {value}: must be a number of seconds >= 0 and <= {maximum:g}"
    return None


def finite(option: str, value: float | None, lo: float, hi: float) -> str | None:
    if value is None:
        return None
    if not math.isfinite(value) or not lo <= value <= hi:
        return f"{option} {value}: must lie in {lo:g}..{hi:g}"
    return None


def tcp_port(option: str, value: int, *, allow_any: bool = False) -> str | None:
    """A TCP port 1..65535 (0 too with ``allow_any``: the system picks a free port)."""
    lo = 0 if allow_any else 1
    if not lo <= value <= 65535:
        return f"{option} {value}: must be a TCP port {lo}..65535"
    return None


def modbus_unit(option: str, value: int) -> str | None:
    """A Modbus unit id of a device: 1..247 (0 is the broadcast address, 248..255 are reserved)."""
    if not 1 <= value <= 247:
        return f"{option} {value}: must be a Modbus unit id 1..247"
    return None
